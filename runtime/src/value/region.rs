//! Values copied into one byte region, as self-contained images: read
//! where they were written ([`copy_into_region`]), or written for another
//! address where a receiver holds the same bytes ([`copy_into_region_for`],
//! camlbox slots), and checked before they are read ([`validate_region`],
//! [`copy_from_region`]).

use std::alloc::Layout;
use std::ptr::NonNull;

use super::copy::{Allocate, CopyError, Invalid, Validator, Writer};
use super::Shared;

/// Bump-allocates inside one byte region; target addresses are the local
/// addresses (the region is read where it is written).
struct RegionAlloc<'a> {
    base: NonNull<u8>,
    len: usize,
    next: usize,
    _region: std::marker::PhantomData<&'a mut [u8]>,
}

impl<'a> RegionAlloc<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        let len = buf.len();
        let base = NonNull::from(buf).cast::<u8>();
        RegionAlloc {
            base,
            len,
            next: 0,
            _region: std::marker::PhantomData,
        }
    }
}

/// One allocation from a bump region: its address in the target, its
/// offset from the region's start, and the offset just past it.
pub(crate) struct Bump {
    pub(crate) addr: usize,
    pub(crate) offset: usize,
    pub(crate) end: usize,
}

/// Places `layout` in the region of `len` bytes that starts at target
/// address `base` and is used up to offset `next`: at the first offset
/// past `next` aligned in the target.
///
/// # Errors
///
/// [`CopyError::OutOfSpace`] when it does not fit; [`CopyError::Overflow`]
/// when an address computation overflows.
pub(crate) fn bump(
    base: usize,
    next: usize,
    len: usize,
    layout: Layout,
) -> Result<Bump, CopyError> {
    let addr = base
        .checked_add(next)
        .and_then(|a| a.checked_next_multiple_of(layout.align()))
        .ok_or(CopyError::Overflow)?;
    let offset = addr - base;
    let end = offset
        .checked_add(layout.size())
        .ok_or(CopyError::Overflow)?;
    if end > len {
        return Err(CopyError::OutOfSpace {
            requested: layout.size(),
        });
    }
    Ok(Bump { addr, offset, end })
}

// SAFETY: allocations are disjoint, increasing ranges of the borrowed
// region (so valid for writes and used by nothing else while the borrow
// lasts), aligned as requested; the returned address is the local one.
unsafe impl Allocate for RegionAlloc<'_> {
    fn allocate(&mut self, layout: Layout) -> Result<(NonNull<u8>, usize), CopyError> {
        let base = self.base.as_ptr().expose_provenance();
        let Bump { addr, offset, end } = bump(base, self.next, self.len, layout)?;
        self.next = end;
        // `offset <= end <= len`: the pointer stays inside (or one past the
        // end of) the region, and keeps its base's provenance.
        let at = self
            .base
            .addr()
            .checked_add(offset)
            .ok_or(CopyError::Overflow)?;
        Ok((self.base.with_addr(at), addr))
    }
}

/// Deep-copies `value` into `buf`, which becomes a self-contained image:
/// the root representation comes first (at the first offset suitably
/// aligned for it, which is returned), followed by everything it points to.
/// Pointers are the addresses of `buf` itself, so the image is meant to be
/// read in place, after [`validate_region`] if it can have been changed by
/// someone else.
///
/// Fails with [`CopyError::OutOfSpace`] when `buf` is too small; part of
/// `buf` may then have been written.
#[doc(hidden)]
pub fn copy_into_region<T: Shared>(value: &T, buf: &mut [u8]) -> Result<usize, CopyError> {
    let base = buf.as_ptr().addr();
    let addr = write_root_first(&mut RegionAlloc::new(buf), value)?;
    Ok(addr - base)
}

/// A bump allocator over local memory whose image is read at another
/// address, `target` (where a receiver holds the same bytes: another
/// process's buffer, a camlbox slot in the receiver's mapping).
pub(crate) struct TargetAlloc<'a> {
    local: NonNull<u8>,
    target: usize,
    len: usize,
    next: usize,
    _buf: std::marker::PhantomData<&'a mut [u8]>,
}

impl<'a> TargetAlloc<'a> {
    /// An allocator over `buf`, read at `target`.
    fn over(buf: &'a mut [u8], target: usize) -> Self {
        let len = buf.len();
        // SAFETY: the borrow makes `buf` valid for writes and used by
        // nothing else for `'a`.
        unsafe { TargetAlloc::new(NonNull::from(buf).cast(), target, len) }
    }

    /// An allocator over the `len` bytes at `local`, read at `target`.
    ///
    /// # Safety
    ///
    /// The `len` bytes at `local` must be valid for writes and used by
    /// nothing else for `'a`.
    #[inline]
    pub(crate) unsafe fn new(local: NonNull<u8>, target: usize, len: usize) -> Self {
        TargetAlloc {
            local,
            target,
            len,
            next: 0,
            _buf: std::marker::PhantomData,
        }
    }

