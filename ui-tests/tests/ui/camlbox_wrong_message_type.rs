// A sender of `String`s cannot send a `u64`.
use mc::camlbox::Sender;

fn send_number(tx: &Sender<String>) {
    tx.send(&42u64).unwrap();
}

fn main() {}
