// The id of a box of `String`s makes senders of `String`s only.
use mc::camlbox::Sender;
use mc::CamlboxDescr;

fn sender_of_numbers(id: CamlboxDescr<String>) -> Sender<u64> {
    id.sender().unwrap()
}

fn main() {}
