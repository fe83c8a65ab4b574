//! Ten workers each square one of 1..=10; the first process joins them all
//! and prints the sum of squares (385).

#[mc::process]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    let report = mc::run(|| {
        let pids: Vec<_> = (1..=10).map(|i| square::start(i).expect("start")).collect();
        pids.into_iter()
            .map(|p| square::join(p).expect("join").expect("a worker failed"))
            .sum::<u64>()
    })
    .expect("mc::run");
    let Some(sum) = report.returned() else {
        eprintln!("create_join: the first process did not return");
        std::process::exit(1);
    };
    println!("Sum: {sum}");
    if sum != 385 {
        eprintln!("create_join: expected 385");
        std::process::exit(1);
    }
}
