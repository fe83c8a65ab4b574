//! The tutorial's record with two strings in a shared reference, created
//! with "initial string 1" and "initial string 2". First the two fields
//! are swapped in place (no copy: `modify` for the lock, `swap` for the
//! exchange). Then the tutorial's variation: `p` is the old `data1`, each
//! field gets a text quoting the other's old value, and `p` is printed
//! after both additions.
//!
//! In Netmulticore that last read may crash unless `p` is pinned: after
//! the first assignment `p` is unreachable, and the second `add` may run
//! the collector. Here the collector never runs inside `modify`, so `p`
//! (the old string, swapped out of `data1` and still in the heap) stays
//! valid until the modification ends; `pin` is kept as the tutorial writes
//! it, and does nothing. Last, not in the tutorial, the record is printed.

use mc::SRef;

#[derive(mc::Shared, Debug, Clone, PartialEq)]
struct U {
    data1: String,
    data2: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = mc::Pool::create(1024 * 1024)?;
    let s = SRef::new(
        &pool,
        &U {
            data1: "initial string 1".into(),
            data2: "initial string 2".into(),
        },
    )?;

    // Swap the two fields.
    s.modify(|m, u| {
        let u = u.project();
        m.swap(u.data1, u.data2)
    })??;

    // The variation: `p` stays readable after both additions.
    s.modify(|m, u| -> Result<(), mc::HeapError> {
        // `data1 <- add ("Previously in data2: " ^ data2)`, written as an
        // `add` and a `swap`: afterwards `p` is the old data1, unlinked but
        // still in the heap until the modification ends.
        let mut p = m.add(&format!("Previously in data2: {}", u.data2.as_str()))?;
        let u = u.project();
        m.swap(u.data1, p.as_mut())?;
        m.set_str(u.data2, &format!("Previously in data1: {}", p.as_str()))?;
        // The tutorial pins `p` here (`pin mut p`); in mc nothing is
        // collected before the modification ends, so `p` needs no pin.
        println!("p={}", p.as_str());
        Ok(())
    })??;

    // Not in the tutorial: the record as the variation left it.
    let u = s.copy()?;
    println!("data1={}", u.data1);
    println!("data2={}", u.data2);
    s.destroy()?;
    let expected = U {
        data1: "Previously in data2: initial string 1".into(),
        data2: "Previously in data1: initial string 2".into(),
    };
    if u != expected {
        return Err(format!("swap: unexpected contents {u:?}").into());
    }
    Ok(())
}
