// A borrowed message cannot outlive its receiver (whose drop unmaps the
// box).
use mc::Camlbox;

fn main() {
    let (mut rx, _id) = Camlbox::<Vec<u64>>::create(1, 100).unwrap();
    let slot = rx.wait()[0];
    let msg = rx.get(slot).unwrap();
    drop(rx);
    println!("{}", msg.len());
}
