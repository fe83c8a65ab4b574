//! The bytes of a typed message: a header (a magic, the type's
//! fingerprint, the payload's length) in front of the payload, which is
//! the value encoded with postcard; so that a receiver refuses another
//! type or a cut buffer.
//!
//! A value that holds a byte string of at least [`DIRECT`] bytes (a
//! `String`, a `serde_bytes` buffer) goes out in parts, so that the string
//! is sent from the value's own memory and never copied into the send
//! buffer:
//!
//! 1. the header, whose magic says "in parts" and whose length is 0, with
//!    the payload up to the first large string;
//! 2. each large string as a message of its own (a *direct* part);
//! 3. after each direct part, a *link*: one kind byte, then the payload
//!    up to the next large string. [`MORE`]: a direct part follows.
//!    [`LAST`]: the message ends here, and the link's last 8 bytes are the
//!    payload's whole length. [`FAILED`]: the sender could not encode the
//!    rest, and the link says why.
//!
//! The receiver puts the parts together in one buffer, each received
//! where it belongs, and decodes that buffer as a whole message.

use postcard::ser_flavors::Flavor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ClusterError;

const MAGIC: u32 = u32::from_le_bytes(*b"mcC1");
/// A message in parts: every bit of [`MAGIC`] flipped, so that no
/// corruption of a few bits turns one kind of message into the other.
const MAGIC_PARTS: u32 = !MAGIC;
const HEADER: usize = 16;

/// Byte strings at least this long go out as direct parts. An extra MPI
/// message costs a few microseconds; copying 256 KiB costs about as much.
pub(crate) const DIRECT: usize = 256 * 1024;

/// The kinds of links (far apart in bits, as the magics are).
const MORE: u8 = 0x5a;
const LAST: u8 = 0xa5;
const FAILED: u8 = 0x3c;

/// A fingerprint of `T`'s name (serde types have no structural one).
pub(crate) fn fingerprint<T: ?Sized>() -> u64 {
    // FNV-1a of the type's name: stable within one build, which every
    // rank of a job runs.
    std::any::type_name::<T>()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// What [`encode_split`] did with a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Encoded {
    /// The message is whole in the buffer, for the caller to send.
    Whole,
    /// The message went out in parts, all of them through `send`.
    Sent,
}

/// The postcard flavor of [`encode_split`]: bytes go into `out`, except
/// large strings, which go out as direct parts.
struct Parts<'a> {
    out: &'a mut Vec<u8>,
    direct: usize,
    send: &'a mut dyn FnMut(&[u8]),
    /// Whether parts went out already.
    split: bool,
    /// The payload bytes in the parts that went out.
    payload: u64,
    /// Set once the message is complete (or its failure sent).
    done: bool,
}

impl Drop for Parts<'_> {
    fn drop(&mut self) {
        // A `Serialize` impl that panicked after parts went out: the
        // receiver must not wait for the rest.
        if self.split && !self.done {
            self.out.clear();
            self.out.push(FAILED);
            self.out
                .extend_from_slice(b"the sender panicked while encoding");
            (self.send)(self.out);
        }
    }
}

impl Flavor for Parts<'_> {
    type Output = ();

    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.out.push(b);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() < self.direct {
            self.out.extend_from_slice(data);
            return Ok(());
        }
        if self.split {
            self.out[0] = MORE;
            self.payload += (self.out.len() - 1) as u64;
        } else {
            self.out[..4].copy_from_slice(&MAGIC_PARTS.to_le_bytes());
            self.payload += (self.out.len() - HEADER) as u64;
            self.split = true;
        }
        (self.send)(self.out);
        (self.send)(data);
        self.payload += data.len() as u64;
        self.out.clear();
        // The kind byte of the next link, set when it goes out.
        self.out.push(MORE);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Encodes `value` with its header into `out` (cleared first, its memory
/// reused). Byte strings of at least `direct` bytes do not go into `out`:
/// the message then goes out in parts through `send` (see the module
/// docs), and `Sent` says so; otherwise the message is whole in `out`.
///
/// When encoding fails after parts went out, the last part says so, and
/// the receiver gets an error too.
pub(crate) fn encode_split<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    direct: usize,
    send: &mut dyn FnMut(&[u8]),
) -> Result<Encoded, ClusterError> {
    out.clear();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&fingerprint::<T>().to_le_bytes());
    let mut ser = postcard::Serializer {
        output: Parts {
            out,
            direct,
            send,
            split: false,
            payload: 0,
            done: false,
        },
    };
    let encoded = value.serialize(&mut ser);
    let parts = &mut ser.output;
    parts.done = true;
    let (out, send, payload) = (&mut *parts.out, &mut *parts.send, parts.payload);
    match (encoded, parts.split) {
        (Ok(()), false) => {
            // The length goes in once it is known.
            let body = out.len() - HEADER;
            let len = u32::try_from(body)
                .map_err(|_| ClusterError::Encode(format!("{body} bytes: at most 4 GiB")))?;
            out[4..8].copy_from_slice(&len.to_le_bytes());
            Ok(Encoded::Whole)
        }
        (Ok(()), true) => {
            out[0] = LAST;
            let payload = payload + (out.len() - 1) as u64;
            out.extend_from_slice(&payload.to_le_bytes());
            send(out);
            Ok(Encoded::Sent)
        }
        (Err(e), false) => Err(ClusterError::Encode(e.to_string())),
        (Err(e), true) => {
            out.clear();
            out.push(FAILED);
            out.extend_from_slice(e.to_string().as_bytes());
            send(out);
            Err(ClusterError::Encode(e.to_string()))
        }
    }
}

