//! Keys of shared tables: the deterministic hasher every process agrees
//! on, and how each key type is hashed and compared, as a local value and
//! as its shared representation.

use std::hash::Hasher;

use crate::value::{
    Shared, SharedBox, SharedOption, SharedString, SharedVec, Tuple1, Tuple2, Tuple3, Tuple4,
};

/// The deterministic hasher of shared tables: 64-bit FNV-1a over bytes, a
/// multiply per word for integers, and a final avalanche. Every process
/// computes the same hash for the same key (unlike `RandomState`).
#[derive(Debug, Clone)]
pub struct KeyHasher(u64);

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl KeyHasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // A final avalanche, so that the low bits (the bucket) depend on
        // every input byte.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn write_u64(&mut self, x: u64) {
        // A whole word at once (integer keys): `finish` spreads it.
        self.0 = (self.0 ^ x)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

/// A key of an [`SHashtbl`](super::SHashtbl): a [`Shared`] type that can be hashed and
/// compared both as a local value (the key looked up) and as its shared
/// representation (the keys stored), consistently:
/// `hash_local(k) == hash_repr(repr of k)` and `k.eq_repr(r)` exactly when
/// `r` is a copy of a key equal to `k`.
///
/// Implemented for integers, `bool`, `char`, `()`, `String`, and `Option`,
/// `Box`, `Vec` and tuples (up to 4) of keys. For a derived type, hash and
/// compare the fields in the same order on both sides:
///
/// ```
/// use mc::structures::{KeyHasher, SharedKey};
/// use mc::Repr;
///
/// #[derive(mc::Shared, Clone, PartialEq, Debug)]
/// struct Point { x: i32, y: i32 }
///
/// impl SharedKey for Point {
///     fn hash_local(&self, h: &mut KeyHasher) {
///         self.x.hash_local(h);
///         self.y.hash_local(h);
///     }
///     fn hash_repr(r: &Repr<Self>, h: &mut KeyHasher) {
///         i32::hash_repr(&r.x, h);
///         i32::hash_repr(&r.y, h);
///     }
///     fn eq_repr(&self, r: &Repr<Self>) -> bool {
///         self.x == r.x && self.y == r.y
///     }
/// }
/// ```
pub trait SharedKey: Shared {
    /// Feeds the local key to `h`.
    fn hash_local(&self, h: &mut KeyHasher);
    /// Feeds a shared key to `h`, exactly as [`hash_local`](Self::hash_local)
    /// would feed the equal local key.
    fn hash_repr(r: &Self::Repr, h: &mut KeyHasher);
    /// Whether the local key equals a shared one.
    fn eq_repr(&self, r: &Self::Repr) -> bool;
}

macro_rules! int_key {
    ($($t:ty),*) => {$(
        impl SharedKey for $t {
            fn hash_local(&self, h: &mut KeyHasher) {
                // (Signed integers widen with their sign: the same on both
                // sides.)
                h.write_u64(*self as u64);
            }
            fn hash_repr(r: &$t, h: &mut KeyHasher) {
                h.write_u64(*r as u64);
            }
            fn eq_repr(&self, r: &$t) -> bool {
                self == r
            }
        }
    )*};
}

int_key!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

macro_rules! wide_int_key {
    ($($t:ty),*) => {$(
        impl SharedKey for $t {
            fn hash_local(&self, h: &mut KeyHasher) {
                h.write_u64(*self as u64);
                h.write_u64((*self >> 64) as u64);
            }
            fn hash_repr(r: &$t, h: &mut KeyHasher) {
                h.write_u64(*r as u64);
                h.write_u64((*r >> 64) as u64);
            }
            fn eq_repr(&self, r: &$t) -> bool {
                self == r
            }
        }
    )*};
}

wide_int_key!(u128, i128);

impl SharedKey for bool {
    fn hash_local(&self, h: &mut KeyHasher) {
        h.write_u8(*self as u8);
    }
    fn hash_repr(r: &bool, h: &mut KeyHasher) {
        h.write_u8(*r as u8);
    }
    fn eq_repr(&self, r: &bool) -> bool {
        self == r
    }
}

