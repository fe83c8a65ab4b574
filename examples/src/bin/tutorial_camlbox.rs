//! The tutorial's camlbox example: process X creates a box with one slot of
//! 100 bytes and starts Y with the box's id; Y sends "Hello world"; X waits
//! for the message, copies it out, deletes the slot and prints it.

use mc::{Camlbox, CamlboxDescr};

#[mc::process]
fn body_y(id: CamlboxDescr<String>) {
    let tx = id.sender().expect("open the box");
    tx.send(&"Hello world".to_string()).expect("send");
}

fn body_x() -> String {
    let (mut rx, id) = Camlbox::<String>::create(1, 100).expect("create the box");
    let pid = body_y::start(id).expect("start Y");
    let slots = rx.wait();
    let msg = rx.get_copy(slots[0]).expect("a valid message");
    rx.delete(slots[0]);
    body_y::join(pid).expect("error in process Y");
    msg
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let msg = mc::run(body_x)?.into_result()?;
    println!("Message: {msg}");
    if msg != "Hello world" {
        return Err("unexpected message".into());
    }
    println!("tutorial_camlbox: ok");
    Ok(())
}
