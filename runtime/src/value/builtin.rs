//! `Shared` for numbers, `bool`, `char`, `()`, `String`, `Vec`, `Box`,
//! `Option`, tuples and arrays, and their shared representations.

use std::fmt;
use std::marker::{PhantomData, PhantomPinned};
use std::mem::{align_of, size_of, MaybeUninit};
use std::pin::Pin;
use std::ptr;

use super::copy::{CopyError, FreshArray, Invalid, Tracer, Validator, Writer};
use super::fingerprint::{fingerprint_combine, fingerprint_str};
use super::Shared;
use crate::in_shared::at;

mod steps;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("mc supports 64-bit targets only");

/// Makes a pointer-carrying representation `!Send`, `!Sync` and `!Unpin`.
type Anchored = (PhantomData<*const ()>, PhantomPinned);

const ANCHORED: Anchored = (PhantomData, PhantomPinned);

macro_rules! pod {
    ($($t:ty),*) => {$(
        // SAFETY: numbers are plain bytes: `Repr` is `Self`, every bit
        // pattern is valid, there are no pointers.
        unsafe impl Shared for $t {
            type Repr = $t;
            const FINGERPRINT: u64 = fingerprint_str(stringify!($t));
            const HAS_POINTERS: bool = false;
            const IS_POD: bool = true;
            #[inline]
            fn to_repr(&self, _w: &mut Writer<'_>) -> Result<$t, CopyError> { Ok(*self) }
            #[inline]
            fn repr_to_repr(src: &$t, _w: &mut Writer<'_>) -> Result<$t, CopyError> { Ok(*src) }
            #[inline]
            fn from_repr(src: &$t) -> $t { *src }
            #[inline]
            fn trace(_src: &$t, _t: &mut Tracer<'_>) {}
            #[inline]
            unsafe fn validate(_src: *const $t, _v: &mut Validator<'_>) -> Result<(), Invalid> {
                Ok(())
            }
        }
    )*};
}

pod!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    ()
);

// SAFETY: `bool` has no pointers; `validate` checks the byte.
unsafe impl Shared for bool {
    type Repr = bool;
    const FINGERPRINT: u64 = fingerprint_str("bool");
    const HAS_POINTERS: bool = false;
    fn to_repr(&self, _w: &mut Writer<'_>) -> Result<bool, CopyError> {
        Ok(*self)
    }
    fn repr_to_repr(src: &bool, _w: &mut Writer<'_>) -> Result<bool, CopyError> {
        Ok(*src)
    }
    fn from_repr(src: &bool) -> bool {
        *src
    }
    fn trace(_src: &bool, _t: &mut Tracer<'_>) {}
    unsafe fn validate(src: *const bool, _v: &mut Validator<'_>) -> Result<(), Invalid> {
        // SAFETY: the caller guarantees one readable byte at `src`.
        let b = unsafe { ptr::read(src.cast::<u8>()) };
        if b > 1 {
            return Err(Invalid::BadBool(b));
        }
        Ok(())
    }
}

// SAFETY: `char` has no pointers; `validate` checks the scalar value.
unsafe impl Shared for char {
    type Repr = char;
    const FINGERPRINT: u64 = fingerprint_str("char");
    const HAS_POINTERS: bool = false;
    fn to_repr(&self, _w: &mut Writer<'_>) -> Result<char, CopyError> {
        Ok(*self)
    }
    fn repr_to_repr(src: &char, _w: &mut Writer<'_>) -> Result<char, CopyError> {
        Ok(*src)
    }
    fn from_repr(src: &char) -> char {
        *src
    }
    fn trace(_src: &char, _t: &mut Tracer<'_>) {}
    unsafe fn validate(src: *const char, _v: &mut Validator<'_>) -> Result<(), Invalid> {
        // SAFETY: the caller guarantees four readable bytes at `src`.
        let c = unsafe { ptr::read_unaligned(src.cast::<u32>()) };
        if char::from_u32(c).is_none() {
            return Err(Invalid::BadChar(c));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// String

/// The shared representation of `String`: an immutable UTF-8 string in
/// shared memory. Read it as a `&str` (it derefs to `str`); replace it with
/// the mutator.
#[repr(C)]
pub struct SharedString {
    ptr: usize,
    len: usize,
    _anchor: Anchored,
}

impl SharedString {
    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        if self.len == 0 {
            return "";
        }
        // SAFETY: a `SharedString` only exists in target memory written by the
        // copier (or validated): `ptr` points to `len` bytes of UTF-8 that
        // live as long as the value is reachable, which the guard that lent
        // `&self` ensures.
        unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(at::<u8>(self.ptr), self.len))
        }
    }

    pub(crate) fn empty() -> Self {
        SharedString {
            ptr: 0,
            len: 0,
            _anchor: ANCHORED,
        }
    }

    pub(crate) fn write(s: &str, w: &mut Writer<'_>) -> Result<SharedString, CopyError> {
        if s.is_empty() {
            return Ok(SharedString::empty());
        }
        let mut bytes = w.alloc_fresh::<u8>(s.len())?;
        bytes.extend_pod::<u8>(s.as_bytes());
        let (ptr, len, _) = bytes.into_parts();
        Ok(SharedString {
            ptr,
            len,
            _anchor: ANCHORED,
        })
    }
}

impl std::ops::Deref for SharedString {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SharedString {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for SharedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SharedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl PartialEq for SharedString {
    fn eq(&self, other: &SharedString) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for SharedString {}
impl PartialEq<str> for SharedString {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
impl PartialEq<&str> for SharedString {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
impl PartialEq<String> for SharedString {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}
impl std::hash::Hash for SharedString {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

// SAFETY: the bytes are allocated through the writer, traced as a leaf and
// validated (range and UTF-8); `SharedString` is anchored.
unsafe impl Shared for String {
    type Repr = SharedString;
    const FINGERPRINT: u64 = fingerprint_str("String");
    const HAS_POINTERS: bool = true;
    fn to_repr(&self, w: &mut Writer<'_>) -> Result<SharedString, CopyError> {
        SharedString::write(self, w)
    }
    fn repr_to_repr(src: &SharedString, w: &mut Writer<'_>) -> Result<SharedString, CopyError> {
        SharedString::write(src.as_str(), w)
    }
    fn from_repr(src: &SharedString) -> String {
        src.as_str().to_owned()
    }
    fn trace(src: &SharedString, t: &mut Tracer<'_>) {
        if src.len > 0 {
            t.visit_leaf(src.ptr);
        }
    }
    unsafe fn validate(src: *const SharedString, v: &mut Validator<'_>) -> Result<(), Invalid> {
        // SAFETY: the caller guarantees `src` is readable for a `SharedString`;
        // its fields are plain integers, valid for any bytes.
        let (p, len) = unsafe {
            (
                ptr::read(ptr::addr_of!((*src).ptr)),
                ptr::read(ptr::addr_of!((*src).len)),
            )
        };
        if len == 0 {
            return Ok(());
        }
        v.check(p, len, 1)?;
        // SAFETY: the range was checked to lie inside the validator's region.
        let bytes = unsafe { std::slice::from_raw_parts(at::<u8>(p), len) };
        std::str::from_utf8(bytes).map_err(|_| Invalid::BadUtf8)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Vec

/// The shared representation of `Vec<T>`: an array in shared memory. Read
/// it as a slice (it derefs to `[R]`); change elements in place through
/// [`SharedVec::get_pin`] / [`SharedVec::iter_pin`] inside a modification.
#[repr(C)]
pub struct SharedVec<R> {
    ptr: usize,
    len: usize,
    cap: usize,
    _elem: PhantomData<R>,
    _anchor: Anchored,
}

impl<R> SharedVec<R> {
    /// The elements.
    #[inline]
    pub fn as_slice(&self) -> &[R] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: a `SharedVec` only exists in target memory written by the
        // copier (or validated): `ptr` points to `len` initialised elements
        // that live as long as the vector is reachable.
        unsafe { std::slice::from_raw_parts(at::<R>(self.ptr), self.len) }
    }

    /// The number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of elements the array has room for without reallocation.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The elements, pinned.
    #[inline]
    fn elems_pin(self: Pin<&mut Self>) -> Pin<&mut [R]> {
        // SAFETY: a `SharedVec` only exists in target memory written by the
        // copier (or validated): `ptr` points to `len` initialised elements
        // (none are read when `len` is 0). They are reachable only through
        // this vector (shared values form trees), so the exclusive borrow of
        // the vector extends to them, and they are pinned as the vector is:
        // nothing moves a pinned representation without `unsafe`.
        unsafe {
            Pin::new_unchecked(if self.len == 0 {
                &mut []
            } else {
                std::slice::from_raw_parts_mut(at::<R>(self.ptr), self.len)
            })
        }
    }

    /// The element at `i`, pinned for modification.
    pub fn get_pin(self: Pin<&mut Self>, i: usize) -> Option<Pin<&mut R>> {
        pin_get(self.elems_pin(), i)
    }

    /// All elements, pinned for modification.
    pub fn iter_pin(self: Pin<&mut Self>) -> impl Iterator<Item = Pin<&mut R>> {
        pin_iter(self.elems_pin())
    }

    /// The elements as a mutable slice, for element types that can move
    /// freely (numbers and other pointer-free representations).
    pub fn as_mut_slice(self: Pin<&mut Self>) -> &mut [R]
    where
        R: Unpin,
    {
        Pin::into_inner(self.elems_pin())
    }

    #[allow(dead_code)] // for the heap's mutator
    pub(crate) fn raw_parts(&self) -> (usize, usize, usize) {
        (self.ptr, self.len, self.cap)
    }

    /// A vector without elements or array.
    pub(crate) fn empty() -> Self {
        SharedVec {
            ptr: 0,
            len: 0,
            cap: 0,
            _elem: PhantomData,
            _anchor: ANCHORED,
        }
    }

    /// The vector whose array is `a` (its elements: those written).
    pub(crate) fn from_fresh(a: FreshArray<R>) -> Self {
        let (ptr, len, cap) = a.into_parts();
        SharedVec {
            ptr,
            len,
            cap,
            _elem: PhantomData,
            _anchor: ANCHORED,
        }
    }

    /// Appends `r` when the array has room; gives it back otherwise.
    #[allow(dead_code)] // for the heap's mutator
    pub(crate) fn push_within_capacity(self: Pin<&mut Self>, r: R) -> Result<(), R> {
        if self.len >= self.cap {
            return Err(r);
        }
        // SAFETY: the array has room for `cap` elements (the vector's
        // invariant, as in `elems_pin`; validation checks all of it), so
        // slot `len < cap` is allocated and holds no element: writing there
        // overwrites nothing, and the length then covers it. Only the
        // vector's fields change in place; nothing moves.
        unsafe {
            let v = self.get_unchecked_mut();
            at::<R>(v.ptr).add(v.len).write(r);
            // The element is whole before the length covers it (a process
            // killed in between leaves it outside).
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            v.len += 1;
        }
        Ok(())
    }

    /// Appends byte copies of `src`, values of a plain-data type (whose
    /// representation is itself), when they fit in the room left; `false`
    /// (nothing appended) otherwise.
    ///
    /// # Panics
    ///
    /// When `T` is not plain data.
    #[allow(dead_code)] // for the heap's mutator
    pub(crate) fn extend_pod<T: Shared<Repr = R>>(self: Pin<&mut Self>, src: &[R]) -> bool {
        assert!(
            T::IS_POD,
            "mc: byte copies of a type that is not plain data"
        );
        if src.len() > self.cap - self.len {
            return false;
        }
        // SAFETY: slots `len..len + src.len()` are allocated spare room of
        // the array (checked just above; the invariant as in
        // `push_within_capacity`), which `src`, a shared borrow, cannot
        // overlap; for plain data a byte copy is a valid copy (the `IS_POD`
        // contract of `Shared`). Only the vector's fields change in place.
        unsafe {
            let v = self.get_unchecked_mut();
            ptr::copy_nonoverlapping(src.as_ptr(), at::<R>(v.ptr).add(v.len), src.len());
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            v.len += src.len();
        }
        true
    }

    /// Shortens the vector to `len` elements (when it is longer). The
    /// elements past `len` stay in the array as garbage (representations
    /// have no `Drop`).
    #[allow(dead_code)] // for the heap's mutator
    pub(crate) fn truncate(self: Pin<&mut Self>, len: usize) {
        if len < self.len {
            // SAFETY: only an integer field is changed, to a smaller
            // length: the first `len` elements stay initialised; nothing
            // moves.
            unsafe { self.get_unchecked_mut().len = len };
        }
    }

    /// Moves the elements into `dst` and makes it the vector's array (the
    /// old array becomes garbage). `dst` must be an array of the target
    /// this vector lives in (the contract of the [`Writer`] that allocated
    /// it).
    ///
    /// # Panics
    ///
    /// When `dst` is not empty or has no room for the elements.
    #[allow(dead_code)] // for the heap's mutator
    pub(crate) fn relocate(self: Pin<&mut Self>, mut dst: FreshArray<R>) {
        assert!(
            dst.len() == 0 && dst.capacity() >= self.len,
            "mc: no room to move a vector's elements"
        );
        // SAFETY: the `len` elements are initialised (the vector's
        // invariant) and reachable only through this vector, which is
        // borrowed exclusively: they move bitwise into `dst` (another
        // allocation, with room for them, checked above), and the old array
        // is never used again. Moving them is what pinning forbids to safe
        // code; representations hold no address of themselves and have no
        // `Drop`, so a move inside the target that nothing observes is
        // sound. Then only the vector's fields change in place.
        unsafe {
            let v = self.get_unchecked_mut();
            if v.len > 0 {
                dst.move_from(at::<R>(v.ptr), v.len);
            }
            // One field at a time, in an order that leaves a valid vector
            // after each (a process can be killed between them): for a
            // larger array its address first, then its room; for a smaller
            // one its room first. (The length does not change.)
            let (ptr, _, cap) = dst.into_parts();
            let fence = || std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            // (The elements are in place before the vector points there.)
            fence();
            if cap >= v.cap {
                v.ptr = ptr;
                fence();
                v.cap = cap;
            } else {
                v.cap = cap;
                fence();
                v.ptr = ptr;
            }
            fence();
        }
    }
}

/// Element `i` of a pinned slice, pinned.
#[inline]
fn pin_get<R>(s: Pin<&mut [R]>, i: usize) -> Option<Pin<&mut R>> {
    // SAFETY: structural pinning of slice elements: the element is borrowed
    // exclusively from the pinned slice and re-pinned at once; nothing
    // moves it.
    unsafe {
        s.get_unchecked_mut()
            .get_mut(i)
            .map(|r| Pin::new_unchecked(r))
    }
}

/// The elements of a pinned slice, pinned.
#[inline]
fn pin_iter<R>(s: Pin<&mut [R]>) -> impl Iterator<Item = Pin<&mut R>> {
    // SAFETY: as in `pin_get`, for each element, yielded once (the
    // exclusive borrows do not overlap).
    unsafe {
        s.get_unchecked_mut()
            .iter_mut()
            .map(|r| Pin::new_unchecked(r))
    }
}

impl<R> std::ops::Deref for SharedVec<R> {
    type Target = [R];
    fn deref(&self) -> &[R] {
        self.as_slice()
    }
}

impl<R: fmt::Debug> fmt::Debug for SharedVec<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<R: PartialEq> PartialEq for SharedVec<R> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// Plain-data values as their representations (the same values: for plain
/// data, `Repr` is `Self`).
///
/// # Panics
///
/// When `T` is not plain data.
#[inline]
pub(crate) fn pod_reprs<T: Shared>(src: &[T]) -> &[T::Repr] {
    assert!(
        T::IS_POD,
        "mc: byte copies of a type that is not plain data"
    );
    // SAFETY: for plain data `Repr` is `Self` (the `IS_POD` contract of
    // `Shared`), so the slice's memory holds `src.len()` valid
    // representations, borrowed as `src` is.
    unsafe { std::slice::from_raw_parts(src.as_ptr().cast::<T::Repr>(), src.len()) }
}

fn write_slice<T: Shared>(src: &[T], w: &mut Writer<'_>) -> Result<SharedVec<T::Repr>, CopyError> {
    if T::IS_POD {
        return write_repr_slice::<T>(pod_reprs(src), w);
    }
    if src.is_empty() {
        return Ok(SharedVec::empty());
    }
    let mut a = w.alloc_fresh::<T::Repr>(src.len())?;
    for x in src {
        a.push(x.to_repr(w)?);
    }
    Ok(SharedVec::from_fresh(a))
}

fn write_repr_slice<T: Shared>(
    src: &[T::Repr],
    w: &mut Writer<'_>,
) -> Result<SharedVec<T::Repr>, CopyError> {
    if src.is_empty() {
        return Ok(SharedVec::empty());
    }
    let mut a = w.alloc_fresh::<T::Repr>(src.len())?;
    if T::IS_POD {
        a.extend_pod::<T>(src);
    } else {
        for x in src {
            a.push(T::repr_to_repr(x, w)?);
        }
    }
    Ok(SharedVec::from_fresh(a))
}

fn read_slice<T: Shared>(src: &[T::Repr]) -> Vec<T> {
    if T::IS_POD {
        let mut out = Vec::<T>::with_capacity(src.len());
        // SAFETY: POD representations are `Self`; `out` has room for
        // `src.len()` elements, which are initialised by the copy.
        unsafe {
            ptr::copy_nonoverlapping(src.as_ptr().cast::<T>(), out.as_mut_ptr(), src.len());
            out.set_len(src.len());
        }
        out
    } else {
        src.iter().map(T::from_repr).collect()
    }
}

/// # Safety
///
/// `p` must be readable for `n` elements, inside the validator's region
/// (already checked).
unsafe fn validate_elems<T: Shared>(
    p: *const T::Repr,
    n: usize,
    v: &mut Validator<'_>,
) -> Result<(), Invalid> {
    if T::IS_POD || n == 0 {
        return Ok(());
    }
    v.enter()?;
    for i in 0..n {
        // SAFETY: element `i < n` lies in the checked range.
        unsafe { T::validate(p.add(i), v)? };
    }
    v.leave();
    Ok(())
}

// SAFETY: the array is allocated through the writer, traced with its length
// and validated (range, then every element); `SharedVec` is anchored.
unsafe impl<T: Shared> Shared for Vec<T> {
    type Repr = SharedVec<T::Repr>;
    const FINGERPRINT: u64 = fingerprint_combine(&[fingerprint_str("Vec"), T::SHALLOW_FINGERPRINT]);
    const HAS_POINTERS: bool = true;
    fn to_repr(&self, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        write_slice(self, w)
    }
    fn repr_to_repr(src: &Self::Repr, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        write_repr_slice::<T>(src.as_slice(), w)
    }
    fn from_repr(src: &Self::Repr) -> Self {
        read_slice(src.as_slice())
    }
    fn trace(src: &Self::Repr, t: &mut Tracer<'_>) {
        // A vector with room (`cap > 0`) owns its array, even when empty.
        if src.cap > 0 || src.len > 0 {
            t.visit::<T>(src.ptr, src.len);
        }
    }
    unsafe fn validate(src: *const Self::Repr, v: &mut Validator<'_>) -> Result<(), Invalid> {
        // SAFETY: `src` is readable (caller); the fields are integers.
        let (p, len, cap) = unsafe {
            (
                ptr::read(ptr::addr_of!((*src).ptr)),
                ptr::read(ptr::addr_of!((*src).len)),
                ptr::read(ptr::addr_of!((*src).cap)),
            )
        };
        // The array is `cap` elements long, and writers fill it in place up
        // to `cap`: all of it must lie where the pointer may lead.
        if len > cap {
            return Err(Invalid::BadLength { len, cap });
        }
        if cap == 0 {
            return Ok(());
        }
        v.check_array::<T::Repr>(p, cap)?;
        // SAFETY: the array's range (`cap >= len` elements) was just checked.
        unsafe { validate_elems::<T>(at::<T::Repr>(p), len, v) }
    }
}

// ---------------------------------------------------------------------------
// Box

/// The shared representation of `Box<T>`: a pointer to a value in shared
/// memory. Derefs to the value; [`SharedBox::as_pin`] pins it for modification.
#[repr(C)]
pub struct SharedBox<R> {
    ptr: usize,
    _elem: PhantomData<R>,
    _anchor: Anchored,
}

impl<R> SharedBox<R> {
    /// The boxed value, pinned for modification (what `as_mut` is to
    /// `&mut Box<T>`).
    pub fn as_pin(self: Pin<&mut Self>) -> Pin<&mut R> {
        // SAFETY: the boxed value is exclusively owned by this box (shared
        // values form trees) and never moves.
        unsafe { Pin::new_unchecked(&mut *at::<R>(self.ptr)) }
    }
}

impl<R> std::ops::Deref for SharedBox<R> {
    type Target = R;
    fn deref(&self) -> &R {
        // SAFETY: a `SharedBox` only exists in target memory written by the
        // copier (or validated): `ptr` points to a valid `R` that lives as
        // long as the box is reachable.
        unsafe { &*at::<R>(self.ptr) }
    }
}

impl<R: fmt::Debug> fmt::Debug for SharedBox<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<R: PartialEq> PartialEq for SharedBox<R> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

fn write_box<R>(r: R, w: &mut Writer<'_>) -> Result<SharedBox<R>, CopyError> {
    Ok(SharedBox {
        ptr: w.put(r)?,
        _elem: PhantomData,
        _anchor: ANCHORED,
    })
}

// SAFETY: the value is allocated through the writer, traced and validated
// through the pointer; `SharedBox` is anchored.
unsafe impl<T: Shared> Shared for Box<T> {
    type Repr = SharedBox<T::Repr>;
    const FINGERPRINT: u64 = fingerprint_combine(&[fingerprint_str("Box"), T::SHALLOW_FINGERPRINT]);
    const HAS_POINTERS: bool = true;
    fn to_repr(&self, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        let r = (**self).to_repr(w)?;
        write_box(r, w)
    }
    fn repr_to_repr(src: &Self::Repr, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        let r = T::repr_to_repr(src, w)?;
        write_box(r, w)
    }
    fn from_repr(src: &Self::Repr) -> Self {
        Box::new(T::from_repr(src))
    }
    fn trace(src: &Self::Repr, t: &mut Tracer<'_>) {
        if size_of::<T::Repr>() > 0 {
            t.visit::<T>(src.ptr, 1);
        }
    }
    unsafe fn validate(src: *const Self::Repr, v: &mut Validator<'_>) -> Result<(), Invalid> {
        // SAFETY: `src` is readable (caller); the field is an integer.
        let p = unsafe { ptr::read(ptr::addr_of!((*src).ptr)) };
        v.check_array::<T::Repr>(p, 1)?;
        v.enter()?;
        // SAFETY: the pointee's range was just checked.
        unsafe { T::validate(at::<T::Repr>(p), v)? };
        v.leave();
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Option

/// The shared representation of `Option<T>`.
#[repr(C, u8)]
#[derive(Debug, PartialEq)]
pub enum SharedOption<R> {
    /// No value.
    None,
    /// A value.
    Some(R),
}

impl<R> SharedOption<R> {
    /// `Option<&R>`.
    pub fn as_ref(&self) -> Option<&R> {
        match self {
            SharedOption::None => None,
            SharedOption::Some(r) => Some(r),
        }
    }

    /// Whether there is a value.
    pub fn is_some(&self) -> bool {
        matches!(self, SharedOption::Some(_))
    }

    /// Whether there is no value.
    pub fn is_none(&self) -> bool {
        matches!(self, SharedOption::None)
    }

    /// The value, pinned for modification (what `as_mut` is to
    /// `&mut Option<T>`).
    pub fn as_pin(self: Pin<&mut Self>) -> Option<Pin<&mut R>> {
        // SAFETY: structural pinning: the payload is never moved out of a
        // pinned `SharedOption` (no safe API does, and `SharedOption` has no `Drop`).
        unsafe {
            match self.get_unchecked_mut() {
                SharedOption::None => None,
                SharedOption::Some(r) => Some(Pin::new_unchecked(r)),
            }
        }
    }
}

// SAFETY: delegates to `T`; `validate` checks the tag before the payload,
// whose offset follows the `repr(C, u8)` layout (the payload union starts at
// the tag size rounded up to the payload's alignment).
unsafe impl<T: Shared> Shared for Option<T> {
    type Repr = SharedOption<T::Repr>;
    const FINGERPRINT: u64 = fingerprint_combine(&[fingerprint_str("Option"), T::FINGERPRINT]);
    const HAS_POINTERS: bool = T::HAS_POINTERS;
    fn to_repr(&self, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        Ok(match self {
            None => SharedOption::None,
            Some(x) => SharedOption::Some(x.to_repr(w)?),
        })
    }
    fn repr_to_repr(src: &Self::Repr, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        Ok(match src {
            SharedOption::None => SharedOption::None,
            SharedOption::Some(x) => SharedOption::Some(T::repr_to_repr(x, w)?),
        })
    }
    fn from_repr(src: &Self::Repr) -> Self {
        src.as_ref().map(T::from_repr)
    }
    fn trace(src: &Self::Repr, t: &mut Tracer<'_>) {
        if let SharedOption::Some(x) = src {
            T::trace(x, t);
        }
    }
    unsafe fn validate(src: *const Self::Repr, v: &mut Validator<'_>) -> Result<(), Invalid> {
        // SAFETY: `src` is readable (caller); the tag is its first byte.
        let tag = unsafe { ptr::read(src.cast::<u8>()) };
        match tag {
            0 => Ok(()),
            1 => {
                let off = align_of::<T::Repr>();
                // SAFETY: the payload lies inside the readable `SharedOption`.
                unsafe { T::validate(src.cast::<u8>().add(off).cast::<T::Repr>(), v) }
            }
            t => Err(Invalid::BadTag {
                ty: "Option",
                tag: t as u32,
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// Tuples

macro_rules! tuple {
    ($name:ident: $($t:ident $i:tt),+) => {
        /// The shared representation of a tuple.
        #[repr(C)]
        #[derive(Debug, PartialEq)]
        pub struct $name<$($t),+>($(pub $t),+);

        impl<$($t),+> $name<$($t),+> {
            /// The fields, pinned for modification.
            #[allow(clippy::unused_unit)]
            pub fn project(self: Pin<&mut Self>) -> ($(Pin<&mut $t>,)+) {
                // SAFETY: structural pinning of every field: the tuple has
                // no `Drop` and no API moves a field out of a pinned tuple.
                unsafe {
                    let this = self.get_unchecked_mut();
                    ($(Pin::new_unchecked(&mut this.$i),)+)
                }
            }
        }

        // SAFETY: delegates every field to its own implementation; field
        // offsets come from `offset_of!` on the `repr(C)` struct.
        unsafe impl<$($t: Shared),+> Shared for ($($t,)+) {
            type Repr = $name<$($t::Repr),+>;
            const FINGERPRINT: u64 = fingerprint_combine(&[fingerprint_str(stringify!($name)), $($t::FINGERPRINT),+]);
            const HAS_POINTERS: bool = false $(|| $t::HAS_POINTERS)+;
            fn to_repr(&self, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
                Ok($name($(self.$i.to_repr(w)?),+))
            }
            fn repr_to_repr(src: &Self::Repr, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
                Ok($name($($t::repr_to_repr(&src.$i, w)?),+))
            }
            fn from_repr(src: &Self::Repr) -> Self {
                ($($t::from_repr(&src.$i),)+)
            }
            fn trace(src: &Self::Repr, t: &mut Tracer<'_>) {
                $($t::trace(&src.$i, t);)+
            }
            unsafe fn validate(src: *const Self::Repr, v: &mut Validator<'_>) -> Result<(), Invalid> {
                $(
                    // SAFETY: the field lies inside the readable tuple.
                    unsafe { $t::validate(ptr::addr_of!((*src).$i), v)? };
                )+
                Ok(())
            }
        }
    };
}

tuple!(Tuple1: A 0);
tuple!(Tuple2: A 0, B 1);
tuple!(Tuple3: A 0, B 1, C 2);
tuple!(Tuple4: A 0, B 1, C 2, D 3);
tuple!(Tuple5: A 0, B 1, C 2, D 3, E 4);
tuple!(Tuple6: A 0, B 1, C 2, D 3, E 4, F 5);

// ---------------------------------------------------------------------------
// Arrays

/// The element at `i` of a pinned array, pinned.
pub fn array_get_pin<R, const N: usize>(a: Pin<&mut [R; N]>, i: usize) -> Option<Pin<&mut R>> {
    pin_get(a, i)
}

fn collect_array<R, const N: usize>(
    mut f: impl FnMut(usize) -> Result<R, CopyError>,
) -> Result<[R; N], CopyError> {
    let mut out: [MaybeUninit<R>; N] = [const { MaybeUninit::uninit() }; N];
    for (i, slot) in out.iter_mut().enumerate() {
        slot.write(f(i)?);
    }
    // SAFETY: every element was initialised; `[MaybeUninit<R>; N]` and
    // `[R; N]` have the same layout. (On error, the initialised elements
    // are forgotten, which is fine: representations have no `Drop`.)
    Ok(unsafe { ptr::read(ptr::from_ref(&out).cast::<[R; N]>()) })
}

// SAFETY: delegates every element to `T`.
unsafe impl<T: Shared, const N: usize> Shared for [T; N] {
    type Repr = [T::Repr; N];
    const FINGERPRINT: u64 =
        fingerprint_combine(&[fingerprint_str("array"), T::FINGERPRINT, N as u64]);
    const HAS_POINTERS: bool = T::HAS_POINTERS;
    const IS_POD: bool = T::IS_POD;
    fn to_repr(&self, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        collect_array(|i| self[i].to_repr(w))
    }
    fn repr_to_repr(src: &Self::Repr, w: &mut Writer<'_>) -> Result<Self::Repr, CopyError> {
        collect_array(|i| T::repr_to_repr(&src[i], w))
    }
    fn from_repr(src: &Self::Repr) -> Self {
        std::array::from_fn(|i| T::from_repr(&src[i]))
    }
    fn trace(src: &Self::Repr, t: &mut Tracer<'_>) {
        if T::HAS_POINTERS {
            for x in src {
                T::trace(x, t);
            }
        }
    }
    unsafe fn validate(src: *const Self::Repr, v: &mut Validator<'_>) -> Result<(), Invalid> {
        // SAFETY: the array is readable (caller), so are its elements.
        unsafe { validate_elems::<T>(src.cast::<T::Repr>(), N, v) }
    }
}

#[cfg(test)]
mod tests {
    use super::super::roundtrip_local;

    #[test]
    fn builtins_roundtrip() {
        let v: (u8, i64, f64, bool, char, String) = (1, -2, 3.5, true, 'é', "héllo".into());
        assert_eq!(roundtrip_local(&v).unwrap(), v);
        let v: Vec<Option<Box<String>>> = vec![
            None,
            Some(Box::new("x".into())),
            Some(Box::new(String::new())),
        ];
        assert_eq!(roundtrip_local(&v).unwrap(), v);
        let v: [Vec<u32>; 3] = [vec![], vec![1, 2], vec![3]];
        assert_eq!(roundtrip_local(&v).unwrap(), v);
        let v: Vec<f64> = (0..1000).map(|i| i as f64 * 0.5).collect();
        assert_eq!(roundtrip_local(&v).unwrap(), v);
        let v = Box::new(());
        assert_eq!(roundtrip_local(&v).unwrap(), v);
    }
}
