//! The tutorial's camlbox example: process X creates a box with one slot of
//! 100 bytes and starts Y with the box's id; Y sends "Hello world"; X waits
//! for the message, copies it out, deletes the slot and prints it. Y's
//! results are not kept (its join point is released), so nobody joins Y.

use mc::{Camlbox, CamlboxDescr};

#[mc::process]
fn body_y(box_res: CamlboxDescr<String>) {
    let box_sender = box_res.sender().expect("look up the box");
    box_sender
        .send(&"Hello world".to_string())
        .expect("send the message");
}

#[mc::process]
fn body_x(_: ()) -> String {
    let (mut camlbox, box_res) = Camlbox::<String>::create(1, 100).expect("create the box");
    let _pid_y = body_y::start(box_res).expect("start Y");
    match camlbox.wait().as_slice() {
        &[slot] => {
            let m = camlbox.get_copy(slot).expect("a valid message");
            camlbox.delete(slot);
            println!("Message: {m}");
            m
        }
        // In this example not possible: the box has one slot.
        _ => unreachable!("one slot"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let m = mc::run(|| -> Result<String, mc::Error> {
        body_y::release_join_point()?;
        let pid_x = body_x::start(())?;
        Ok(body_x::join(pid_x)?)
    })?
    .into_result()??;
    if m != "Hello world" {
        return Err(format!("unexpected message {m:?}").into());
    }
    Ok(())
}
