// A closure bound by `let` cannot be a process either (the attribute is refused on statements).
fn main() {
    let offset = 1;
    #[mc::process]
    let add = |x: u32| x + offset;
    let _ = add(1);
}
