//! The value copier's moving parts: where copies are written ([`Writer`]),
//! how the garbage collector walks them ([`Tracer`]) and how untrusted
//! copies are checked ([`Validator`]).

use std::alloc::Layout;
use std::fmt;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use super::Shared;
use crate::in_shared::at;

/// A place that copied values are written to: a heap, a camlbox slot, a
/// scratch arena.
///
/// # Safety
///
/// `allocate` must return memory that is valid for writes of
/// `layout.size()` bytes, aligned to `layout.align()`, not used by anything
/// else, and that stays valid as long as the copied value is reachable in
/// the target; the returned address must be where readers of the target see
/// that memory (equal to the local pointer unless the target is mapped at
/// another address in its reader), and must be aligned to `layout.align()`.
pub unsafe trait Allocate {
    /// Reserves memory for `layout`; returns the local pointer and the
    /// address at which readers of the target will see it.
    ///
    /// # Errors
    ///
    /// [`CopyError::OutOfSpace`] when the target has no room for `layout`;
    /// [`CopyError::Overflow`] when an address computation overflows.
    fn allocate(&mut self, layout: Layout) -> Result<(NonNull<u8>, usize), CopyError>;
}

/// The destination of a deep copy, handed to [`Shared::to_repr`].
///
/// A `Writer` can only be made with `unsafe` ([`Writer::new`]): the values
/// produced with it carry raw addresses and are meaningful only once written
/// to the target.
pub struct Writer<'a> {
    alloc: &'a mut dyn Allocate,
    wrote_lock: bool,
}

impl fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("wrote_lock", &self.wrote_lock)
            .finish_non_exhaustive()
    }
}

impl<'a> Writer<'a> {
    /// Makes a writer that allocates in `alloc`.
    ///
    /// # Safety
    ///
    /// Every representation produced with this writer (and every array it
    /// allocates) must be written to memory of the same target (or dropped
    /// without being used): it holds addresses valid only there.
    pub unsafe fn new(alloc: &'a mut dyn Allocate) -> Self {
        Writer {
            alloc,
            wrote_lock: false,
        }
    }

    /// Records that a lock was written (the `mc::sync` types call it): a
    /// heap holding locks refuses pins, because a modification copies
    /// pinned values and a copied lock is another lock.
    pub fn note_lock(&mut self) {
        self.wrote_lock = true;
    }

    /// Whether a lock was written with this writer.
    pub fn wrote_lock(&self) -> bool {
        self.wrote_lock
    }

    /// Allocates target memory for `layout`. Zero-sized layouts take no
    /// memory and get a dangling, aligned address.
    ///
    /// # Errors
    ///
    /// Those of the target's [`Allocate::allocate`].
    pub fn alloc(&mut self, layout: Layout) -> Result<(NonNull<u8>, usize), CopyError> {
        if layout.size() == 0 {
            // An alignment is a power of two, never zero. Nothing is read or
            // written through a zero-sized allocation, so the pointer needs
            // no provenance.
            let addr = NonZeroUsize::new(layout.align()).ok_or(CopyError::Overflow)?;
            return Ok((NonNull::without_provenance(addr), addr.get()));
        }
        self.alloc.allocate(layout)
    }

    /// Allocates room for `n` values of `R`.
    ///
    /// # Errors
    ///
    /// [`CopyError::Overflow`] when `n` values of `R` exceed the largest
    /// layout, and the errors of [`alloc`](Self::alloc).
    pub fn alloc_array<R>(&mut self, n: usize) -> Result<(NonNull<R>, usize), CopyError> {
        let layout = Layout::array::<R>(n).map_err(|_| CopyError::Overflow)?;
        let (p, addr) = self.alloc(layout)?;
        Ok((p.cast(), addr))
    }

    /// Copies `r` into fresh target memory; returns its target address.
    ///
    /// # Errors
    ///
    /// Those of [`alloc_array`](Self::alloc_array).
    #[inline]
    pub(crate) fn put<R>(&mut self, r: R) -> Result<usize, CopyError> {
        let mut a = self.alloc_fresh::<R>(1)?;
        a.push(r);
        Ok(a.into_parts().0)
    }