impl SharedKey for char {
    fn hash_local(&self, h: &mut KeyHasher) {
        h.write(&(*self as u32).to_le_bytes());
    }
    fn hash_repr(r: &char, h: &mut KeyHasher) {
        h.write(&(*r as u32).to_le_bytes());
    }
    fn eq_repr(&self, r: &char) -> bool {
        self == r
    }
}

impl SharedKey for () {
    fn hash_local(&self, _h: &mut KeyHasher) {}
    fn hash_repr(_r: &(), _h: &mut KeyHasher) {}
    fn eq_repr(&self, _r: &()) -> bool {
        true
    }
}

fn hash_bytes(b: &[u8], h: &mut KeyHasher) {
    h.write(&(b.len() as u64).to_le_bytes());
    h.write(b);
}

impl SharedKey for String {
    fn hash_local(&self, h: &mut KeyHasher) {
        hash_bytes(self.as_bytes(), h);
    }
    fn hash_repr(r: &SharedString, h: &mut KeyHasher) {
        hash_bytes(r.as_bytes(), h);
    }
    fn eq_repr(&self, r: &SharedString) -> bool {
        self.as_str() == r.as_str()
    }
}

impl<T: SharedKey> SharedKey for Box<T> {
    fn hash_local(&self, h: &mut KeyHasher) {
        (**self).hash_local(h);
    }
    fn hash_repr(r: &SharedBox<T::Repr>, h: &mut KeyHasher) {
        T::hash_repr(r, h);
    }
    fn eq_repr(&self, r: &SharedBox<T::Repr>) -> bool {
        (**self).eq_repr(r)
    }
}

impl<T: SharedKey> SharedKey for Option<T> {
    fn hash_local(&self, h: &mut KeyHasher) {
        match self {
            None => h.write_u8(0),
            Some(x) => {
                h.write_u8(1);
                x.hash_local(h);
            }
        }
    }
    fn hash_repr(r: &SharedOption<T::Repr>, h: &mut KeyHasher) {
        match r {
            SharedOption::None => h.write_u8(0),
            SharedOption::Some(x) => {
                h.write_u8(1);
                T::hash_repr(x, h);
            }
        }
    }
    fn eq_repr(&self, r: &SharedOption<T::Repr>) -> bool {
        match (self, r) {
            (None, SharedOption::None) => true,
            (Some(a), SharedOption::Some(b)) => a.eq_repr(b),
            _ => false,
        }
    }
}

impl<T: SharedKey> SharedKey for Vec<T> {
    fn hash_local(&self, h: &mut KeyHasher) {
        h.write(&(self.len() as u64).to_le_bytes());
        for x in self {
            x.hash_local(h);
        }
    }
    fn hash_repr(r: &SharedVec<T::Repr>, h: &mut KeyHasher) {
        h.write(&(r.len() as u64).to_le_bytes());
        for x in r.iter() {
            T::hash_repr(x, h);
        }
    }
    fn eq_repr(&self, r: &SharedVec<T::Repr>) -> bool {
        self.len() == r.len() && self.iter().zip(r.iter()).all(|(a, b)| a.eq_repr(b))
    }
}

macro_rules! tuple_key {
    ($name:ident: $($t:ident $i:tt),+) => {
        impl<$($t: SharedKey),+> SharedKey for ($($t,)+) {
            fn hash_local(&self, h: &mut KeyHasher) {
                $(self.$i.hash_local(h);)+
            }
            fn hash_repr(r: &$name<$($t::Repr),+>, h: &mut KeyHasher) {
                $($t::hash_repr(&r.$i, h);)+
            }
            fn eq_repr(&self, r: &$name<$($t::Repr),+>) -> bool {
                true $(&& self.$i.eq_repr(&r.$i))+
            }
        }
    };
}

tuple_key!(Tuple1: A 0);
tuple_key!(Tuple2: A 0, B 1);
tuple_key!(Tuple3: A 0, B 1, C 2);
tuple_key!(Tuple4: A 0, B 1, C 2, D 3);

pub(in crate::structures) fn hash_local<K: SharedKey>(k: &K) -> u64 {
    let mut h = KeyHasher::new();
    k.hash_local(&mut h);
    h.finish()
}

pub(super) fn hash_repr<K: SharedKey>(k: &K::Repr) -> u64 {
    let mut h = KeyHasher::new();
    K::hash_repr(k, &mut h);
    h.finish()
}
