//! Procedural macros of [mc](https://docs.rs/mc): `#[derive(Shared)]` and
//! `#[process]`. Use them through the `mc` crate (`#[derive(mc::Shared)]`,
//! `#[mc::process]`), which re-exports them.

#![deny(unsafe_code)]

mod krate;
mod process;
mod shared;

use proc_macro::TokenStream;

#[proc_macro_derive(Shared, attributes(shared))]
pub fn derive_shared(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    shared::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[proc_macro_attribute]
pub fn process(attr: TokenStream, item: TokenStream) -> TokenStream {
    process::expand(attr.into(), item.into()).into()
}
