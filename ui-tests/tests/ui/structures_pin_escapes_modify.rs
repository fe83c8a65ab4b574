// A pinned element handed out by `SQueue`'s `pop_with` or `SArray::modify`
// cannot escape the modification.
use std::pin::Pin;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = mc::Pool::create(16 << 20)?;
    let a = mc::SArray::create(&pool, &(), &[1u64])?;
    let mut kept: Option<Pin<&mut mc::value::SharedVec<u64>>> = None;
    a.modify(|_, v| kept = Some(v))?;
    let q = mc::SQueue::<String>::create(&pool, &())?;
    let s = q.pop_with(|s| s)?;
    println!("{kept:?} {s:?}");
    Ok(())
}
