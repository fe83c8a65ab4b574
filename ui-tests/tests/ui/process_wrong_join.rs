// A process id is typed by its definition: joining it through another definition does not compile.
#[mc::process]
fn square(x: u64) -> u64 {
    x * x
}

#[mc::process]
fn double(x: u64) -> u64 {
    x * 2
}

fn main() {
    let _ = mc::run(|| {
        let pid = square::start(3).unwrap();
        double::join(pid).unwrap()
    });
}
