//! Ten workers each square one of 1..=10; the first process joins them all
//! and prints the sum of squares (385).

#[mc::process]
fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sum = mc::run(|| {
        let pids: Vec<_> = (1..=10).map(|i| square::start(i).expect("start")).collect();
        pids.into_iter()
            .map(|p| square::join(p).expect("a worker failed"))
            .sum::<u64>()
    })?
    .into_result()?;
    println!("Sum: {sum}");
    if sum != 385 {
        return Err("expected 385".into());
    }
    Ok(())
}
