// A lock guard belongs to the thread that took the lock: neither a mutex guard nor a reader/writer guard can be sent to another thread.
fn main() {
    let m = mc::sync::Mutex::new(1u64);
    let l = mc::sync::RwLock::new(2u64);
    let g = m.lock().unwrap();
    let r = l.read().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || println!("{}", *g));
        s.spawn(move || println!("{}", *r));
    });
}
