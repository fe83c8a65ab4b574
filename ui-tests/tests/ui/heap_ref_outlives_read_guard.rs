// A reference into a heap cannot outlive the read guard it was borrowed from.
fn main() {
    let pool = mc::Pool::create(1 << 20).unwrap();
    let heap = mc::Heap::create(&pool, &String::from("x")).unwrap();
    let s: &str = {
        let guard = heap.read().unwrap();
        guard.as_str()
    };
    println!("{s}");
}
