// A read guard holds the heap's lock for the thread that took it: it cannot be sent to another thread.
fn main() {
    let pool = mc::Pool::create(1 << 20).unwrap();
    let heap = mc::Heap::create(&pool, &7u64).unwrap();
    let guard = heap.read().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || println!("{}", *guard));
    });
}
