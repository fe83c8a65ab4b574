// Other processes get a heap's descriptor (`heap.descr()`), not the process-local handle.
#[mc::process]
fn reader(heap: mc::Heap<u64>) -> u64 {
    heap.copy().unwrap()
}

fn main() {}
