//! The tutorial's record with two strings in a shared reference: first
//! swapped in place, then each replaced by a text that quotes the other's
//! old value. The old values are copied out before the new ones are added
//! (in Netmulticore, reading them in place across `add` could crash; here
//! the collector never runs inside a modification, so even that would be
//! safe, but the copy keeps the example simple).

use mc::{Pool, SRef};

#[derive(mc::Shared, Debug, Clone, PartialEq)]
struct U {
    data1: String,
    data2: String,
}

fn main() {
    let pool = Pool::create(16 << 20).expect("create a pool");
    let r = SRef::new(
        &pool,
        &U {
            data1: "one".into(),
            data2: "two".into(),
        },
    )
    .expect("create a shared reference");

    // Swap the fields in place: no copy, just the two representations.
    r.modify(|m, u| {
        let p = u.project();
        m.swap(p.data1, p.data2)
    })
    .expect("modify")
    .expect("swap");
    let swapped = r.copy().expect("copy");
    println!(
        "after swap: data1 = {:?}, data2 = {:?}",
        swapped.data1, swapped.data2
    );

    // Replace each field with a text quoting the other's old value.
    r.modify(|m, u| {
        let old1 = u.data1.as_str().to_owned();
        let old2 = u.data2.as_str().to_owned();
        let p = u.project();
        m.set_str(p.data1, &format!("Previously in data2: {old2}"))?;
        m.set_str(p.data2, &format!("Previously in data1: {old1}"))
    })
    .expect("modify")
    .expect("copy the new strings in");

    let g = r.read().expect("read");
    println!("data1 = {}", g.data1.as_str());
    println!("data2 = {}", g.data2.as_str());
    let ok = swapped
        == U {
            data1: "two".into(),
            data2: "one".into(),
        }
        && g.data1.as_str() == "Previously in data2: one"
        && g.data2.as_str() == "Previously in data1: two";
    drop(g);
    r.destroy().expect("destroy");
    if !ok {
        eprintln!("swap: unexpected contents");
        std::process::exit(1);
    }
    println!("swap: ok");
}
