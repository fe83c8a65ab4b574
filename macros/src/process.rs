//! `#[process]`.

use proc_macro2::TokenStream;

pub(crate) fn expand(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut out = item;
    out.extend(quote::quote!(::core::compile_error!("#[mc::process] is not available yet");));
    out
}
