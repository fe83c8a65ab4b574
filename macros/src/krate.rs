//! The `crate = "path"` option of both macros: where the generated code
//! finds `mc` when the crate is renamed or re-exported.
//!
//! The generators write every path into the runtime as `::mc::…`. When the
//! user names another path, [`rebase`] swaps the leading `::mc` of each such
//! path for it, in the finished output (inside groups too), so that no
//! generator needs to thread the path through.

use proc_macro2::{Group, Spacing, TokenStream, TokenTree};
use quote::ToTokens;

/// Parses the value of a `crate = "path"` option.
pub(crate) fn parse_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    let lit: syn::LitStr = meta.value()?.parse()?;
    lit.parse::<syn::Path>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format_args!(
                "`crate = \"{}\"` is not a path; give the path under which the `mc` crate is \
                 reachable, e.g. `crate = \"my_reexports::mc\"`",
                lit.value()
            ),
        )
    })
}

/// `tokens` with every absolute path `::mc::…` starting at `krate` instead;
/// `tokens` unchanged when `krate` is `None`.
pub(crate) fn rebase(tokens: TokenStream, krate: Option<&syn::Path>) -> TokenStream {
    match krate {
        Some(k) => rebase_stream(tokens, &k.to_token_stream()),
        None => tokens,
    }
}

fn rebase_stream(tokens: TokenStream, krate: &TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        let continues_path = i > 0
            && match &trees[i - 1] {
                TokenTree::Ident(id) => !is_keyword(&id.to_string()),
                // The second colon of a `::`, or the `>` of `<T as X>::`.
                TokenTree::Punct(p) if p.as_char() == ':' => {
                    i >= 2
                        && matches!(&trees[i - 2], TokenTree::Punct(q)
                            if q.as_char() == ':' && q.spacing() == Spacing::Joint)
                }
                TokenTree::Punct(p) => p.as_char() == '>',
                _ => false,
            };
        if !continues_path && is_absolute_mc(&trees[i..]) {
            out.extend(krate.clone());
            i += 3;
            continue;
        }
        out.push(match &trees[i] {
            TokenTree::Group(g) => {
                let mut inner = Group::new(g.delimiter(), rebase_stream(g.stream(), krate));
                inner.set_span(g.span());
                TokenTree::Group(inner)
            }
            other => other.clone(),
        });
        i += 1;
    }
    out.into_iter().collect()
}

/// Keywords that may stand before an absolute path (`impl ::mc::X`, `as
/// ::mc::X`): after them `::` starts a path rather than continuing one.
fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "as" | "box"
            | "break"
            | "const"
            | "dyn"
            | "else"
            | "for"
            | "if"
            | "impl"
            | "in"
            | "let"
            | "match"
            | "move"
            | "mut"
            | "ref"
            | "return"
            | "static"
            | "type"
            | "unsafe"
            | "use"
            | "where"
            | "while"
            | "yield"
    )
}

/// Whether the trees start with `::mc` followed by `::` (the caller checks
/// that the `::` does not continue a path such as `a::mc::b`).
fn is_absolute_mc(trees: &[TokenTree]) -> bool {
    match trees {
        [TokenTree::Punct(a), TokenTree::Punct(b), TokenTree::Ident(id), TokenTree::Punct(c), ..] => {
            a.as_char() == ':' && b.as_char() == ':' && id == "mc" && c.as_char() == ':'
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn absolute_paths_move_and_others_stay() {
        let k: syn::Path = syn::parse_str("my::reexport").unwrap();
        let out = rebase(
            quote!(impl ::mc::Shared for T { fn f(x: ::mc::__private::Writer) -> mc::Other { a::mc::b; <T as ::mc::Shared>::Repr } }),
            Some(&k),
        );
        let s = out.to_string();
        assert!(s.contains("impl my :: reexport :: Shared"), "{s}");
        assert!(
            s.contains("x : my :: reexport :: __private :: Writer"),
            "{s}"
        );
        assert!(s.contains("-> mc :: Other"), "{s}");
        assert!(s.contains("a :: mc :: b"), "{s}");
        assert!(
            s.contains("< T as my :: reexport :: Shared > :: Repr"),
            "{s}"
        );
        assert_eq!(
            rebase(quote!(::mc::X), None).to_string(),
            quote!(::mc::X).to_string()
        );
    }
}
