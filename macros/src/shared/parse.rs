//! Lowers the derive input into the model the generator works from, and
//! reads the `#[shared(...)]` attributes.

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::{Attribute, Generics, Ident, Member, Type, Visibility};

use super::Errors;

/// The type being derived.
pub(crate) struct Container<'a> {
    pub(crate) ident: &'a Ident,
    /// The item's attributes (for `#[repr]`).
    pub(crate) attrs: &'a [syn::Attribute],
    pub(crate) vis: &'a Visibility,
    pub(crate) generics: &'a Generics,
    /// The name of the shared representation (`Shared<Name>` unless
    /// overridden with `#[shared(repr = Other)]`).
    pub(crate) repr_ident: Ident,
    /// Where the generated code finds `mc` (`#[shared(crate = "path")]`;
    /// `::mc` when `None`).
    pub(crate) krate: Option<syn::Path>,
    pub(crate) data: Data<'a>,
}

pub(crate) enum Data<'a> {
    Struct(Fields<'a>),
    Enum(Vec<Variant<'a>>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Named,
    Tuple,
    Unit,
}

pub(crate) struct Fields<'a> {
    pub(crate) style: Style,
    pub(crate) list: Vec<Field<'a>>,
}

pub(crate) struct Variant<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) fields: Fields<'a>,
    pub(crate) original: &'a syn::Variant,
}

pub(crate) struct Field<'a> {
    /// `name` or `0`: how the field is accessed.
    pub(crate) member: Member,
    pub(crate) vis: &'a Visibility,
    /// The field type, with `Self` replaced by the container type (so it can
    /// be used in the twin type and in free items).
    pub(crate) ty: Type,
    pub(crate) original: &'a syn::Field,
    /// A binding for the field in `match` patterns.
    pub(crate) binding: Ident,
}

impl Field<'_> {
    /// The field's name as shown to users: `name` or `0`.
    pub(crate) fn display_name(&self) -> String {
        Self::member_name(&self.member)
    }

    /// `name` (without `r#`) or `0`.
    pub(crate) fn member_name(member: &Member) -> String {
        match member {
            Member::Named(ident) => syn::ext::IdentExt::unraw(ident).to_string(),
            Member::Unnamed(index) => index.index.to_string(),
        }
    }
}

impl<'a> Container<'a> {
    /// Lowers `input`; returns `None` (with an error recorded) for inputs
    /// that have no model (unions).
    pub(crate) fn from_ast(input: &'a syn::DeriveInput, errors: &mut Errors) -> Option<Self> {
        let attrs = ContainerAttrs::parse(&input.attrs, errors);
        let krate = attrs.krate;
        let repr_ident = attrs
            .repr
            .unwrap_or_else(|| format_ident!("Shared{}", input.ident));
        let self_ty = {
            let (_, ty_generics, _) = input.generics.split_for_impl();
            let ident = &input.ident;
            quote!(#ident #ty_generics)
        };
        let data = match &input.data {
            syn::Data::Struct(data) => {
                Data::Struct(Fields::from_ast(&data.fields, &self_ty, errors))
            }
            syn::Data::Enum(data) => Data::Enum(
                data.variants
                    .iter()
                    .map(|variant| {
                        reject_shared_attrs(&variant.attrs, "variants", errors);
                        Variant {
                            ident: &variant.ident,
                            fields: Fields::from_ast(&variant.fields, &self_ty, errors),
                            original: variant,
                        }
                    })
                    .collect(),
            ),
            syn::Data::Union(data) => {
                errors.spanned(
                    data.union_token,
                    "#[derive(Shared)] does not support unions: which field is live cannot be \
                     known, so the value cannot be copied, traced or validated; use an enum",
                );
                return None;
            }
        };
        Some(Container {
            ident: &input.ident,
            attrs: &input.attrs,
            vis: &input.vis,
            generics: &input.generics,
            repr_ident,
            krate,
            data,
        })
    }

    /// Every field of every variant, in order.
    pub(crate) fn all_fields(&self) -> Vec<&Field<'a>> {
        match &self.data {
            Data::Struct(fields) => fields.list.iter().collect(),
            Data::Enum(variants) => variants.iter().flat_map(|v| v.fields.list.iter()).collect(),
        }
    }
}

