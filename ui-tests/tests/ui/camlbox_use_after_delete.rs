// A message borrowed in place from a camlbox slot cannot be used after the
// slot is deleted: `get` borrows the receiver, `delete` needs it mutably.
use mc::Camlbox;

fn main() {
    let (mut rx, _id) = Camlbox::<String>::create(1, 100).unwrap();
    let slot = rx.wait()[0];
    let msg = rx.get(slot).unwrap();
    rx.delete(slot);
    println!("{}", msg.as_str());
}
