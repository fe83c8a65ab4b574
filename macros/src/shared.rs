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
        Some(container) => Ok(crate::krate::rebase(
            generate::expand(&container),
            container.krate.as_ref(),
        )),
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

#[cfg(test)]
mod tests {
    use super::expand;

    fn run(src: &str) -> Result<String, String> {
        let input: syn::DeriveInput = syn::parse_str(src).unwrap();
        expand(input).map(|t| t.to_string()).map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn accepts_every_shape() {
        for src in [
            "struct A { x: u8, r#type: String }",
            "pub(crate) struct B(pub u8, Vec<Self>);",
            "struct C;",
            "struct D {}",
            "enum E { A, B(u8), C { x: Option<Box<Self>> } }",
            "enum F { A, B }",
            "struct G<T: Clone, U = u8> where T: Copy { t: T, u: Vec<U> }",
            "#[shared(repr = Other)] struct H { x: u8 }",
        ] {
            assert!(run(src).is_ok(), "{src}: {:?}", run(src));
        }
        assert!(run("#[shared(repr = Other)] struct H { x: u8 }")
            .unwrap()
            .contains("struct Other"));
    }

    #[test]
    fn self_becomes_the_type() {
        let out =
            run("struct L<T> { next: Option<Box<Self>>, n: <Self as X>::Y, m: Self::Z, t: T }")
                .unwrap();
        assert!(out.contains("Option < Box < L < T > > >"), "{out}");
        assert!(out.contains("< L < T > as X > :: Y"), "{out}");
        assert!(out.contains("< L < T > > :: Z"), "{out}");
    }

    #[test]
    fn reports_all_errors_at_once() {
        let errors = run(
            "#[shared(bogus, repr = A, repr = B)] enum E<'a, const N: usize> { X = 1, Y(&'a u8) }",
        )
        .unwrap_err();
        for expected in [
            "unknown `shared` attribute `bogus`",
            "lifetime parameters",
            "const generic parameters",
            "explicit discriminants",
        ] {
            assert!(
                errors.contains(expected),
                "missing {expected:?} in {errors}"
            );
        }
        assert!(run("union U { a: u8 }").unwrap_err().contains("unions"));
        assert!(run("enum V {}").unwrap_err().contains("without variants"));
        assert!(run("struct S { #[shared(x)] a: u8 }")
            .unwrap_err()
            .contains("no options"));
    }
}