    /// The bytes handed out so far.
    #[inline]
    pub(crate) fn used(&self) -> usize {
        self.next
    }
}

// SAFETY: allocations are disjoint, increasing ranges of memory valid for
// writes and used by nothing else (the constructors' contracts); each is
// aligned as requested at its target address and, checked below, at its
// local one.
unsafe impl Allocate for TargetAlloc<'_> {
    #[inline]
    fn allocate(&mut self, layout: Layout) -> Result<(NonNull<u8>, usize), CopyError> {
        let Bump { addr, offset, end } = bump(self.target, self.next, self.len, layout)?;
        // SAFETY: `offset <= end <= len`: inside (or one past) the memory.
        let local = unsafe { self.local.add(offset) };
        if !local.as_ptr().addr().is_multiple_of(layout.align()) {
            // The local memory and the target disagree on alignment.
            return Err(CopyError::Overflow);
        }
        self.next = end;
        Ok((local, addr))
    }
}

/// Deep-copies `value` into `buf` as an image to be read at the address
/// `target` (another process's buffer that will receive these bytes): the
/// root first, at the returned offset, then what it points to, with every
/// pointer an address in `[target, target + buf.len())`. Returns the root's
/// offset and the bytes used. `buf` and `target` must agree modulo 64 (the
/// largest alignment of a representation); otherwise, or when `buf` is too
/// small, it fails ([`CopyError::Overflow`], [`CopyError::OutOfSpace`]).
///
/// The receiver checks and reads the image with [`copy_from_region`].
///
/// # Errors
///
/// As above, and [`CopyError::Locked`] when `value` holds a lock this
/// thread holds.
pub fn copy_into_region_for<T: Shared>(
    value: &T,
    buf: &mut [u8],
    target: usize,
) -> Result<(usize, usize), CopyError> {
    if buf.as_ptr().addr() % 64 != target % 64 {
        return Err(CopyError::Overflow);
    }
    let mut alloc = TargetAlloc::over(buf, target);
    let root = write_root_first(&mut alloc, value)?;
    Ok((root - target, alloc.used()))
}

/// Checks the image in `buf` (made by [`copy_into_region_for`] for `buf`'s
/// address, or by [`copy_into_region`]) as [`validate_region`] does, and
/// copies the value out. The buffer is borrowed exclusively: copying a value
/// that holds locks takes them, in the buffer.
///
/// # Errors
///
/// The [`Invalid`] that validation finds: a pointer out of `buf`, a bad
/// tag, `bool`, `char` or UTF-8, a vector longer than its capacity, overlaps,
/// nesting too deep.
pub fn copy_from_region<T: Shared>(buf: &mut [u8], root_offset: usize) -> Result<T, Invalid> {
    validate_region::<T>(buf, root_offset)?;
    let base = NonNull::from(&mut *buf).cast::<u8>();
    // SAFETY: validation found a well-formed `T::Repr` at `root_offset`,
    // aligned, whose pointers all lie inside `buf`; `buf` is borrowed
    // exclusively for the copy, so nothing else reads or writes it, and
    // the locks a copy takes are atomics inside it, reached through this
    // pointer (which carries the mutable borrow's provenance).
    let repr = unsafe { &*base.add(root_offset).cast::<T::Repr>().as_ptr() };
    Ok(T::from_repr(repr))
}

/// Deep-copies `value` into `alloc`'s target, the root's representation
/// first (so that it comes before everything it points to), and returns
/// the root's address in the target.
///
/// # Errors
///
/// As [`Allocate::allocate`] and [`Shared::to_repr`].
pub(crate) fn write_root_first<T: Shared, A: Allocate>(
    alloc: &mut A,
    value: &T,
) -> Result<usize, CopyError> {
    let (root, addr) = alloc.allocate(Layout::new::<T::Repr>())?;
    let repr = {
        // SAFETY: the one representation made with `w` is written into the
        // target right below (its arrays are allocated in the target).
        let mut w = unsafe { Writer::new(alloc) };
        value.to_repr(&mut w)?
    };
    // SAFETY: `root` was allocated for one `T::Repr` in the target, valid
    // for writes and used by nothing else (`Allocate`'s contract).
    unsafe { root.cast::<T::Repr>().as_ptr().write(repr) };
    Ok(addr)
}