/// Encodes `value` with its header, whole, into a new buffer.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ClusterError> {
    let mut out = Vec::with_capacity(HEADER + 64);
    // No string reaches `usize::MAX` bytes: nothing goes out in parts.
    encode_split(value, &mut out, usize::MAX, &mut |_| {})?;
    Ok(out)
}

fn word(bytes: &[u8], i: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[i..i + 4]);
    u32::from_le_bytes(b)
}

fn long(bytes: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[i..i + 8]);
    u64::from_le_bytes(b)
}

/// Checks the fingerprint of a message's header (at least [`HEADER`]
/// bytes) against `T`.
fn check_type<T>(from: usize, bytes: &[u8]) -> Result<(), ClusterError> {
    if long(bytes, 8) == fingerprint::<T>() {
        return Ok(());
    }
    Err(ClusterError::BadMessage {
        from,
        reason: format!(
            "a value of another type than {}",
            std::any::type_name::<T>()
        ),
    })
}

/// Decodes a whole message from rank `from`, checking its header first.
pub(crate) fn decode<T: DeserializeOwned>(from: usize, bytes: &[u8]) -> Result<T, ClusterError> {
    let bad = |reason: String| ClusterError::BadMessage { from, reason };
    if bytes.len() < HEADER {
        return Err(bad(format!("{} bytes, shorter than a header", bytes.len())));
    }
    if word(bytes, 0) != MAGIC {
        return Err(bad("not an mc-cluster message".into()));
    }
    check_type::<T>(from, bytes)?;
    let len = word(bytes, 4) as usize;
    if bytes.len() - HEADER != len {
        return Err(bad(format!(
            "cut or padded: {} payload bytes, the header says {len}",
            bytes.len() - HEADER
        )));
    }
    postcard::from_bytes(&bytes[HEADER..]).map_err(|e| bad(format!("corrupt: {e}")))
}