    /// Allocates room for `n` values of `R`, to be filled in order.
    ///
    /// # Errors
    ///
    /// Those of [`alloc_array`](Self::alloc_array).
    #[inline]
    pub(crate) fn alloc_fresh<R>(&mut self, n: usize) -> Result<FreshArray<R>, CopyError> {
        let (ptr, addr) = self.alloc_array::<R>(n)?;
        Ok(FreshArray {
            ptr,
            addr,
            cap: n,
            len: 0,
        })
    }
}

/// A fresh array of target memory with room for `cap` values of `R`, filled
/// from the start (what a copy builds a vector's array in).
///
/// Invariant: `ptr` is valid for writes of `cap` values of `R` (memory the
/// writer's target allocated for it, which nothing else uses), `addr` is
/// where the target sees it, and the first `len <= cap` values are
/// initialised. Only [`Writer::alloc_fresh`] makes one; every method keeps
/// it.
pub(crate) struct FreshArray<R> {
    ptr: NonNull<R>,
    addr: usize,
    cap: usize,
    len: usize,
}

impl<R> FreshArray<R> {
    /// Writes `r` into the next free slot.
    ///
    /// # Panics
    ///
    /// When the array is full.
    #[inline]
    pub(crate) fn push(&mut self, r: R) {
        assert!(self.len < self.cap, "mc: a fresh array is full");
        // SAFETY: slot `len < cap` of the array lies in the fresh memory
        // (invariant) and is not initialised yet, so nothing is overwritten.
        unsafe { self.ptr.as_ptr().add(self.len).write(r) };
        self.len += 1;
    }

    /// Appends byte copies of `src`, values of a plain-data type (whose
    /// representation is itself).
    ///
    /// # Panics
    ///
    /// When `src` does not fit in the room left, or `T` is not plain data.
    #[inline]
    pub(crate) fn extend_pod<T: Shared<Repr = R>>(&mut self, src: &[R]) {
        assert!(
            T::IS_POD,
            "mc: byte copies of a type that is not plain data"
        );
        assert!(
            src.len() <= self.cap - self.len,
            "mc: a fresh array is full"
        );
        // SAFETY: the `src.len()` slots from `len` lie in the fresh memory
        // (checked just above), which `src` (a shared borrow) cannot
        // overlap; for plain data a byte copy is a valid copy (the `IS_POD`
        // contract of `Shared`).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(self.len), src.len());
        }
        self.len += src.len();
    }

    /// Moves `n` values from `src` into the next free slots, bitwise.
    ///
    /// # Safety
    ///
    /// `src` must be valid for reads of `n` initialised values of `R`, not
    /// inside this array, and the values must not be used there afterwards
    /// (they move here); `n` must fit in the room left.
    #[inline]
    pub(crate) unsafe fn move_from(&mut self, src: *const R, n: usize) {
        debug_assert!(n <= self.cap - self.len);
        // SAFETY: `src` holds `n` values that move here (the caller's
        // contract), into slots `len..len + n` of the fresh memory, which
        // do not overlap them.
        unsafe { std::ptr::copy_nonoverlapping(src, self.ptr.as_ptr().add(self.len), n) };
        self.len += n;
    }

    /// The number of values written.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The room, in values.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// The target address, length and capacity, once filled as wanted.
    #[inline]
    pub(crate) fn into_parts(self) -> (usize, usize, usize) {
        (self.addr, self.len, self.cap)
    }
}

/// Why a copy into shared memory failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum CopyError {
    /// The target has no room for an allocation of `requested` bytes.
    OutOfSpace {
        /// The size of the allocation that failed.
        requested: usize,
    },
    /// A size computation overflowed (a value too large for any target).
    Overflow,
    /// The value holds a lock that the calling thread holds: copying it
    /// would wait for ever.
    Locked,
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CopyError::OutOfSpace { requested } => {
                write!(f, "no room left in the target for {requested} bytes")
            }
            CopyError::Overflow => write!(f, "the value is too large to be copied"),
            CopyError::Locked => write!(
                f,
                "the value holds a lock that this thread holds: release it before copying"
            ),
        }
    }
}

