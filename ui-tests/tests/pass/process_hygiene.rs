// `#[mc::process]` needs no imports, resists shadowed prelude names, works
// on `pub` items, on user serde types, and inside a function body.
#![deny(missing_docs)]
//! Hygiene of the generated items.

#[allow(dead_code)]
type Result = ();
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
mod core {}

/// A job.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Job {
    /// Its size.
    pub size: u64,
}

/// Doubles a job's size.
#[mc::process]
pub fn double(job: Job) -> Job {
    Job { size: job.size * 2 }
}

#[mc::process]
fn unit(_: ()) {}

fn main() {
    #[mc::process]
    fn local(x: (u8, String)) -> Vec<u8> {
        vec![x.0; x.1.len()]
    }
    // Never called: only the types are checked here.
    if std::env::args().count() > 100 {
        let _ = mc::run(|| {
            let p = double::start(Job { size: 2 }).unwrap();
            let _: Job = double::join(p).unwrap();
            let q = unit::start(()).unwrap();
            let _: () = unit::join(q).unwrap();
            let r = local::start((1, "ab".into())).unwrap();
            local::join_timeout(r, std::time::Duration::from_secs(1)).unwrap()
        });
    }
    // The plain function is still there.
    assert_eq!(double(Job { size: 3 }).size, 6);
}
