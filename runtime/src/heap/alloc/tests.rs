//! The allocator on a local buffer: reuse after a collection, alignment,
//! big values, and running out of space.

use super::*;
use crate::value::{Shared, Tracer, Writer};

/// Chunks carved from one big local buffer; counts what is out.
pub(crate) struct VecSource {
    buf: Vec<u64>,
    next: usize,
    free: Vec<(usize, usize)>,
    pub(crate) out: usize,
    limit: usize,
}

impl VecSource {
    pub(crate) fn new(bytes: usize) -> Self {
        VecSource {
            buf: vec![0; bytes / 8],
            next: 0,
            free: Vec::new(),
            out: 0,
            limit: bytes,
        }
    }
    pub(crate) fn range(&self) -> (usize, usize) {
        let lo = self.buf.as_ptr().addr();
        (lo, lo + self.buf.len() * 8)
    }
}

// SAFETY: hands out disjoint, 8-aligned ranges of its own buffer (of
// `u64`s), each used by nothing else until it is given back; the buffer
// lives (and never moves: it is never resized) as long as the source.
unsafe impl ChunkSource for VecSource {
    fn get(&mut self, size: usize) -> Result<usize, CopyError> {
        if let Some(i) = self.free.iter().position(|&(_, s)| s == size) {
            self.out += size;
            return Ok(self.free.swap_remove(i).0);
        }
        if self.next + size > self.limit {
            return Err(CopyError::OutOfSpace { requested: size });
        }
        let a = self.buf.as_ptr().expose_provenance() + self.next;
        self.next += size;
        self.out += size;
        Ok(a)
    }
    fn put(&mut self, addr: usize, size: usize) {
        self.out -= size;
        self.free.push((addr, size));
    }
}

/// The memory of a [`VecSource`], as the walks see it.
pub(crate) struct InBuf<'a>(pub(crate) &'a VecSource);

// SAFETY: accepts only ranges inside the source's buffer, which is
// allocated and never resized while the source (borrowed here) lives.
unsafe impl ChunkMemory for InBuf<'_> {
    fn owns(&self, addr: usize, len: usize) -> bool {
        let (lo, hi) = self.0.range();
        addr >= lo && addr.checked_add(len).is_some_and(|end| end <= hi)
    }
}

/// A heap over local memory: allocator + root slot.
pub(crate) struct TestHeap {
    pub(crate) src: VecSource,
    pub(crate) st: AllocState,
}

impl TestHeap {
    pub(crate) fn new(bytes: usize, chunk: usize) -> Self {
        TestHeap {
            src: VecSource::new(bytes),
            st: AllocState::new(chunk),
        }
    }

    /// The allocator, for one operation.
    fn allocator(&mut self) -> Allocator<'_, &mut VecSource> {
        // SAFETY: the state was made by `AllocState::new` and changed
        // since only by allocators over chunks of this source (a test
        // that moves `cur` by hand puts it back before the next
        // allocator), whose buffer lives as long as `self`; borrowing
        // `self` exclusively makes this allocator the only user.
        unsafe { Allocator::new(&mut self.st, &mut self.src) }
    }

    pub(crate) fn stats(&mut self) -> AllocStats {
        self.allocator().stats()
    }

    pub(crate) fn put<T: Shared>(&mut self, v: &T) -> Result<usize, CopyError> {
        let mut alloc = self.allocator();
        let mut w = HeapWriter { alloc: &mut alloc };
        // SAFETY: the representation is written into the heap at once.
        let mut wr = unsafe { Writer::new(&mut w) };
        let r = v.to_repr(&mut wr)?;
        wr.put(r)
    }

    pub(crate) fn gc<T: Shared>(&mut self, roots: &[usize]) {
        let (lo, hi) = self.src.range();
        let owns = move |a: usize| a >= lo && a < hi;
        let mut m = Marker::new(&owns);
        // SAFETY: the roots are live values of `T` in this heap.
        let mut t = unsafe { Tracer::new(&mut m) };
        for &r in roots {
            t.visit::<T>(r, 1);
        }
        t.drain();
        // SAFETY: everything reachable from the roots was marked.
        unsafe { self.allocator().sweep(&[]) };
    }

    pub(crate) fn get<T: Shared>(&self, addr: usize) -> T {
        // SAFETY: `addr` is a live value of `T` in this heap.
        T::from_repr(unsafe { &*at::<T::Repr>(addr) })
    }
}

