//! Shared mappings of shared memory objects, unmapped when dropped:
//! with `memmap2` where the kernel picks the address, with `mmap` itself
//! (`MAP_FIXED_NOREPLACE`) where the address is fixed.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::sys::mman::{self, MapFlags, ProtFlags};

/// Why a mapping at a fixed address could not be made.
#[derive(Debug)]
pub(crate) enum FixedError {
    /// Something is mapped in the range already.
    InUse,
    /// Another error.
    Io(io::Error),
}

/// A read-write `MAP_SHARED` mapping of (part of) an object, from its
/// first byte; unmapped when dropped. The memory is the object's, shared
/// with every process that maps it: what lives there is read and written
/// through atomics and the protocols of the structures placed in it.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Who unmaps it.
    owner: Owner,
}

/// How a mapping was made, and so how it is unmapped.
#[derive(Debug)]
enum Owner {
    /// Where the kernel chose: `memmap2` unmaps it when dropped.
    Anywhere { _map: memmap2::MmapRaw },
    /// At a fixed address, with `mmap` itself: unmapped by [`Mapping`]'s
    /// `Drop`.
    Fixed,
}

// SAFETY: a mapping is a range of this process's address space; it may be
// handed to and unmapped from any thread.
unsafe impl Send for Mapping {}
// SAFETY: the handle itself is immutable; what the memory holds is shared
// through atomics by the code that places things there.
unsafe impl Sync for Mapping {}

fn flags(noreserve: bool) -> MapFlags {
    if noreserve {
        MapFlags::MAP_SHARED | MapFlags::MAP_NORESERVE
    } else {
        MapFlags::MAP_SHARED
    }
}

fn len_of(len: usize) -> io::Result<NonZeroUsize> {
    NonZeroUsize::new(len).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
}

impl Mapping {
    /// A handle for a fresh mapping. Its provenance is exposed: values in
    /// the mapping hold addresses into it as integers (other processes
    /// wrote them), which become pointers again through
    /// `in_shared::at`.
    fn exposed(ptr: NonNull<u8>, len: usize, owner: Owner) -> Mapping {
        let _ = ptr.as_ptr().expose_provenance();
        Mapping { ptr, len, owner }
    }

    /// Maps the first `len` bytes of `fd`, read-write and shared, where the
    /// kernel chooses. `noreserve`: reserve no swap for it (a range
    /// reserved for growth, backed later with `fallocate`).
    pub(crate) fn shared(fd: &OwnedFd, len: usize, noreserve: bool) -> io::Result<Mapping> {
        len_of(len)?;
        let mut opts = memmap2::MmapOptions::new();
        opts.len(len);
        if noreserve {
            opts.no_reserve_swap();
        }
        let map = opts.map_raw(fd)?;
        let ptr = NonNull::new(map.as_mut_ptr())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Mapping::exposed(ptr, len, Owner::Anywhere { _map: map }))
    }

    /// Maps the first `len` bytes of `fd` at exactly `addr`, without
    /// replacing anything mapped there (`MAP_FIXED_NOREPLACE`):
    /// [`FixedError::InUse`] when the range is taken.
    pub(crate) fn fixed(
        fd: &OwnedFd,
        addr: usize,
        len: usize,
        noreserve: bool,
    ) -> Result<Mapping, FixedError> {
        let at = NonZeroUsize::new(addr).ok_or(FixedError::InUse)?;
        let size = len_of(len).map_err(FixedError::Io)?;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping;
        // it fails (or, on kernels before 4.17, maps elsewhere) instead.
        let r = unsafe {
            mman::mmap(
                Some(at),
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                flags(noreserve) | MapFlags::MAP_FIXED_NOREPLACE,
                fd,
                0,
            )
        };
        match r {
            Ok(p) => {
                let m = Mapping::exposed(p.cast(), len, Owner::Fixed);
                if m.addr() == addr {
                    Ok(m)
                } else {
                    // An old kernel took the address as a hint.
                    Err(FixedError::InUse)
                }
            }
            Err(Errno::EEXIST) => Err(FixedError::InUse),
            Err(e) => Err(FixedError::Io(io::Error::from_raw_os_error(e as i32))),
        }
    }

    /// The first byte.
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The address of the first byte.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr().addr()
    }

    /// The length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if let Owner::Fixed = self.owner {
            // SAFETY: unmaps exactly the range this handle mapped; whatever
            // borrows its memory holds the handle (or its owner) alive.
            let _ = unsafe { mman::munmap(self.ptr.cast(), self.len) };
        }
        // `Owner::Anywhere` unmaps its range when dropped, right after.
    }
}
