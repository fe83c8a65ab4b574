// An element borrowed from `SArray::get` cannot outlive the guard that
// holds the array's lock.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = mc::Pool::create(16 << 20)?;
    let a = mc::SArray::create(&pool, &(), &["x".to_string()])?;
    let s: &mc::value::SharedString = {
        let r = a.get(0)?;
        &*r
    };
    a.set(0, &"y".to_string())?;
    println!("{}", s.as_str());
    Ok(())
}