impl<'a> Fields<'a> {
    fn from_ast(fields: &'a syn::Fields, self_ty: &TokenStream, errors: &mut Errors) -> Self {
        let style = match fields {
            syn::Fields::Named(_) => Style::Named,
            syn::Fields::Unnamed(_) => Style::Tuple,
            syn::Fields::Unit => Style::Unit,
        };
        let list = fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                reject_shared_attrs(&field.attrs, "fields", errors);
                let member = match &field.ident {
                    Some(ident) => Member::Named(ident.clone()),
                    None => Member::Unnamed(syn::Index {
                        index: i as u32,
                        span: syn::spanned::Spanned::span(&field.ty),
                    }),
                };
                let ty = replace_self(field.ty.to_token_stream(), self_ty);
                let ty = syn::parse2(ty).unwrap_or_else(|_| field.ty.clone());
                Field {
                    member,
                    vis: &field.vis,
                    ty,
                    original: field,
                    binding: format_ident!("__mc_f{}", i),
                }
            })
            .collect();
        Fields { style, list }
    }
}

/// Replaces `Self` in a field type by the container type, keeping the span
/// of the `Self` token.
fn replace_self(tokens: TokenStream, self_ty: &TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(tt) = iter.next() {
        match tt {
            TokenTree::Ident(ident) if ident == "Self" => {
                let span = ident.span();
                let respanned: TokenStream = self_ty
                    .clone()
                    .into_iter()
                    .map(|mut t| {
                        t.set_span(span);
                        t
                    })
                    .collect();
                // `Self::Assoc` must become `<Ty<..>>::Assoc`.
                let followed_by_path =
                    matches!(iter.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                if followed_by_path {
                    out.extend(quote::quote_spanned!(span=> < #respanned >));
                } else {
                    out.extend(respanned);
                }
            }
            TokenTree::Group(group) => {
                let mut new = Group::new(group.delimiter(), replace_self(group.stream(), self_ty));
                new.set_span(group.span());
                out.extend([TokenTree::Group(new)]);
            }
            other => out.extend([other]),
        }
    }
    out
}

/// `#[shared(...)]` on the container.
#[derive(Default)]
struct ContainerAttrs {
    repr: Option<Ident>,
    krate: Option<syn::Path>,
}

impl ContainerAttrs {
    fn parse(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut out = ContainerAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("shared")) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("repr") {
                    let ident: Ident = meta.value()?.parse()?;
                    if out.repr.is_some() {
                        errors.spanned(&meta.path, "duplicate `shared` attribute `repr`");
                    } else {
                        out.repr = Some(ident);
                    }
                    Ok(())
                } else if meta.path.is_ident("crate") {
                    let path = crate::krate::parse_value(&meta)?;
                    if out.krate.is_some() {
                        errors.spanned(&meta.path, "duplicate `shared` attribute `crate`");
                    } else {
                        out.krate = Some(path);
                    }
                    Ok(())
                } else {
                    Err(meta.error(format_args!(
                        "unknown `shared` attribute `{}`; the options are `repr = Name` (the \
                         name of the shared representation) and `crate = \"path\"` (where \
                         the `mc` crate is)",
                        meta.path.to_token_stream().to_string().replace(' ', "")
                    )))
                }
            });
            if let Err(e) = result {
                errors.push(e);
            }
        }
        out
    }
}

/// Reports `#[shared(...)]` on fields and variants, which take no options.
fn reject_shared_attrs(attrs: &[Attribute], what: &str, errors: &mut Errors) {
    for attr in attrs.iter().filter(|a| a.path().is_ident("shared")) {
        errors.spanned(
            attr,
            format_args!("`#[shared(...)]` takes no options on {what}"),
        );
    }
}

/// The `#[doc]` attributes of an item, to carry over to the twin.
pub(crate) fn docs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("doc"))
}
