//! Descriptors as shared values: heap, pool and camlbox descriptors and
//! the structures' descriptors can be fields of shared values, as
//! Netmulticore keeps descriptors in shared structures.
//!
//! A descriptor is stored as its plain parts (names and numbers, a
//! [`Shared`] tuple) behind the typed representation [`SharedDescr<D>`], which
//! gives the descriptor back with [`SharedDescr::get`].

use std::fmt;
use std::marker::PhantomData;

use super::{CopyError, Invalid, Shared, Tracer, Validator, Writer};

/// A descriptor type that is stored in shared memory as plain parts.
/// Implemented by mc's descriptors; not meant for other types.
#[doc(hidden)]
pub trait DescrParts: Sized + 'static {
    /// The parts, a `Shared` value of names and numbers.
    type Parts: Shared;
    /// The parts of this descriptor.
    fn to_parts(&self) -> Self::Parts;
    /// The descriptor of these parts. Parts read from shared memory are
    /// whatever was written there: descriptors check what they name when
    /// they are opened.
    fn from_parts(parts: Self::Parts) -> Self;
}

/// The shared representation of a descriptor `D` (a [`HeapDescr`],
/// [`PoolDescr`], [`CamlboxDescr`] or a structure's descriptor): read it in
/// place and [`get`](SharedDescr::get) the descriptor back, then open it.
///
/// ```
/// let pool = mc::Pool::create(16 << 20)?;
/// let data = mc::Heap::create(&pool, &vec![1u64, 2, 3])?;
/// // A heap whose root holds the descriptor of another heap.
/// let index = mc::Heap::create(&pool, &vec![data.descr()])?;
/// let d = index.read()?[0].get();
/// assert_eq!(d.open()?.copy()?, vec![1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`HeapDescr`]: crate::HeapDescr
/// [`PoolDescr`]: crate::PoolDescr
/// [`CamlboxDescr`]: crate::CamlboxDescr
#[repr(transparent)]
pub struct SharedDescr<D: DescrParts> {
    parts: <D::Parts as Shared>::Repr,
    _d: PhantomData<fn() -> D>,
}

impl<D: DescrParts> SharedDescr<D> {
    /// The descriptor (a local copy).
    pub fn get(&self) -> D {
        D::from_parts(<D::Parts as Shared>::from_repr(&self.parts))
    }
}

impl<D: DescrParts + fmt::Debug> fmt::Debug for SharedDescr<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

/// Writes `d`'s parts as its representation.
#[doc(hidden)]
pub fn descr_to_repr<D: DescrParts>(
    d: &D,
    w: &mut Writer<'_>,
) -> Result<SharedDescr<D>, CopyError> {
    Ok(SharedDescr {
        parts: d.to_parts().to_repr(w)?,
        _d: PhantomData,
    })
}

/// Copies a representation.
#[doc(hidden)]
pub fn descr_repr_to_repr<D: DescrParts>(
    src: &SharedDescr<D>,
    w: &mut Writer<'_>,
) -> Result<SharedDescr<D>, CopyError> {
    Ok(SharedDescr {
        parts: <D::Parts as Shared>::repr_to_repr(&src.parts, w)?,
        _d: PhantomData,
    })
}

/// Traces a representation.
#[doc(hidden)]
pub fn descr_trace<D: DescrParts>(src: &SharedDescr<D>, t: &mut Tracer<'_>) {
    <D::Parts as Shared>::trace(&src.parts, t)
}

/// Validates a representation.
///
/// # Safety
///
/// As [`Shared::validate`]: `src` is readable for `size_of::<SharedDescr<D>>()`
/// bytes.
#[doc(hidden)]
pub unsafe fn descr_validate<D: DescrParts>(
    src: *const SharedDescr<D>,
    v: &mut Validator<'_>,
) -> Result<(), Invalid> {
    // SAFETY: `SharedDescr` is `repr(transparent)` over the parts'
    // representation (the marker is zero-sized), so the same readable
    // bytes hold the parts; the caller's guarantee carries over.
    unsafe { <D::Parts as Shared>::validate(src.cast(), v) }
}

/// Implements [`Shared`] for a descriptor type through its
/// [`DescrParts`], with the fingerprint `$fp`.
macro_rules! shared_descr {
    // A descriptor generic over the types `$arg`: its fingerprints combine
    // `$name`'s with the arguments' (deep, then shallow).
    ([$($gen:tt)*] $ty:ty, name = $name:expr, args = [$($arg:ty),+]) => {
        $crate::value::descr::shared_descr!(
            [$($gen)*] $ty,
            $crate::value::fingerprint_combine(&[
                $crate::value::fingerprint_str($name),
                $(<$arg as $crate::Shared>::FINGERPRINT),+
            ]),
            $crate::value::fingerprint_combine(&[
                $crate::value::fingerprint_str($name),
                $(<$arg as $crate::Shared>::SHALLOW_FINGERPRINT),+
            ])
        );
    };
    ([$($gen:tt)*] $ty:ty, $fp:expr, $shallow:expr) => {
        // SAFETY: the representation is the parts' representation (a
        // `Shared` tuple of names and numbers) behind a transparent
        // wrapper, and every method delegates to the parts' own, so the
        // parts' implementation upholds the contract.
        unsafe impl<$($gen)*> $crate::value::Shared for $ty {
            type Repr = $crate::value::SharedDescr<$ty>;
            const FINGERPRINT: u64 = $fp;
            const SHALLOW_FINGERPRINT: u64 = $shallow;
            const HAS_POINTERS: bool = true;
            fn to_repr(
                &self,
                w: &mut $crate::value::Writer<'_>,
            ) -> Result<Self::Repr, $crate::value::CopyError> {
                $crate::value::descr::descr_to_repr(self, w)
            }
            fn repr_to_repr(
                src: &Self::Repr,
                w: &mut $crate::value::Writer<'_>,
            ) -> Result<Self::Repr, $crate::value::CopyError> {
                $crate::value::descr::descr_repr_to_repr(src, w)
            }
            fn from_repr(src: &Self::Repr) -> Self {
                src.get()
            }
            fn trace(src: &Self::Repr, t: &mut $crate::value::Tracer<'_>) {
                $crate::value::descr::descr_trace(src, t)
            }
            unsafe fn validate(
                src: *const Self::Repr,
                v: &mut $crate::value::Validator<'_>,
            ) -> Result<(), $crate::value::Invalid> {
                // SAFETY: the caller's guarantee, passed on.
                unsafe { $crate::value::descr::descr_validate(src, v) }
            }
        }
    };
}
pub(crate) use shared_descr;