#[test]
fn alloc_reuses_after_gc() {
    let mut h = TestHeap::new(4 << 20, 64 * 1024);
    let keep = h.put(&vec!["keep".to_string(); 10]).unwrap();
    for i in 0..10_000 {
        h.put(&format!("garbage {i}")).unwrap();
    }
    let before = h.stats();
    assert!(before.chunks > 1);
    h.gc::<Vec<String>>(&[keep]);
    let after = h.stats();
    assert_eq!(h.get::<Vec<String>>(keep), vec!["keep".to_string(); 10]);
    assert!(after.chunks < before.chunks, "{after:?} vs {before:?}");
    assert!(after.live_bytes < 1024, "{after:?}");
    // Space is reused: another round of garbage does not grow the heap much.
    for i in 0..10_000 {
        h.put(&format!("garbage {i}")).unwrap();
    }
    h.gc::<Vec<String>>(&[keep]);
    assert_eq!(h.get::<Vec<String>>(keep), vec!["keep".to_string(); 10]);
    assert!(
        h.src.out <= 2 * 64 * 1024,
        "{} bytes of chunks out",
        h.src.out
    );
}

#[test]
fn over_aligned_values() {
    let mut h = TestHeap::new(1 << 20, 64 * 1024);
    let mut addrs = Vec::new();
    for i in 0..100u128 {
        let a = h.put(&Box::new(i)).unwrap();
        addrs.push(a);
        let _ = h.put(&(i as u8)).unwrap();
    }
    for (i, &a) in addrs.iter().enumerate() {
        assert_eq!(*h.get::<Box<u128>>(a), i as u128);
    }
    h.gc::<Box<u128>>(&addrs);
    for (i, &a) in addrs.iter().enumerate() {
        assert_eq!(*h.get::<Box<u128>>(a), i as u128);
    }
}

#[test]
fn big_values_get_their_own_chunk() {
    let mut h = TestHeap::new(8 << 20, 64 * 1024);
    let big = vec![7u8; 1 << 20];
    let a = h.put(&big).unwrap();
    assert_eq!(h.get::<Vec<u8>>(a), big);
    h.gc::<Vec<u8>>(&[]);
    assert_eq!(h.src.out, 0, "the big chunk went back");
}

#[test]
fn a_current_chunk_outside_the_list_is_forgotten() {
    let mut h = TestHeap::new(1 << 20, 64 * 1024);
    let keep = h.put(&vec![1u64; 10]).unwrap();
    assert!(h.st.walk(&InBuf(&h.src), 100, |_, _| {}).is_ok());
    // What a kill between unlinking the current chunk and forgetting
    // it could leave: `cur` on memory that is not a chunk of the list.
    let stray = h.src.get(64 * 1024).unwrap();
    let linked = h.st.cur;
    h.st.cur = stray;
    assert!(h.st.walk(&InBuf(&h.src), 100, |_, _| {}).is_err());
    h.st.forget_unlinked_cur(&InBuf(&h.src), 100);
    assert_eq!(h.st.cur, 0);
    assert!(h.st.walk(&InBuf(&h.src), 100, |_, _| {}).is_ok());
    // A linked current chunk stays.
    h.st.cur = linked;
    h.st.forget_unlinked_cur(&InBuf(&h.src), 100);
    assert_eq!(h.st.cur, linked);
    assert_eq!(h.get::<Vec<u64>>(keep), vec![1; 10]);
}

#[test]
fn out_of_space_is_an_error() {
    let mut h = TestHeap::new(256 * 1024, 64 * 1024);
    let err = h.put(&vec![0u8; 1 << 20]).unwrap_err();
    assert!(matches!(err, CopyError::OutOfSpace { .. }));
}
