//! `#[derive(Shared)]`.

use proc_macro2::TokenStream;

pub(crate) fn expand(input: syn::DeriveInput) -> syn::Result<TokenStream> {
    Err(syn::Error::new_spanned(input.ident, "#[derive(Shared)] is not available yet"))
}
