//! Changes of a vector's array in steps that a process killed between
//! any two of them leaves valid (each a whole word, in a set order): what
//! the shared structures build their recovery after a death on.

use std::pin::Pin;

use super::SharedVec;
use crate::in_shared::at;
use crate::value::copy::FreshArray;
use crate::value::Shared;

impl<R> SharedVec<R> {
    /// Makes `src`'s array this vector's (this vector's own becomes
    /// garbage) and leaves `src` without one. This vector changes one
    /// field at a time, valid after each write (a process can be killed
    /// between them): its length goes to 0, its room to 0, then it takes
    /// `src`'s address, room and length, in that order.
    ///
    /// # Safety
    ///
    /// `src` must live in the same heap as this vector, and no reachable
    /// value may refer to `src` (its array then has one owner, this
    /// vector).
    pub(crate) unsafe fn take_array(self: Pin<&mut Self>, src: Pin<&mut Self>) {
        let fence = || std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        // SAFETY: only integer fields change in place. After each write the
        // vector is valid: empty with room in its old array, empty without
        // room, empty at `src`'s address, with `src`'s room there, then
        // `src`'s elements (initialised, `src`'s invariant). `src` is left
        // empty and without an array, so the array has one owner.
        unsafe {
            let (ptr, len, cap) = (src.ptr, src.len, src.cap);
            let v = self.get_unchecked_mut();
            v.len = 0;
            fence();
            v.cap = 0;
            fence();
            v.ptr = ptr;
            fence();
            v.cap = cap;
            fence();
            v.len = len;
            let s = src.get_unchecked_mut();
            (s.len, s.cap, s.ptr) = (0, 0, 0);
        }
    }

    /// Lets go of the array of an empty vector (it becomes garbage): its
    /// room first, then its address, so that a process killed in between
    /// leaves a valid, empty vector.
    pub(crate) fn forget_array(self: Pin<&mut Self>) {
        if self.len != 0 {
            return;
        }
        // SAFETY: only integer fields change in place; a vector without
        // room or elements refers to no array, whatever its address.
        unsafe {
            let v = self.get_unchecked_mut();
            v.cap = 0;
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            v.ptr = 0;
        }
    }

    /// Copies element `j + 1` over element `j` (nothing when `j + 1` is not
    /// an element). Only for representations without pointers, where a
    /// bitwise copy is a whole, valid value that shares nothing.
    ///
    /// # Panics
    ///
    /// When `T` has pointers.
    pub(crate) fn copy_down<T: Shared<Repr = R>>(self: Pin<&mut Self>, j: usize) {
        assert!(
            !T::HAS_POINTERS,
            "mc: a bitwise copy of a value with pointers"
        );
        if j.checked_add(1).is_none_or(|next| next >= self.len) {
            return;
        }
        // SAFETY: `j` and `j + 1` are elements (`j + 1 < len`): initialised
        // values of the array (the vector's invariant); the copy overwrites
        // the one at `j` with the bytes of the next, which for a
        // representation without pointers (checked) is a valid value that
        // refers to nothing. Representations have no `Drop`. Only the
        // array's contents change; nothing moves.
        unsafe {
            let p = at::<R>(self.ptr);
            std::ptr::copy_nonoverlapping(p.add(j + 1), p.add(j), 1);
        }
    }

    /// Makes `dst`, a full array of as many elements as the vector has,
    /// the vector's array (the old one becomes garbage), writing its
    /// capacity, then its address, each write a whole word after the one
    /// before: a process that dies in between leaves the old array with a
    /// smaller capacity (still within its room), or the new one, never a
    /// mix that points past an array. `dst` must be an array of the target
    /// this vector lives in (the contract of the [`Writer`] that allocated
    /// it).
    ///
    /// # Safety
    ///
    /// `dst` must be an array of the target (heap) this vector lives in,
    /// holding the values the vector is to hold, none of which any other
    /// value refers to once the old array is let go.
    ///
    /// # Panics
    ///
    /// When `dst` is not full or not as long as the vector.
    pub(crate) unsafe fn install(self: Pin<&mut Self>, dst: FreshArray<R>) {
        assert!(
            dst.len() == self.len && dst.capacity() == self.len,
            "mc: an array to install must be full and as long as the vector"
        );
        let (ptr, _, cap) = dst.into_parts();
        // SAFETY: only the vector's integer fields change in place. The
        // old array has room for at least `len == cap` elements, so the
        // vector is valid after the first write; after the second it is
        // `dst`, whose `len` elements are initialised (it is full). The old
        // elements are never used again (representations have no `Drop`).
        unsafe {
            let v = self.get_unchecked_mut();
            v.cap = cap;
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            v.ptr = ptr;
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// The layout of a [`SharedOption`] (`repr(C, u8)`): its tag, then its
/// value where a `repr(C)` struct of the two would put it.
#[repr(C)]
struct OptionLayout<R> {
    tag: u8,
    value: R,
}

impl<R> super::SharedOption<R> {
    /// Makes an empty option `Some(r)` with the value written first and
    /// the tag last (one byte), so that a process killed in between leaves
    /// it `None`; `Err(r)` when it is `Some` already.
    pub(crate) fn fill(self: Pin<&mut Self>, r: R) -> Result<(), R> {
        if self.as_ref().is_some() {
            return Err(r);
        }
        // SAFETY: a `repr(C, u8)` enum is laid out as a `repr(C)` struct
        // of its `u8` tag and a union of its variants' fields, so the value
        // of `Some` lies where `OptionLayout` puts it and the tags are 0
        // (`None`) and 1 (`Some`). While the tag says `None` the value's
        // bytes are no part of the option's value: writing them leaves a
        // valid `None`; then the tag makes it `Some(r)`. Nothing moves
        // (only bytes of this place are written).
        unsafe {
            let p = std::ptr::from_mut::<Self>(self.get_unchecked_mut()).cast::<u8>();
            let value = p
                .add(std::mem::offset_of!(OptionLayout<R>, value))
                .cast::<R>();
            value.write(r);
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            p.write(1);
        }
        Ok(())
    }

    /// Makes the option `None` by writing its tag alone (one byte; its
    /// value becomes garbage).
    pub(crate) fn empty(self: Pin<&mut Self>) {
        // SAFETY: as in `fill`: tag 0 is `None`, whatever the other bytes
        // hold; representations have no `Drop`, and nothing moves.
        unsafe {
            std::ptr::from_mut::<Self>(self.get_unchecked_mut())
                .cast::<u8>()
                .write(0)
        };
    }
}

const _: () = {
    // `fill`'s layout assumption, checked for a few payloads.
    use std::mem::{offset_of, size_of};
    assert!(size_of::<super::SharedOption<u64>>() == size_of::<OptionLayout<u64>>());
    assert!(offset_of!(OptionLayout<u64>, value) == 8);
    assert!(size_of::<super::SharedOption<u8>>() == 2);
};
