// A value added by the mutator borrows the modification: it cannot be kept after it.
fn main() {
    let pool = mc::Pool::create(1 << 20).unwrap();
    let heap = mc::Heap::create(&pool, &0u64).unwrap();
    let mut kept = None;
    heap.modify(|m, _root| {
        kept = Some(m.add(&String::from("detached")).unwrap());
    })
    .unwrap();
    println!("{:?}", kept.map(|s| s.len()));
}
