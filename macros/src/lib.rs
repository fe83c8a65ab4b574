//! Procedural macros of [mc](https://docs.rs/mc): `#[derive(Shared)]` and
//! `#[process]`. Use them through the `mc` crate (`#[derive(mc::Shared)]`,
//! `#[mc::process]`), which re-exports them.

#![deny(unsafe_code)]

mod krate;
mod process;
mod shared;

use proc_macro::TokenStream;

/// Derives `mc::Shared`: a shared representation (`Shared<Name>`), deep copy
/// into shared memory, copy-out, GC tracing and validation. See the `mc`
/// crate's docs.
///
/// For `struct Job { name: String, .. }` it generates, next to `Job`:
///
/// - `SharedJob`, the shared representation: `#[repr(C)]`, same
///   visibility, fields and field visibilities, each field of type
///   `Repr<FieldTy>` (enums: `#[repr(C, u8)]`, or `u16` beyond 256
///   variants). It implements `Debug`, and `Unpin` exactly when all its
///   fields do (those without pointers);
/// - `SharedJobMut<'a>` and `SharedJob::project`, which turn a
///   `Pin<&mut SharedJob>` into one pinned reference per field (not for
///   unit structs and enums without data);
/// - `unsafe impl mc::Shared for Job`.
///
/// Options: `#[shared(repr = OtherName)]` names the shared representation;
/// `#[shared(crate = "path")]` says where the `mc` crate is, for code that
/// reaches it under another name or through a re-export.
///
/// Rejected at compile time, with the error on the offending token: fields
/// whose type is not `Shared` (the error names the field), unions,
/// explicit discriminants, lifetime and const parameters, enums without
/// variants, unknown `#[shared]` options, and (as conflicting impls) a
/// `Drop` or `Unpin` impl on the shared representation.
#[proc_macro_derive(Shared, attributes(shared))]
pub fn derive_shared(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    shared::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Turns `fn name(arg: A) -> R` into a process definition: `name::start`,
/// `name::join` and friends. See the `mc` crate's docs.
///
/// Option: `#[mc::process(crate = "path")]` says where the `mc` crate is,
/// for code that reaches it under another name or through a re-export.
#[proc_macro_attribute]
pub fn process(attr: TokenStream, item: TokenStream) -> TokenStream {
    process::expand(attr.into(), item.into()).into()
}