impl std::error::Error for CopyError {}

/// The GC's view of a heap during marking.
///
/// # Safety
///
/// `mark` must return `true` only for an address that is the start of a
/// live allocation of the heap (so that tracing it is sound), and must
/// return `true` at most once per allocation per collection.
pub unsafe trait Mark {
    /// Marks the allocation starting at `addr`; returns whether it was
    /// unmarked and belongs to the heap.
    fn mark(&mut self, addr: usize) -> bool;
}

type TraceFn = unsafe fn(usize, usize, &mut Tracer<'_>);

struct Work {
    addr: usize,
    len: usize,
    f: TraceFn,
}

/// Walks the pointers of shared values for the garbage collector, with an
/// explicit work list (no recursion, whatever the depth of the value).
pub struct Tracer<'a> {
    marker: &'a mut dyn Mark,
    stack: Vec<Work>,
}

/// # Safety
///
/// `addr` must be the address of `len` valid, consecutive `T::Repr` values.
unsafe fn trace_array<T: Shared>(addr: usize, len: usize, t: &mut Tracer<'_>) {
    let base = at::<T::Repr>(addr);
    for i in 0..len {
        // SAFETY: by this function's contract, `base.add(i)` for `i < len`
        // points to a valid `T::Repr`.
        let r = unsafe { &*base.add(i) };
        T::trace(r, t);
    }
}

impl fmt::Debug for Tracer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("pending", &self.stack.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Tracer<'a> {
    /// Makes a tracer that marks through `marker`.
    ///
    /// # Safety
    ///
    /// Every value handed to the tracer (by [`Tracer::root`] and, through
    /// `trace`, by the values themselves) must be a valid representation
    /// whose pointers the marker accepts only when they are live.
    pub unsafe fn new(marker: &'a mut dyn Mark) -> Self {
        Tracer {
            marker,
            stack: Vec::new(),
        }
    }

    /// Traces a root value and everything reachable from it.
    pub fn root<T: Shared>(&mut self, root: &T::Repr) {
        T::trace(root, self);
        self.drain();
    }

    /// Marks the allocation at `addr`, which holds `len` values of `T`, and
    /// schedules their tracing.
    pub fn visit<T: Shared>(&mut self, addr: usize, len: usize) {
        if self.marker.mark(addr) && T::HAS_POINTERS && len > 0 {
            self.stack.push(Work {
                addr,
                len,
                f: trace_array::<T>,
            });
        }
    }

    /// Marks an allocation that holds no pointers (string bytes, numbers).
    pub fn visit_leaf(&mut self, addr: usize) {
        self.marker.mark(addr);
    }

    /// Processes the work list until it is empty.
    pub fn drain(&mut self) {
        while let Some(w) = self.stack.pop() {
            // SAFETY: work items are pushed by `visit` only after the marker
            // accepted `w.addr` as a live allocation holding `w.len` values
            // of the type `w.f` was instantiated with (the `Tracer::new`
            // contract and `Shared::trace`'s).
            unsafe { (w.f)(w.addr, w.len, self) };
        }
    }
}

