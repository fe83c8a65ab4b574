// A pool handle is process-local: a shared value must hold a `PoolDescr` instead.
#[derive(mc::Shared)]
struct Registry {
    home: mc::Pool,
}

fn main() {}
