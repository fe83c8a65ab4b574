//! The derived type round-trips through a heap; the process definition
//! exists with its typed functions.

use mc_renamed_tests::{total, Job, Kind};

#[test]
fn derived_values_round_trip_through_a_heap() {
    let job = Job {
        name: "sum".into(),
        steps: vec![1, 2, 3],
        kind: Kind::Weighted(7),
    };
    let pool = runtime::Pool::create(1 << 20).unwrap();
    let heap = runtime::Heap::create(&pool, &job).unwrap();
    assert_eq!(heap.copy().unwrap(), job);
    let g = heap.read().unwrap();
    assert_eq!(g.name.as_str(), "sum");
    assert_eq!(&*g.steps, &[1, 2, 3]);
}

#[test]
fn the_process_definition_is_typed() {
    let start: fn(Job) -> Result<total::Pid, runtime::ProcessError> = total::start;
    let _ = start;
}