/// Checks that `buf` holds a well-formed value of `T` whose root
/// representation starts at `root_offset` (as written by
/// [`copy_into_region`]): every pointer must lie inside `buf`, be aligned,
/// and the pointed-to ranges must not overlap; tags, `bool`s, `char`s and
/// UTF-8 are checked. After `Ok(())`, the root may be read in place as a
/// `&T::Repr`.
#[doc(hidden)]
pub fn validate_region<T: Shared>(buf: &[u8], root_offset: usize) -> Result<(), Invalid> {
    let size = std::mem::size_of::<T::Repr>();
    let addr = buf
        .as_ptr()
        .expose_provenance()
        .checked_add(root_offset)
        .ok_or(Invalid::OutOfRegion {
            addr: root_offset,
            len: size,
        })?;
    if !T::HAS_POINTERS {
        // Nothing to follow: the inline part must lie in the region,
        // aligned, and its bits be valid.
        let end = root_offset.checked_add(size);
        if end.is_none_or(|e| e > buf.len()) {
            return Err(Invalid::OutOfRegion { addr, len: size });
        }
        let align = std::mem::align_of::<T::Repr>();
        if !addr.is_multiple_of(align) {
            return Err(Invalid::Misaligned { addr, align });
        }
        // SAFETY: the inline part was just checked to lie inside `buf`,
        // aligned; `validate` only reads it.
        return unsafe {
            T::validate(
                crate::in_shared::at::<T::Repr>(addr),
                &mut Validator::new(buf),
            )
        };
    }
    Validator::new(buf).value::<T>(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Vec<u64> {
        vec![0u64; 512]
    }

    fn bytes(buf: &mut [u64]) -> &mut [u8] {
        bytemuck::cast_slice_mut(buf)
    }

    #[test]
    fn overlapping_pointers_are_refused() {
        let mut buf = region();
        let b = bytes(&mut buf);
        let v = vec![String::from("abcdefgh"), String::from("ijklmnop")];
        let root = copy_into_region(&v, b).unwrap();
        assert_eq!(validate_region::<Vec<String>>(b, root), Ok(()));
        // Make the second string point at the first one's bytes.
        let base = b.as_ptr().addr();
        let root_words = (root) / 8;
        let array = buf[root_words] as usize; // SharedVec.ptr
        let elems = (array - base) / 8;
        buf[elems + 2] = buf[elems];
        let b = bytes(&mut buf);
        assert_eq!(
            validate_region::<Vec<String>>(b, root),
            Err(Invalid::Overlapping)
        );
    }

    #[test]
    fn overlaps_are_found_among_many_pointers() {
        let mut buf = region();
        let b = bytes(&mut buf);
        let v: Vec<String> = (0..20).map(|i| format!("string number {i:02}")).collect();
        let root = copy_into_region(&v, b).unwrap();
        assert_eq!(validate_region::<Vec<String>>(b, root), Ok(()));
        let base = b.as_ptr().addr();
        let elems = (buf[root / 8] as usize - base) / 8;
        // Element 15 (past the inline ranges) aliases element 3's bytes.
        buf[elems + 2 * 15] = buf[elems + 2 * 3];
        let b = bytes(&mut buf);
        assert_eq!(
            validate_region::<Vec<String>>(b, root),
            Err(Invalid::Overlapping)
        );
    }

    #[test]
    fn zero_sized_elements_are_bounded() {
        let mut buf = region();
        let b = bytes(&mut buf);
        let root = copy_into_region(&vec![(); 3], b).unwrap();
        assert_eq!(validate_region::<Vec<()>>(b, root), Ok(()));
        let root_words = root / 8;
        buf[root_words + 1] = u64::MAX; // len
        let b = bytes(&mut buf);
        assert!(validate_region::<Vec<((),)>>(b, root).is_err());
        assert!(validate_region::<Vec<()>>(b, root).is_err());
    }

    #[test]
    fn images_for_another_address_are_read_there() {
        type V = (String, Vec<Option<(u32, String)>>, Box<[u64; 3]>);
        let value: V = (
            "root".into(),
            vec![Some((1, "a".repeat(40))), None, Some((3, "c".into()))],
            Box::new([7, 8, 9]),
        );
        // The receiver's buffer, at its own address.
        #[repr(align(64))]
        struct Buf([u8; 4096]);
        let mut there = Box::new(Buf([0; 4096]));
        let target = there.0.as_ptr().addr();
        let mut here = Box::new(Buf([0; 4096]));
        let (root, used) = copy_into_region_for(&value, &mut here.0, target).unwrap();
        assert!(used <= 4096 && root < used);
        there.0[..used].copy_from_slice(&here.0[..used]);
        assert_eq!(
            copy_from_region::<V>(&mut there.0[..used], root).unwrap(),
            value
        );
        // Read where it was written, the pointers lie outside: refused.
        assert!(copy_from_region::<V>(&mut here.0[..used], root).is_err());
        // A cut image is refused.
        assert!(copy_from_region::<V>(&mut there.0[..used / 2], root).is_err());
        // A target that disagrees with the buffer on alignment.
        assert!(matches!(
            copy_into_region_for(&value, &mut here.0, target + 8),
            Err(CopyError::Overflow)
        ));
        // Too small.
        assert!(matches!(
            copy_into_region_for(&value, &mut here.0[..64], target),
            Err(CopyError::OutOfSpace { .. })
        ));
    }
}