/// Why a shared value failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalid {
    /// A pointer or a range lies outside the region.
    OutOfRegion {
        /// The address found.
        addr: usize,
        /// The length of the range it starts.
        len: usize,
    },
    /// A pointer is not aligned for its type.
    Misaligned {
        /// The address found.
        addr: usize,
        /// The alignment required.
        align: usize,
    },
    /// An enum tag that names no variant.
    BadTag {
        /// The type.
        ty: &'static str,
        /// The tag found.
        tag: u32,
    },
    /// A `bool` byte other than 0 or 1.
    BadBool(u8),
    /// A `char` that is not a Unicode scalar value.
    BadChar(u32),
    /// String bytes that are not UTF-8.
    BadUtf8,
    /// The value nests deeper than the validator allows.
    TooDeep,
    /// A vector claims more elements than its array holds.
    BadLength {
        /// The length found.
        len: usize,
        /// The capacity found.
        cap: usize,
    },
    /// The value's pointers cover more bytes than the region holds
    /// (overlapping or cyclic pointers).
    Overlapping,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::OutOfRegion { addr, len } => {
                write!(f, "range {addr:#x}+{len} lies outside the message region")
            }
            Invalid::Misaligned { addr, align } => {
                write!(f, "pointer {addr:#x} is not aligned to {align}")
            }
            Invalid::BadTag { ty, tag } => write!(f, "tag {tag} names no variant of {ty}"),
            Invalid::BadBool(b) => write!(f, "byte {b} is not a bool"),
            Invalid::BadChar(c) => write!(f, "{c:#x} is not a char"),
            Invalid::BadUtf8 => write!(f, "string bytes are not UTF-8"),
            Invalid::TooDeep => write!(f, "the value nests too deeply"),
            Invalid::BadLength { len, cap } => {
                write!(f, "a vector of length {len} has room for only {cap}")
            }
            Invalid::Overlapping => {
                write!(f, "the value's pointers overlap or form a cycle")
            }
        }
    }
}

impl std::error::Error for Invalid {}

/// Checks shared values written by someone else: every pointer must lie in
/// one region, be aligned, and the pointed-to bytes, all together, must fit
/// in the region (which rules out cycles and overlapping aliases).
pub struct Validator<'a> {
    region: Region<'a>,
    budget: usize,
    depth: u32,
    /// The ranges checked so far (start → end), which must not overlap:
    /// the copier never writes two pointers to the same memory, and an
    /// image that does could alias a lock word with string bytes.
    ranges: Ranges,
}

/// Where a validator accepts pointers.
enum Region<'a> {
    /// Anywhere inside one span of bytes (a camlbox message).
    Span {
        start: usize,
        end: usize,
        _bytes: std::marker::PhantomData<&'a [u8]>,
    },
    /// At the start of one of these blocks (payload start, payload end),
    /// sorted and disjoint, and inside it (the allocated blocks of a heap:
    /// its collector reads the header in front of every pointer). Each
    /// block may be reached once (`seen`, one bit a block): values are
    /// trees.
    Blocks {
        blocks: &'a [(usize, usize)],
        seen: Vec<u64>,
    },
}

/// Disjoint ranges `[start, end)`: a few inline (small messages, no
/// allocation), a tree beyond that.
#[derive(Default)]
struct Ranges {
    small: [(usize, usize); 8],
    n: usize,
    big: Option<std::collections::BTreeMap<usize, usize>>,
}

impl Ranges {
    /// Adds `[start, end)`; `false` if it overlaps a range already there.
    fn insert(&mut self, start: usize, end: usize) -> bool {
        if let Some(big) = &mut self.big {
            if big
                .range(..=start)
                .next_back()
                .is_some_and(|(_, &e)| e > start)
                || big.range(start..).next().is_some_and(|(&s, _)| s < end)
            {
                return false;
            }
            big.insert(start, end);
            return true;
        }
        if self.small[..self.n]
            .iter()
            .any(|&(s, e)| s < end && start < e)
        {
            return false;
        }
        if self.n < self.small.len() {
            self.small[self.n] = (start, end);
            self.n += 1;
        } else {
            let mut big: std::collections::BTreeMap<usize, usize> =
                self.small.iter().copied().collect();
            big.insert(start, end);
            self.big = Some(big);
        }
        true
    }
}

/// The deepest nesting a validator accepts.
pub const MAX_VALIDATION_DEPTH: u32 = 1024;

impl fmt::Debug for Validator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("budget", &self.budget)
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

