//! Types that live in memory several processes map: the headers of pools,
//! heaps, chunks and camlboxes, and the raw locks inside them.
//!
//! An [`InShared`] type is `#[repr(C)]` (or transparent), has no padding,
//! holds no process-local pointers, and every bit pattern is a valid value:
//! another process (or a bug, or an attacker with the segment's name) may
//! have written anything there. Plain fields are `bytemuck` plain data;
//! fields that processes change while others look are atomics. The
//! [`in_shared!`] macro declares such a header and checks its layout at
//! compile time: every field `InShared`, the size the sum of the fields'
//! sizes.
//!
//! Headers are read through typed references into a mapping, or from a
//! copy of a segment's bytes with [`read_copy`]; never at hand-computed
//! offsets.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};

/// A type whose values may live in memory that other processes write.
///
/// # Safety
///
/// Implementors must be `#[repr(C)]` or `#[repr(transparent)]` (or
/// primitive), contain no padding bytes, and accept every bit pattern as a
/// valid value (no references, no `bool`, no enums, no niches). Interior
/// mutability is allowed (atomics, `UnsafeCell`): such memory is changed
/// by other processes anyway. [`in_shared!`] checks all of this for the
/// structs it declares.
pub(crate) unsafe trait InShared: bytemuck::Zeroable + Sized + 'static {}

macro_rules! in_shared_primitives {
    ($($t:ty),*) => {$(
        // SAFETY: a primitive integer or atomic integer: no padding, every
        // bit pattern valid.
        unsafe impl InShared for $t {}
    )*};
}
in_shared_primitives!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    AtomicU32,
    AtomicU64,
    AtomicUsize
);

// SAFETY: an array of `InShared` elements has no padding (the elements'
// size is a multiple of their alignment) and accepts every bit pattern.
unsafe impl<T: InShared, const N: usize> InShared for [T; N] {}

// SAFETY: `UnsafeCell<T>` has the in-memory representation of `T`.
unsafe impl<T: InShared> InShared for UnsafeCell<T> {}

// SAFETY: `SegmentHeader` is `Pod`: `#[repr(C)]`, no padding, every bit
// pattern valid.
unsafe impl InShared for crate::segment::SegmentHeader {}

/// Declares a `#[repr(C)]` struct that lives in shared memory and checks
/// at compile time that it is [`InShared`]: every field is, and the struct
/// has no padding (spell padding out as `_pad` fields).
macro_rules! in_shared {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name {
            $($(#[$fmeta])* $fvis $field: $ty),*
        }

        // SAFETY: `#[repr(C)]` and every field is `Zeroable` (checked by
        // the `InShared` bounds below): all zero bytes are a valid value.
        unsafe impl ::bytemuck::Zeroable for $name {}

        // SAFETY: `#[repr(C)]`, every field `InShared` and no padding, as
        // the assertion below checks at compile time.
        unsafe impl $crate::in_shared::InShared for $name {}

        const _: () = {
            const fn size<T: $crate::in_shared::InShared>() -> usize {
                ::std::mem::size_of::<T>()
            }
            assert!(
                ::std::mem::size_of::<$name>() == 0 $(+ size::<$ty>())*,
                concat!(stringify!($name), " has padding: spell it out as `_pad` fields"),
            );
        };
    };
}
pub(crate) use in_shared;

/// A copy of the `T` at the start of `bytes` (a copy of a segment's
/// bytes, which may hold anything); `None` when `bytes` is too short.
pub(crate) fn read_copy<T: InShared>(bytes: &[u8]) -> Option<T> {
    let len = std::mem::size_of::<T>();
    if bytes.len() < len {
        return None;
    }
    let mut value = T::zeroed();
    // SAFETY: `value` is a live local of `len` bytes and `bytes` holds at
    // least `len`; they do not overlap. `T: InShared` accepts every bit
    // pattern, so the copy is a valid `T`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            std::ptr::from_mut(&mut value).cast::<u8>(),
            len,
        );
    }
    Some(value)
}

/// The pointer for an address inside memory shared between processes.
///
/// Values in shared memory hold addresses as integers: another process
/// wrote them, so they carry no provenance. The mappings they point into
/// came from the kernel and had their provenance exposed when they were
/// mapped (see `os::mapping`), and this is where an address picks it up
/// again: the one place where an integer becomes a pointer. Dereferencing
/// the result is `unsafe` and needs the usual proof that the address lies
/// in a live mapping and holds a valid value.
#[inline(always)]
pub(crate) fn at<T>(addr: usize) -> *mut T {
    std::ptr::with_exposed_provenance_mut(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    in_shared! {
        /// A header for the tests.
        struct Probe {
            a: u32,
            _pad: u32,
            b: AtomicU64,
            c: [u8; 8],
        }
    }

    #[test]
    fn copies_read_any_bytes_and_refuse_short_ones() {
        let mut bytes = vec![0xA5u8; std::mem::size_of::<Probe>() + 3];
        bytes[..4].copy_from_slice(&7u32.to_ne_bytes());
        let p: Probe = read_copy(&bytes).unwrap();
        assert_eq!(p.a, 7);
        assert_eq!(p.b.into_inner(), u64::from_ne_bytes([0xA5; 8]));
        assert_eq!(p.c, [0xA5; 8]);
        assert!(read_copy::<Probe>(&bytes[..std::mem::size_of::<Probe>() - 1]).is_none());
    }
}
