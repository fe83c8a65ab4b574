//! Rejects what the shared representation cannot express. Each rule is one
//! function; errors are spanned on the offending token.

use syn::GenericParam;

use super::parse::{Container, Data};
use super::Errors;

/// The most variants a derived enum may have (the tag is at most a `u16`).
pub(crate) const MAX_VARIANTS: usize = 1 << 16;

pub(crate) fn check(container: &Container<'_>, errors: &mut Errors) {
    check_repr(container, errors);
    check_generics(container, errors);
    if let Data::Enum(variants) = &container.data {
        check_variants(container, variants, errors);
    }
}

/// The twin lays its fields out with `#[repr(C)]` and the runtime reads
/// them through references, which a packed layout would leave unaligned;
/// `#[repr(packed)]` (also `packed(N)`, alone or with `C`) is rejected on
/// the `packed` token.
///
/// ```text
/// #[derive(Shared)] #[repr(C, packed)] struct P { a: u8, b: u64 }   // error
/// ```
fn check_repr(container: &Container<'_>, errors: &mut Errors) {
    for attr in container.attrs {
        if !attr.path().is_ident("repr") {
            continue;
        }
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("packed") {
                errors.spanned(
                    &meta.path,
                    "#[derive(Shared)] does not support #[repr(packed)]: values are read in \
                     place through references, which must be aligned; remove `packed` (the \
                     shared representation chooses its own layout)",
                );
            }
            if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                let _: proc_macro2::TokenStream = content.parse()?;
            }
            Ok(())
        });
    }
}

/// Shared values own all their data and live as long as the heap that
/// holds them: a lifetime parameter would let them borrow local data.
/// Const generics are not supported (yet).
///
/// ```text
/// #[derive(Shared)] struct Name<'a> { s: &'a str }   // error: use String
/// ```
fn check_generics(container: &Container<'_>, errors: &mut Errors) {
    for param in &container.generics.params {
        match param {
            GenericParam::Lifetime(lt) => errors.spanned(
                &lt.lifetime,
                "#[derive(Shared)] does not support lifetime parameters: shared values own their \
                 data; use owned types (String instead of &str, Vec<T> instead of &[T])",
            ),
            GenericParam::Const(c) => errors.spanned(
                c,
                "#[derive(Shared)] does not support const generic parameters; use a fixed array \
                 length or a Vec",
            ),
            GenericParam::Type(_) => {}
        }
    }
}

/// The twin enum numbers its variants from 0 in declaration order (the tag
/// that `validate` checks), so explicit discriminants are rejected rather
/// than silently ignored; an enum without variants has no values.
///
/// ```text
/// #[derive(Shared)] enum E { A = 5 }   // error: remove `= 5`
/// #[derive(Shared)] enum Never {}      // error
/// ```
fn check_variants(
    container: &Container<'_>,
    variants: &[super::parse::Variant<'_>],
    errors: &mut Errors,
) {
    if variants.is_empty() {
        errors.spanned(
            container.ident,
            "#[derive(Shared)] does not support enums without variants: they have no values to \
             share",
        );
    }
    if variants.len() > MAX_VARIANTS {
        errors.spanned(
            container.ident,
            format_args!("#[derive(Shared)] supports at most {MAX_VARIANTS} variants"),
        );
    }
    for variant in variants {
        if let Some((eq, expr)) = &variant.original.discriminant {
            errors.push(syn::Error::new_spanned(
                quote::quote!(#eq #expr),
                "#[derive(Shared)] does not support explicit discriminants: the shared \
                 representation numbers variants from 0 in declaration order; remove `= ...`",
            ));
        }
    }
}
