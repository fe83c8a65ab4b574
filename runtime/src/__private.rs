//! Items used by the code that the macros generate. Not public API.

pub use crate::value::{
    fingerprint_combine, fingerprint_str, CopyError, Invalid, Shared, Tracer, Validator, Writer,
};

pub use core::marker::{PhantomData, PhantomPinned};
pub use core::pin::Pin;

/// Names a field in derive errors: `#[derive(Shared)]` declares a marker
/// type named after each field (`name`, `field_0` for tuple fields,
/// `Variant_name` for fields of enum variants) and requires
/// `FieldTy: SharedField<marker>`, which holds for every `Shared` type; a
/// field whose type is not `Shared` gets this error, naming the field.
#[diagnostic::on_unimplemented(
    message = "field `{F}` has type `{Self}`, which cannot be stored in shared memory",
    label = "`{Self}` does not implement `mc::Shared`",
    note = "shared values own all their data, in shared memory: references, raw pointers, \
            Rc/Arc, Cell/RefCell, fn pointers, closures, trait objects, std::sync locks, files \
            and sockets cannot be shared; use String, Vec, Box, Option, tuples, arrays, numbers, \
            mc::sync locks or types with #[derive(mc::Shared)], and pass heaps, pools and \
            camlboxes by their descriptors"
)]
pub trait SharedField<F: ?Sized> {}

impl<T: Shared, F: ?Sized> SharedField<F> for T {}

/// Implemented by every type with a `Drop` impl; the derive implements it
/// for the representations it generates, so a user `Drop` impl on one
/// (which could move a value out of shared memory) is a conflict.
pub trait MustNotImplDrop {}

#[allow(drop_bounds)]
impl<T: Drop> MustNotImplDrop for T {}

/// Used by generated `Unpin` impls: `Unpin` exactly when `T` is, with a
/// lifetime that keeps the bound from being trivial (so a user `Unpin` impl
/// on a representation conflicts with the generated one).
#[derive(Debug)]
pub struct AlwaysUnpinIf<'a, T: ?Sized>(PhantomData<&'a ()>, T);