/// Decodes the message from rank `from` whose first part is
/// `buf[..first]`. When it came in parts, `next(buf, at)` receives the
/// next part of the same message into `buf` at offset `at` (growing `buf`
/// as needed) and returns the part's length; every part is taken, also
/// when the message is refused, so that the next message starts clean.
pub(crate) fn receive<T: DeserializeOwned>(
    from: usize,
    buf: &mut Vec<u8>,
    first: usize,
    next: &mut dyn FnMut(&mut Vec<u8>, usize) -> usize,
) -> Result<T, ClusterError> {
    if first < HEADER || word(buf, 0) != MAGIC_PARTS {
        return decode(from, &buf[..first]);
    }
    let bad = |reason: String| ClusterError::BadMessage { from, reason };
    let mut end = first;
    let mut payload = (first - HEADER) as u64;
    loop {
        let n = next(buf, end);
        end += n;
        payload += n as u64;
        // A link lands on the last byte before it, where its kind byte
        // is read and the byte is put back.
        let keep = buf[end - 1];
        let n = next(buf, end - 1);
        if n == 0 {
            return Err(bad("an empty link in a message in parts".into()));
        }
        let kind = buf[end - 1];
        buf[end - 1] = keep;
        end += n - 1;
        match kind {
            MORE => payload += (n - 1) as u64,
            LAST if n > 8 => {
                end -= 8;
                payload += (n - 9) as u64;
                let said = long(buf, end);
                if said != payload {
                    return Err(bad(format!(
                        "cut or padded: {payload} payload bytes in parts, the sender says {said}"
                    )));
                }
                break;
            }
            FAILED => {
                let why = String::from_utf8_lossy(&buf[end + 1 - n..end]).into_owned();
                return Err(bad(format!("the sender could not encode it: {why}")));
            }
            _ => return Err(bad("a corrupt link in a message in parts".into())),
        }
    }
    check_type::<T>(from, buf)?;
    postcard::from_bytes(&buf[HEADER..end]).map_err(|e| bad(format!("corrupt: {e}")))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;
    use serde::ser::{Error as _, SerializeTuple};
    use serde_bytes::ByteBuf;

    use super::*;

    /// Writes `part` into `buf` at `at`, growing it (as a receive does).
    fn put(buf: &mut Vec<u8>, at: usize, part: &[u8]) {
        if buf.len() < at + part.len() {
            buf.resize(at + part.len(), 0);
        }
        buf[at..at + part.len()].copy_from_slice(part);
    }

    /// Sends `value` as `T` with `direct`, receives it as `U` from a
    /// buffer with old bytes in it: the sender's result, the number of
    /// messages, the receiver's result. Every message is taken.
    fn through<T: Serialize, U: DeserializeOwned>(
        value: &T,
        direct: usize,
    ) -> (
        Result<Encoded, ClusterError>,
        usize,
        Option<Result<U, ClusterError>>,
    ) {
        let mut parts = VecDeque::new();
        let mut out = vec![9; 40];
        let sent = encode_split(value, &mut out, direct, &mut |p| {
            parts.push_back(p.to_vec())
        });
        if sent.as_ref().ok() == Some(&Encoded::Whole) {
            parts.push_back(out);
        }
        let count = parts.len();
        let Some(first) = parts.pop_front() else {
            return (sent, 0, None);
        };
        let mut buf = vec![0xee; 5];
        put(&mut buf, 0, &first);
        let got = receive(3, &mut buf, first.len(), &mut |buf, at| {
            let p = parts.pop_front().expect("a part the sender did not send");
            put(buf, at, &p);
            p.len()
        });
        assert!(parts.is_empty(), "{} parts were not taken", parts.len());
        (sent, count, Some(got))
    }

    fn big(n: usize, seed: u8) -> ByteBuf {
        ByteBuf::from(
            (0..n)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn whole_messages_round_trip_and_refuse_what_is_wrong() {
        let v = (7u32, "seven".to_string(), vec![1.5f64; 3]);
        let b = encode(&v).unwrap();
        assert_eq!(decode::<(u32, String, Vec<f64>)>(1, &b).unwrap(), v);
        // Another type.
        assert!(matches!(
            decode::<(u32, String)>(1, &b),
            Err(ClusterError::BadMessage { from: 1, .. })
        ));
        // Cut.
        let e = decode::<(u32, String, Vec<f64>)>(2, &b[..b.len() - 3]).unwrap_err();
        assert!(e.to_string().contains("cut"), "{e}");
        // Not a message at all.
        assert!(decode::<u8>(0, &[1, 2, 3]).is_err());
        let mut wrong = b.clone();
        wrong[0] ^= 1;
        assert!(decode::<(u32, String, Vec<f64>)>(0, &wrong).is_err());
        // Corrupt payload with a right header.
        let mut bad = encode(&"text".to_string()).unwrap();
        let n = bad.len();
        bad[n - 1] = 0xff;
        bad[16] = 0xff;
        assert!(decode::<String>(0, &bad).is_err());
        // Small values stay one message.
        let (sent, count, got) = through::<_, (u32, String, Vec<f64>)>(&v, DIRECT);
        assert_eq!((sent.unwrap(), count), (Encoded::Whole, 1));
        assert_eq!(got.unwrap().unwrap(), v);
    }

    #[test]
    fn large_strings_go_out_as_parts_of_their_own() {
        // Large strings first, last, next to each other, and between
        // small fields.
        let v = (
            big(100, 1),
            7u32,
            "x".repeat(64),
            big(3, 2),
            vec![big(64, 3), big(80, 4)],
            "tail".to_string(),
            big(65, 5),
        );
        type V = (ByteBuf, u32, String, ByteBuf, Vec<ByteBuf>, String, ByteBuf);
        let (sent, count, got) = through::<_, V>(&v, 64);
        assert_eq!(sent.unwrap(), Encoded::Sent);
        // The first part, then a direct part and a link per large string.
        assert_eq!(count, 1 + 2 * 5);
        assert_eq!(got.unwrap().unwrap(), v);
        // The receiver refuses another type, and takes every part.
        let (_, _, got) = through::<_, (ByteBuf, u32)>(&v, 64);
        let e = got.unwrap().unwrap_err();
        assert!(e.to_string().contains("another type"), "{e}");
    }

    /// A value that fails to encode after its first field.
    struct FailsHalfway(ByteBuf);

    impl Serialize for FailsHalfway {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&self.0)?;
            Err(S::Error::custom("the second field broke"))
        }
    }

    #[test]
    fn a_sender_that_fails_halfway_fails_the_receiver_too() {
        // After a direct part went out: the receiver hears why.
        let (sent, count, got) = through::<_, (ByteBuf, u8)>(&FailsHalfway(big(70, 0)), 64);
        let e = sent.unwrap_err();
        assert!(matches!(e, ClusterError::Encode(_)), "{e}");
        assert_eq!(count, 3);
        let e = got.unwrap().unwrap_err();
        assert!(e.to_string().contains("could not encode"), "{e}");
        // Before anything went out: nothing is sent.
        let (sent, count, got) = through::<_, (ByteBuf, u8)>(&FailsHalfway(big(7, 0)), 64);
        assert!(sent.is_err());
        assert_eq!(count, 0);
        assert!(got.is_none());
    }

    /// A value whose encoding panics after a large string went out.
    struct PanicsHalfway;

    impl Serialize for PanicsHalfway {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&big(90, 1))?;
            panic!("a Serialize impl that panics");
        }
    }

    #[test]
    fn a_sender_that_panics_halfway_fails_the_receiver_too() {
        let mut parts = VecDeque::new();
        let mut out = Vec::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            encode_split(&PanicsHalfway, &mut out, 64, &mut |p| {
                parts.push_back(p.to_vec())
            })
        }));
        assert!(r.is_err());
        // The first part, the large string, and a link that says so.
        assert_eq!(parts.len(), 3);
        let e = receive_parts(parts).unwrap_err();
        assert!(e.to_string().contains("panicked"), "{e}");
    }

    /// Runs the receiver over `parts` (already encoded).
    fn receive_parts(mut parts: VecDeque<Vec<u8>>) -> Result<ByteBuf, ClusterError> {
        let first = parts.pop_front().unwrap();
        let mut buf = first.clone();
        receive(1, &mut buf, first.len(), &mut |buf, at| {
            let p = parts.pop_front().expect("a part the sender did not send");
            put(buf, at, &p);
            p.len()
        })
    }

    #[test]
    fn corrupt_parts_are_refused() {
        let mut parts = VecDeque::new();
        let mut out = Vec::new();
        let v = big(200, 9);
        encode_split(&v, &mut out, 100, &mut |p| parts.push_back(p.to_vec())).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(receive_parts(parts.clone()).unwrap(), v);
        // A wrong length in the last link.
        let mut cut = parts.clone();
        let last = cut.back_mut().unwrap();
        let n = last.len();
        last[n - 8] ^= 1;
        let e = receive_parts(cut).unwrap_err();
        assert!(e.to_string().contains("cut"), "{e}");
        // A link of an unknown kind.
        let mut odd = parts.clone();
        odd.back_mut().unwrap()[0] = 0;
        let e = receive_parts(odd).unwrap_err();
        assert!(e.to_string().contains("corrupt link"), "{e}");
        // A last link too short to hold the length.
        let mut short = parts.clone();
        *short.back_mut().unwrap() = vec![LAST, 1, 2];
        assert!(receive_parts(short).is_err());
        // An empty link.
        let mut empty = parts;
        *empty.back_mut().unwrap() = Vec::new();
        assert!(receive_parts(empty).is_err());
    }

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Field {
        Number(u64),
        Bytes(ByteBuf),
        Text(String),
    }

    fn field() -> impl Strategy<Value = Field> {
        prop_oneof![
            any::<u64>().prop_map(Field::Number),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| Field::Bytes(ByteBuf::from(b))),
            "[a-z]{0,40}".prop_map(Field::Text),
        ]
    }

    proptest! {
        #[test]
        fn any_value_arrives_whole(fields in proptest::collection::vec(field(), 0..12),
                                   direct in 11usize..48) {
            // (Below 11 bytes, varints would go out as parts too.)
            let (sent, count, got) = through::<_, Vec<Field>>(&fields, direct);
            let large = fields
                .iter()
                .filter(|f| match f {
                    Field::Bytes(b) => b.len() >= direct,
                    Field::Text(t) => t.len() >= direct,
                    Field::Number(_) => false,
                })
                .count();
            prop_assert_eq!(count, if large == 0 { 1 } else { 1 + 2 * large });
            prop_assert_eq!(sent.unwrap(), if large == 0 { Encoded::Whole } else { Encoded::Sent });
            prop_assert_eq!(got.unwrap().unwrap(), fields);
        }
    }
}
