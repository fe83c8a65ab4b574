//! Items used by the code that the macros generate. Not public API.

pub use crate::value::{
    fingerprint_combine, fingerprint_str, CopyError, Invalid, Shared, Tracer, Validator, Writer,
};
pub use core::marker::{PhantomData, PhantomPinned};
pub use core::pin::Pin;

/// Names a field in derive errors: `SharedField<field_name>` is implemented
/// for every `Shared` type, so a field whose type is not `Shared` gets an
/// error that names the field.
#[diagnostic::on_unimplemented(
    message = "field `{F}` has type `{Self}`, which cannot be stored in shared memory",
    label = "`{Self}` does not implement `mc::Shared`",
    note = "shared values hold owned data only: references, raw pointers, Rc/Arc, Cell/RefCell, \
            fn pointers, closures, trait objects, std::sync locks, files and sockets cannot be \
            shared; use String, Vec, Box, Option, numbers, mc::sync locks or types with \
            #[derive(mc::Shared)], and pass heaps, pools and camlboxes by their descriptors"
)]
pub trait SharedField<F> {}

impl<T: Shared, F> SharedField<F> for T {}

/// Asserts at compile time that `T: SharedField<F>`.
pub const fn assert_shared_field<T: SharedField<F>, F>() {}

/// Implemented by every type with a `Drop` impl; the derive implements it
/// for the representations it generates, so a user `Drop` impl on one
/// (which could move a value out of shared memory) is a conflict.
pub trait MustNotImplDrop {}

#[allow(drop_bounds)]
impl<T: Drop> MustNotImplDrop for T {}

/// Used by generated `Unpin` impls: `Unpin` exactly when `T` is, with a
/// lifetime that keeps the bound from being trivial (so a user `Unpin` impl
/// on a representation conflicts with the generated one).
pub struct AlwaysUnpinIf<'a, T: ?Sized>(PhantomData<&'a ()>, T);