impl<'a> Validator<'a> {
    /// A validator for values whose pointers must lie in `region` (the
    /// addresses as the reader sees them).
    #[inline]
    pub fn new(region: &'a [u8]) -> Self {
        let start = region.as_ptr().expose_provenance();
        Validator {
            region: Region::Span {
                start,
                end: start + region.len(),
                _bytes: std::marker::PhantomData,
            },
            budget: region.len(),
            depth: 0,
            ranges: Ranges::default(),
        }
    }

    /// A validator for values of a heap: every pointer must be the start
    /// of one of `blocks` (payload start, payload end; sorted, disjoint)
    /// and its range must lie inside that block.
    ///
    /// # Safety
    ///
    /// The blocks must be readable for the validator's lifetime: `value`
    /// reads the values it checks there.
    pub(crate) unsafe fn over_blocks(blocks: &'a [(usize, usize)]) -> Self {
        Validator {
            budget: blocks.iter().map(|&(s, e)| e - s).sum(),
            region: Region::Blocks {
                blocks,
                seen: vec![0; blocks.len().div_ceil(64)],
            },
            depth: 0,
            ranges: Ranges::default(),
        }
    }

    /// Adds the blocks this validator found reached (over a heap's blocks,
    /// a bit per block in their order) to `reached`.
    pub(crate) fn add_reached(&self, reached: &mut [u64]) {
        if let Region::Blocks { seen, .. } = &self.region {
            for (r, s) in reached.iter_mut().zip(seen) {
                *r |= s;
            }
        }
    }

    /// Checks a range of `size` bytes at `addr` with alignment `align`, and
    /// charges it to the budget.
    ///
    /// # Errors
    ///
    /// [`Invalid::Misaligned`] when `addr` is not aligned (or null);
    /// [`Invalid::OutOfRegion`] when the range leaves the region (for a heap's
    /// blocks: does not start one, or leaves it); [`Invalid::Overlapping`] when
    /// it overlaps a range checked before, or the budget is spent.
    pub fn check(&mut self, addr: usize, size: usize, align: usize) -> Result<(), Invalid> {
        if size == 0 {
            if addr == 0 || !addr.is_multiple_of(align) {
                return Err(Invalid::Misaligned { addr, align });
            }
            return Ok(());
        }
        if !addr.is_multiple_of(align) {
            return Err(Invalid::Misaligned { addr, align });
        }
        let end = addr
            .checked_add(size)
            .ok_or(Invalid::OutOfRegion { addr, len: size })?;
        match &mut self.region {
            Region::Span {
                start, end: stop, ..
            } => {
                if addr < *start || end > *stop {
                    return Err(Invalid::OutOfRegion { addr, len: size });
                }
                self.budget = self.budget.checked_sub(size).ok_or(Invalid::Overlapping)?;
                if !self.ranges.insert(addr, end) {
                    return Err(Invalid::Overlapping);
                }
            }
            Region::Blocks { blocks, seen } => {
                let i = match blocks.binary_search_by_key(&addr, |&(s, _)| s) {
                    Ok(i) if end <= blocks[i].1 => i,
                    _ => return Err(Invalid::OutOfRegion { addr, len: size }),
                };
                // Blocks are disjoint: a block reached once is a range
                // that overlaps no other.
                let (w, bit) = (i / 64, 1u64 << (i % 64));
                if seen[w] & bit != 0 {
                    return Err(Invalid::Overlapping);
                }
                seen[w] |= bit;
            }
        }
        Ok(())
    }

    /// Checks `n` values of `R` at `addr`.
    ///
    /// # Errors
    ///
    /// [`Invalid::OutOfRegion`] when their size overflows;
    /// [`Invalid::Overlapping`] when zero-sized values outnumber the budget;
    /// and the errors of [`check`](Self::check).
    pub fn check_array<R>(&mut self, addr: usize, n: usize) -> Result<(), Invalid> {
        if std::mem::size_of::<R>() == 0 {
            // Zero-sized elements take no room, but each costs a step of
            // validation and copy-out: bound their number by the region.
            self.budget = self.budget.checked_sub(n).ok_or(Invalid::Overlapping)?;
        }
        let size = std::mem::size_of::<R>()
            .checked_mul(n)
            .ok_or(Invalid::OutOfRegion {
                addr,
                len: usize::MAX,
            })?;
        self.check(addr, size, std::mem::align_of::<R>())
    }

