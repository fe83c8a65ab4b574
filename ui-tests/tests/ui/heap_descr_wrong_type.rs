// A descriptor carries its type: opening it as a heap of another type does not compile.
fn main() {
    let pool = mc::Pool::create(1 << 20).unwrap();
    let heap = mc::Heap::create(&pool, &String::from("x")).unwrap();
    let d = heap.descr();
    let other: mc::Heap<u64> = mc::Heap::open(&pool, &d).unwrap();
    drop(other);
}
