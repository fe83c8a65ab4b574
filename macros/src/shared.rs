//! `#[derive(Shared)]`: parse → validate → generate.
//!
//! - [`parse`] lowers the `syn` input into a small model ([`parse::Container`])
//!   and reads the `#[shared(...)]` attributes;
//! - [`validate`] rejects what the shared representation cannot express
//!   (unions, explicit discriminants, lifetimes, const generics, empty
//!   enums);
//! - [`generate`] emits the twin type, its projection, and the `Shared`
//!   implementation.
//!
//! Every stage reports errors into one [`Errors`] accumulator, so the user
//! sees all of them at once; the macro never panics on user input.

mod generate;
mod parse;
mod validate;

use proc_macro2::TokenStream;

pub(crate) fn expand(input: syn::DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let container = parse::Container::from_ast(&input, &mut errors);
    if let Some(container) = &container {
        validate::check(container, &mut errors);
    }
    errors.finish()?;
    match container {
        Some(container) => Ok(generate::expand(&container)),
        // `from_ast` only returns `None` after reporting an error.
        None => Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Shared)] failed",
        )),
    }
}

/// Collects errors so that all of them are reported together.
#[derive(Default)]
pub(crate) struct Errors {
    first: Option<syn::Error>,
}

impl Errors {
    /// Records an error spanned on `tokens`.
    pub(crate) fn spanned(
        &mut self,
        tokens: impl quote::ToTokens,
        message: impl std::fmt::Display,
    ) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.first {
            Some(first) => first.combine(error),
            None => self.first = Some(error),
        }
    }

    /// All errors so far, combined.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
