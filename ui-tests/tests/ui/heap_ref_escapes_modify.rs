// A reference obtained inside `modify` cannot be used after `modify` returns.
fn main() {
    let pool = mc::Pool::create(1 << 20).unwrap();
    let heap = mc::Heap::create(&pool, &String::from("x")).unwrap();
    let mut escaped = None;
    heap.modify(|_m, root| {
        escaped = Some(root);
    })
    .unwrap();
    println!("{:?}", escaped.map(|r| r.len()));
}
