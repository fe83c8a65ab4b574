//! Example programs of mc, one binary each (`cargo run -p mc-examples --bin NAME`),
//! and the workloads they share.

pub mod nqueens;
pub mod queens_http;

/// The value the first process of a run returned; otherwise ends the
/// program with exit code 1 and a line on stderr that names `program` and
/// says what went wrong (the run failed, or the first process panicked or
/// was killed).
pub fn returned_or_exit<T>(program: &str, report: Result<mc::RunReport<T>, mc::ProcessError>) -> T {
    match report.map(mc::RunReport::into_result) {
        Ok(Ok(v)) => v,
        Ok(Err(ended)) => fail(program, format_args!("the first process ended: {ended}")),
        Err(e) => fail(program, e),
    }
}

/// [`returned_or_exit`] for a first process that returns a `Result`: its
/// error ends the program too.
pub fn ok_or_exit<T, E: std::fmt::Display>(
    program: &str,
    report: Result<mc::RunReport<Result<T, E>>, mc::ProcessError>,
) -> T {
    returned_or_exit(program, report).unwrap_or_else(|e| fail(program, e))
}

/// Prints `program: what` on stderr and exits with code 1.
pub fn fail(program: &str, what: impl std::fmt::Display) -> ! {
    eprintln!("{program}: {what}");
    std::process::exit(1)
}