    /// Enters a nested pointer (bounded depth).
    ///
    /// # Errors
    ///
    /// [`Invalid::TooDeep`] past the largest depth.
    pub fn enter(&mut self) -> Result<(), Invalid> {
        self.depth += 1;
        if self.depth > MAX_VALIDATION_DEPTH {
            return Err(Invalid::TooDeep);
        }
        Ok(())
    }

    /// Leaves a nested pointer.
    pub fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Validates a whole value of `T` whose inline part is at `addr`
    /// (charged to the budget too).
    ///
    /// # Errors
    ///
    /// Those of [`check_array`](Self::check_array) for the inline part, then of
    /// `T`'s [`validate`](Shared::validate).
    pub fn value<T: Shared>(&mut self, addr: usize) -> Result<(), Invalid> {
        self.check_array::<T::Repr>(addr, 1)?;
        // SAFETY: the range was just checked to lie inside the region, which
        // is readable for the validator's lifetime.
        unsafe { T::validate(at::<T::Repr>(addr), self) }
    }
}

/// A process-local growable arena, used to measure and to round-trip values.
pub(crate) struct LocalArena {
    blocks: Vec<Vec<u64>>,
    pub(crate) used: usize,
}

impl LocalArena {
    pub(crate) fn new() -> Self {
        LocalArena {
            blocks: Vec::new(),
            used: 0,
        }
    }
}

// SAFETY: every allocation is a fresh, 8-aligned (or over-aligned by
// padding) block owned by the arena and never handed out twice; the local
// address is also the target address.
unsafe impl Allocate for LocalArena {
    fn allocate(&mut self, layout: Layout) -> Result<(NonNull<u8>, usize), CopyError> {
        let padded = layout
            .size()
            .checked_add(layout.align())
            .ok_or(CopyError::Overflow)?;
        let words = padded.div_ceil(8);
        let mut block = vec![0u64; words];
        // The address is exposed: the representations written here hold
        // it as an integer, read back through `in_shared::at`.
        let ptr = block
            .as_mut_ptr()
            .cast::<u8>()
            .map_addr(|a| a.next_multiple_of(layout.align()));
        let addr = ptr.expose_provenance();
        // `ptr` lies inside the block (moving the `Vec` into `blocks` does
        // not move its buffer), so it is never null.
        let ptr = NonNull::new(ptr).ok_or(CopyError::Overflow)?;
        self.blocks.push(block);
        self.used += layout.size().next_multiple_of(layout.align().max(8));
        Ok((ptr, addr))
    }
}

/// Copies `value` into a fresh local arena and lends `f` the
/// representation (or the error) and the bytes the arena handed out.
fn in_local_arena<T: Shared, X>(
    value: &T,
    f: impl FnOnce(Result<&T::Repr, CopyError>, usize) -> X,
) -> X {
    let mut arena = LocalArena::new();
    let repr = {
        // SAFETY: the representation is only lent (a borrow that cannot
        // outlive this function) while `arena` is alive, and the arena's
        // target addresses are local addresses.
        let mut w = unsafe { Writer::new(&mut arena) };
        value.to_repr(&mut w)
    };
    f(repr.as_ref().map_err(Clone::clone), arena.used)
}

pub(crate) fn local_roundtrip<T: Shared>(value: &T) -> Result<T, CopyError> {
    in_local_arena(value, |repr, _| repr.map(T::from_repr))
}

pub(crate) fn count_bytes<T: Shared>(value: &T) -> usize {
    // A local arena only fails on overflow, in which case the count so far
    // is the best answer.
    in_local_arena(value, |_, used| used)
}
