//! Code generation for `#[derive(Shared)]`.
//!
//! For `struct Job { .. }` the output is, in this order:
//!
//! 1. a field check (`const _: () = { .. }`): one marker type per field,
//!    named after it, and a function whose `where` clause requires
//!    `FieldTy: mc::__private::SharedField<marker>` for every field,
//!    spanned on the field type. A field whose type is not `Shared` fails
//!    this clause first (where-clauses are checked before bodies), with the
//!    `#[diagnostic::on_unimplemented]` message of `SharedField`, which
//!    names the field and says what to use instead. (The diagnostic
//!    attribute cannot be generated here: tool attributes do not resolve
//!    under `#![no_implicit_prelude]`.) The compiler prints the marker
//!    with its path (`_::value`) when another item has the same name;
//!    the error still points at the field;
//! 2. the twin type `SharedJob` (`#[repr(C)]`, or `#[repr(C, u8)]` /
//!    `#[repr(C, u16)]` for enums), at item level so users can name it;
//! 3. the projection type `SharedJobMut<'a>` (not for unit structs and
//!    enums without data);
//! 4. inside `const _: () = { .. }`: the `Shared` impl, the pinning guards
//!    (`MustNotImplDrop`, a conditional `Unpin`), `project()`, `Debug`
//!    (printing like `derive(Debug)` on the original type, bounded on the
//!    type parameters' representations), and for enums the layout model
//!    used by `validate`.
//!
//! All paths are absolute (`::mc::..`, `::core::..`) so the output compiles
//! without the user's imports or prelude.
//!
//! # Unsafe code in the output
//!
//! Comments are not part of token streams, so the `// SAFETY:` reasoning for
//! the generated `unsafe` blocks is here, and the generated items carry
//! `#[allow(clippy::undocumented_unsafe_blocks)]`:
//!
//! - `unsafe impl Shared`: the twin is `#[repr(C)]` and holds exactly the
//!   representations of the fields, each produced, traced and validated by
//!   the field type's own (sound) implementation; the twin has no safe
//!   constructor for pointer-carrying fields (their representations have
//!   none), is `!Unpin` when a field representation is (guard 2 below),
//!   `!Send`/`!Sync` when one is (auto traits), and cannot get a `Drop`
//!   impl (guard 1). `HAS_POINTERS` is the disjunction over the fields.
//! - struct `validate`: `addr_of!((*src).field)` computes a field address
//!   without creating a reference (the bytes may be invalid); the field lies
//!   inside the `size_of::<Repr>()` bytes the caller guarantees readable, so
//!   the field's `validate` contract holds.
//! - enum `validate`: the tag is the first field of a `repr(C, uN)` (or
//!   `repr(uN)`, without data) enum (RFC 2195), so reading it (unaligned:
//!   `validate` does not require alignment) is a read of plain integer
//!   bytes inside the readable range. Once the
//!   tag names a variant, the payload starts at
//!   `offset_of!(Layout, payload)` where `Layout` is the `repr(C)`
//!   `struct { tag, payload: union { one repr(C) struct per variant } }`
//!   that RFC 2195 defines as the enum's layout, and a field at the
//!   `offset_of!` of that field in its variant's struct. No reference to the
//!   enum is ever created before its fields are validated. (The test
//!   `enum_layout_model_matches_the_compiler` in `runtime/tests/derive.rs`
//!   checks the model against the compiler's layout.)
//! - `project()`: structural pinning. It is sound because (guard 1) the
//!   twin has no `Drop` impl that could move a field out of a pinned value
//!   (`MustNotImplDrop` makes a user `Drop` impl a conflict), (guard 2) the
//!   twin is `Unpin` only when every field representation is (so `&mut` to
//!   a pinned twin cannot be obtained in safe code while a field is
//!   `!Unpin`; a user `Unpin` impl is a conflict), the twin is not
//!   `#[repr(packed)]`, and no generated code moves a field out of a pinned
//!   twin.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{parse_quote, GenericParam, Generics, Ident, Lifetime, LifetimeParam, WhereClause};

use super::parse::{docs, Container, Data, Field, Fields, Style, Variant};

pub(crate) fn expand(c: &Container<'_>) -> TokenStream {
    let g = Gen::new(c);
    let field_check = g.field_check();
    let twin = g.twin();
    let projection_type = g.projection_type();
    let shared_impl = g.shared_impl();
    let guards = g.guards();
    let project_impl = g.project_impl();
    let debug_impl = g.debug_impl();
    let layout = g.enum_layout();
    quote! {
        #field_check
        #twin
        #projection_type
        #[doc(hidden)]
        #[allow(non_camel_case_types, non_snake_case, dead_code)]
        const _: () = {
            #layout
            #shared_impl
            #guards
            #project_impl
            #debug_impl
        };
    }
}

struct Gen<'c, 'a> {
    c: &'c Container<'a>,
    /// The container's generics, each type parameter bounded by `Shared`.
    generics: Generics,
    /// `'a` for the projection type.
    lifetime: Lifetime,
    /// `'__pin` for the `Unpin` impl.
    pin_lifetime: Lifetime,
}

impl<'c, 'a> Gen<'c, 'a> {
    fn new(c: &'c Container<'a>) -> Self {
        let mut generics = c.generics.clone();
        for param in generics.type_params_mut() {
            param.bounds.push(parse_quote!(::mc::Shared));
        }
        Gen {
            c,
            generics,
            lifetime: Lifetime::new("'a", Span::call_site()),
            pin_lifetime: Lifetime::new("'__pin", Span::call_site()),
        }
    }

    fn name_str(&self) -> String {
        self.c.ident.to_string()
    }

    fn mut_ident(&self) -> Ident {
        format_ident!("{}Mut", self.c.repr_ident)
    }

    /// The twin's generics plus one leading lifetime.
    fn generics_with(&self, lifetime: &Lifetime) -> Generics {
        let mut g = self.generics.clone();
        g.params.insert(
            0,
            GenericParam::Lifetime(LifetimeParam::new(lifetime.clone())),
        );
        g
    }

    /// The where-clause predicates of the user's type (without `where`).
    fn user_predicates(&self) -> TokenStream {
        match &self.generics.where_clause {
            Some(w) => {
                let p = w.predicates.iter();
                quote!(#(#p,)*)
            }
            None => TokenStream::new(),
        }
    }

    /// Whether the type has fields at all (otherwise no projection).
    fn has_fields(&self) -> bool {
        !self.c.all_fields().is_empty()
    }

    // -----------------------------------------------------------------
    // 1. Field check

    fn field_check(&self) -> TokenStream {
        let (impl_generics, _, _) = self.generics.split_for_impl();
        let user = self.user_predicates();
        let owners: Vec<(Option<&Ident>, &Fields<'_>)> = match &self.c.data {
            Data::Struct(fields) => vec![(None, fields)],
            Data::Enum(variants) => variants
                .iter()
                .map(|v| (Some(v.ident), &v.fields))
                .collect(),
        };
        let mut markers = Vec::new();
        let mut preds = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let fields = owners
            .iter()
            .flat_map(|(v, fields)| fields.list.iter().map(move |f| (v, f)));
        for (i, (variant, f)) in fields.enumerate() {
            let name = match (&f.member, variant) {
                (syn::Member::Named(ident), None) => ident.unraw().to_string(),
                (syn::Member::Unnamed(index), None) => format!("field_{}", index.index),
                (member, Some(v)) => format!("{}_{}", v, Field::member_name(member)),
            };
            let name = if seen.insert(name.clone()) {
                name
            } else {
                format!("{name}_{i}")
            };
            // Spanned on the field type's last token, so that the predicate
            // below covers the whole type (its first token starts it).
            let marker = match syn::parse_str::<Ident>(&name) {
                Ok(_) => Ident::new(&name, end_span(f)),
                // A keyword field (`r#type`).
                Err(_) => Ident::new_raw(&name, end_span(f)),
            };
            markers.push(quote!(#[allow(non_camel_case_types)] enum #marker {}));
            let ty = &f.ty;
            preds.push(quote_spanned!(end_span(f)=> #ty: ::mc::__private::SharedField<#marker>));
        }
        quote! {
            #[doc(hidden)]
            const _: () = {
                #(#markers)*
                #[allow(
                    dead_code,
                    clippy::extra_unused_type_parameters,
                    clippy::multiple_bound_locations
                )]
                fn __mc_check_fields #impl_generics () where #user #(#preds,)* {}
            };
        }
    }

    // -----------------------------------------------------------------
    // 2. Twin type

    fn twin(&self) -> TokenStream {
        let c = self.c;
        let vis = c.vis;
        let repr = &c.repr_ident;
        let generics = &self.generics;
        let where_clause = &self.generics.where_clause;
        let doc = format!("The shared representation of [`{}`].", c.ident);
        match &c.data {
            Data::Struct(fields) => {
                let body = fields_def(fields, true);
                let decl = struct_decl(fields.style, generics, where_clause, body);
                quote! {
                    #[doc = #doc]
                    #[repr(C)]
                    #[allow(dead_code)]
                    #vis struct #repr #decl
                }
            }
            Data::Enum(variants) => {
                let tag = tag_type(variants.len());
                let any_data = variants.iter().any(|v| !v.fields.list.is_empty());
                let repr_attr = if any_data {
                    quote!(#[repr(C, #tag)])
                } else {
                    quote!(#[repr(#tag)])
                };
                let vs = variants.iter().map(|v| {
                    let docs = docs(&v.original.attrs);
                    let ident = v.ident;
                    let body = fields_def(&v.fields, false);
                    quote!(#(#docs)* #ident #body)
                });
                quote! {
                    #[doc = #doc]
                    #repr_attr
                    #[allow(dead_code)]
                    #vis enum #repr #generics #where_clause { #(#vs,)* }
                }
            }
        }
    }

    // -----------------------------------------------------------------
    // 3. Projection type

    fn projection_type(&self) -> TokenStream {
        if !self.has_fields() {
            return TokenStream::new();
        }
        let c = self.c;
        let vis = c.vis;
        let repr = &c.repr_ident;
        let mut_ident = self.mut_ident();
        let lt = &self.lifetime;
        let generics = self.generics_with(lt);
        let where_clause = &self.generics.where_clause;
        let doc = format!(
            "A pinned [`{repr}`] projected onto its fields (from [`{repr}::project`]): one \
             pinned reference per field."
        );
        match &c.data {
            Data::Struct(fields) => {
                let body = projection_fields_def(fields, lt, true);
                let decl = struct_decl(fields.style, &generics, where_clause, body);
                quote! {
                    #[doc = #doc]
                    #[allow(dead_code)]
                    #vis struct #mut_ident #decl
                }
            }
            Data::Enum(variants) => {
                let vs = variants.iter().map(|v| {
                    let ident = v.ident;
                    let body = projection_fields_def(&v.fields, lt, false);
                    quote!(#ident #body)
                });
                quote! {
                    #[doc = #doc]
                    #[allow(dead_code)]
                    #vis enum #mut_ident #generics #where_clause { #(#vs,)* }
                }
            }
        }
    }

    // -----------------------------------------------------------------
    // 4. The `Shared` impl

    fn shared_impl(&self) -> TokenStream {
        let c = self.c;
        let ident = c.ident;
        let repr = &c.repr_ident;
        let (impl_generics, ty_generics, where_clause) = self.generics.split_for_impl();
        let all = c.all_fields();
        let has_pointers = all.iter().map(|f| {
            let ty = &f.ty;
            quote_spanned!(f.original.ty.span()=> || <#ty as ::mc::Shared>::HAS_POINTERS)
        });
        let fingerprint = self.fingerprint(true);
        let shallow = self.fingerprint(false);
        let Methods {
            to_repr,
            repr_to_repr,
            from_repr,
            trace,
            validate,
        } = match &c.data {
            Data::Struct(fields) => self.struct_methods(fields),
            Data::Enum(variants) => self.enum_methods(variants),
        };
        quote! {
            #[automatically_derived]
            #[allow(unused_variables, clippy::undocumented_unsafe_blocks)]
            unsafe impl #impl_generics ::mc::Shared for #ident #ty_generics #where_clause {
                type Repr = #repr #ty_generics;
                const FINGERPRINT: u64 = #fingerprint;
                const SHALLOW_FINGERPRINT: u64 = #shallow;
                const HAS_POINTERS: bool = false #(#has_pointers)*;

                #[inline]
                fn to_repr(
                    &self,
                    w: &mut ::mc::__private::Writer<'_>,
                ) -> ::core::result::Result<Self::Repr, ::mc::__private::CopyError> {
                    #to_repr
                }

                #[inline]
                fn repr_to_repr(
                    src: &Self::Repr,
                    w: &mut ::mc::__private::Writer<'_>,
                ) -> ::core::result::Result<Self::Repr, ::mc::__private::CopyError> {
                    #repr_to_repr
                }

                #[inline]
                fn from_repr(src: &Self::Repr) -> Self {
                    #from_repr
                }

                #[inline]
                fn trace(src: &Self::Repr, t: &mut ::mc::__private::Tracer<'_>) {
                    #trace
                }

                unsafe fn validate(
                    src: *const Self::Repr,
                    v: &mut ::mc::__private::Validator<'_>,
                ) -> ::core::result::Result<(), ::mc::__private::Invalid> {
                    #validate
                }
            }
        }
    }

    /// `FINGERPRINT` (`deep`) or `SHALLOW_FINGERPRINT`: the kind and name of
    /// the type, then every variant name and field count, every field name
    /// and, for the deep one, every field type's fingerprint (for the
    /// shallow one, the field type as written, then the type arguments'
    /// fingerprints, so that pointer types can use it without recursing
    /// into recursive types).
    fn fingerprint(&self, deep: bool) -> TokenStream {
        let c = self.c;
        let name = self.name_str();
        let field_parts = |fields: &Fields<'_>| -> Vec<TokenStream> {
            fields
                .list
                .iter()
                .flat_map(|f| {
                    let fname = f.display_name();
                    let ty = &f.ty;
                    let ty_part = if deep {
                        quote_spanned!(f.original.ty.span()=> <#ty as ::mc::Shared>::FINGERPRINT)
                    } else {
                        // The type as written can name different types in
                        // different scopes (aliases): add its layout.
                        let written = f.original.ty.to_token_stream().to_string();
                        quote!(::mc::__private::fingerprint_combine(&[
                            ::mc::__private::fingerprint_str(#written),
                            ::core::mem::size_of::<<#ty as ::mc::Shared>::Repr>() as u64,
                            ::core::mem::align_of::<<#ty as ::mc::Shared>::Repr>() as u64,
                        ]))
                    };
                    [quote!(::mc::__private::fingerprint_str(#fname)), ty_part]
                })
                .collect()
        };
        let parts: Vec<TokenStream> = match &c.data {
            Data::Struct(fields) => {
                let mut parts = vec![
                    quote!(::mc::__private::fingerprint_str("struct")),
                    quote!(::mc::__private::fingerprint_str(#name)),
                ];
                parts.extend(field_parts(fields));
                parts
            }
            Data::Enum(variants) => {
                let mut parts = vec![
                    quote!(::mc::__private::fingerprint_str("enum")),
                    quote!(::mc::__private::fingerprint_str(#name)),
                ];
                for v in variants {
                    let vname = v.ident.to_string();
                    let n = Literal::u64_suffixed(v.fields.list.len() as u64);
                    parts.push(quote!(::mc::__private::fingerprint_str(#vname)));
                    parts.push(quote!(#n));
                    parts.extend(field_parts(&v.fields));
                }
                parts
            }
        };
        // The shallow fingerprint shows field types as written (`T`), so it
        // adds the type arguments' fingerprints: `Vec<Pair<u8>>` and
        // `Vec<Pair<u16>>` must differ. (No recursion: a type argument is
        // a smaller type than the type itself.)
        let type_args = self.generics.type_params().map(|p| {
            let t = &p.ident;
            quote!(<#t as ::mc::Shared>::FINGERPRINT)
        });
        let type_args: Vec<TokenStream> = if deep {
            Vec::new()
        } else {
            // Same-named types of different modules differ by their path.
            let mut v = vec![quote!(::mc::__private::fingerprint_str(
                ::core::module_path!()
            ))];
            v.extend(type_args);
            v
        };
        quote!(::mc::__private::fingerprint_combine(&[#(#parts,)* #(#type_args),*]))
    }

    fn struct_methods(&self, fields: &Fields<'_>) -> Methods {
        let ident = self.c.ident;
        let repr = &self.c.repr_ident;
        let list = &fields.list;
        let to = list.iter().map(|f| {
            let (m, ty) = (&f.member, &f.ty);
            quote_spanned!(f.original.ty.span()=> #m: <#ty as ::mc::Shared>::to_repr(&self.#m, w)?)
        });
        let rr = list.iter().map(|f| {
            let (m, ty) = (&f.member, &f.ty);
            quote_spanned!(f.original.ty.span()=> #m: <#ty as ::mc::Shared>::repr_to_repr(&src.#m, w)?)
        });
        let from = list.iter().map(|f| {
            let (m, ty) = (&f.member, &f.ty);
            quote_spanned!(f.original.ty.span()=> #m: <#ty as ::mc::Shared>::from_repr(&src.#m))
        });
        let trace = list.iter().map(|f| {
            let (m, ty) = (&f.member, &f.ty);
            quote_spanned!(f.original.ty.span()=> <#ty as ::mc::Shared>::trace(&src.#m, t);)
        });
        let validate = list.iter().map(|f| {
            let (m, ty) = (&f.member, &f.ty);
            // SAFETY: see the module docs ("struct `validate`").
            quote_spanned! {f.original.ty.span()=>
                unsafe {
                    <#ty as ::mc::Shared>::validate(::core::ptr::addr_of!((*src).#m), v)?
                };
            }
        });
        Methods {
            to_repr: quote!(::core::result::Result::Ok(#repr { #(#to,)* })),
            repr_to_repr: quote!(::core::result::Result::Ok(#repr { #(#rr,)* })),
            from_repr: quote!(#ident { #(#from,)* }),
            trace: quote!(#(#trace)*),
            validate: quote! {
                #(#validate)*
                ::core::result::Result::Ok(())
            },
        }
    }

    fn enum_methods(&self, variants: &[Variant<'_>]) -> Methods {
        let ident = self.c.ident;
        let repr = &self.c.repr_ident;
        let mut to = Vec::new();
        let mut rr = Vec::new();
        let mut from = Vec::new();
        let mut trace = Vec::new();
        let mut validate = Vec::new();
        let tag_ty = tag_type(variants.len());
        let (_, ty_generics, _) = self.generics.split_for_impl();
        for (i, v) in variants.iter().enumerate() {
            let vi = v.ident;
            let pat = pattern(&v.fields);
            // `name: <F as Shared>::method(binding[, w])[?]` for every field.
            let call = |method: &str, with_writer: bool| {
                let method = Ident::new(method, Span::call_site());
                let items = v.fields.list.iter().map(|f| {
                    let (m, ty, b) = (&f.member, &f.ty, &f.binding);
                    let span = f.original.ty.span();
                    if with_writer {
                        quote_spanned!(span=> #m: <#ty as ::mc::Shared>::#method(#b, w)?)
                    } else {
                        quote_spanned!(span=> #m: <#ty as ::mc::Shared>::#method(#b))
                    }
                });
                quote!(#(#items,)*)
            };
            let to_items = call("to_repr", true);
            to.push(quote!(#ident::#vi #pat => #repr::#vi { #to_items }));
            let rr_items = call("repr_to_repr", true);
            rr.push(quote!(#repr::#vi #pat => #repr::#vi { #rr_items }));
            let from_items = call("from_repr", false);
            from.push(quote!(#repr::#vi #pat => #ident::#vi { #from_items }));
            let traces = v.fields.list.iter().map(|f| {
                let (ty, b) = (&f.ty, &f.binding);
                quote_spanned!(f.original.ty.span()=> <#ty as ::mc::Shared>::trace(#b, t);)
            });
            trace.push(quote!(#repr::#vi #pat => { #(#traces)* }));

            let tag = match tag_ty.to_string().as_str() {
                "u8" => Literal::u8_suffixed(i as u8),
                _ => Literal::u16_suffixed(i as u16),
            };
            let vstruct = variant_struct_ident(i);
            let checks = v.fields.list.iter().enumerate().map(|(k, f)| {
                let ty = &f.ty;
                let fk = format_ident!("f{}", k);
                // SAFETY: see the module docs ("enum `validate`").
                quote_spanned! {f.original.ty.span()=>
                    let offset = ::core::mem::offset_of!(__mc_Layout #ty_generics, payload)
                        + ::core::mem::offset_of!(#vstruct #ty_generics, #fk);
                    unsafe {
                        <#ty as ::mc::Shared>::validate(
                            src.cast::<u8>().add(offset).cast::<<#ty as ::mc::Shared>::Repr>(),
                            v,
                        )?
                    };
                }
            });
            validate.push(quote!(#tag => { #(#checks)* }));
        }
        let name = self.name_str();
        Methods {
            to_repr: quote!(::core::result::Result::Ok(match self { #(#to,)* })),
            repr_to_repr: quote!(::core::result::Result::Ok(match src { #(#rr,)* })),
            from_repr: quote!(match src { #(#from,)* }),
            trace: quote!(match src { #(#trace,)* }),
            validate: quote! {
                // SAFETY: see the module docs ("enum `validate`").
                let tag = unsafe { ::core::ptr::read_unaligned(src.cast::<#tag_ty>()) };
                match tag {
                    #(#validate)*
                    _ => {
                        return ::core::result::Result::Err(::mc::__private::Invalid::BadTag {
                            ty: #name,
                            tag: <u32 as ::core::convert::From<#tag_ty>>::from(tag),
                        })
                    }
                }
                ::core::result::Result::Ok(())
            },
        }
    }

    /// For enums with data: the `repr(C)` model of the twin's layout
    /// (RFC 2195) that `validate` takes payload offsets from.
    fn enum_layout(&self) -> TokenStream {
        let Data::Enum(variants) = &self.c.data else {
            return TokenStream::new();
        };
        if variants.iter().all(|v| v.fields.list.is_empty()) {
            return TokenStream::new();
        }
        let generics = &self.generics;
        let (_, ty_generics, where_clause) = self.generics.split_for_impl();
        let type_params: Vec<&Ident> = self.generics.type_params().map(|p| &p.ident).collect();
        let marker = if type_params.is_empty() {
            TokenStream::new()
        } else {
            quote!(__mc_marker: ::core::marker::PhantomData<fn() -> (#(#type_params,)*)>,)
        };
        let tag_ty = tag_type(variants.len());
        let mut structs = Vec::new();
        let mut union_fields = Vec::new();
        for (i, v) in variants.iter().enumerate() {
            let vstruct = variant_struct_ident(i);
            let fields = v.fields.list.iter().enumerate().map(|(k, f)| {
                let ty = &f.ty;
                let fk = format_ident!("f{}", k);
                quote_spanned!(f.original.ty.span()=> #fk: <#ty as ::mc::Shared>::Repr)
            });
            structs.push(quote! {
                #[repr(C)]
                struct #vstruct #generics #where_clause { #(#fields,)* #marker }
            });
            let vfield = format_ident!("v{}", i);
            union_fields.push(quote!(#vfield: ::core::mem::ManuallyDrop<#vstruct #ty_generics>));
        }
        quote! {
            #(#structs)*
            #[repr(C)]
            union __mc_Payload #generics #where_clause { #(#union_fields,)* }
            #[repr(C)]
            struct __mc_Layout #generics #where_clause {
                tag: #tag_ty,
                payload: __mc_Payload #ty_generics,
            }
        }
    }

    // -----------------------------------------------------------------
    // 5. Pinning guards

    fn guards(&self) -> TokenStream {
        let repr = &self.c.repr_ident;
        let (impl_generics, ty_generics, where_clause) = self.generics.split_for_impl();
        let pin = &self.pin_lifetime;
        let pin_generics = self.generics_with(pin);
        let (pin_impl_generics, _, _) = pin_generics.split_for_impl();
        let user = self.user_predicates();
        let reprs = self.c.all_fields().into_iter().map(|f| {
            let ty = &f.ty;
            quote_spanned!(f.original.ty.span()=> <#ty as ::mc::Shared>::Repr)
        });
        quote! {
            // A user `impl Drop for SharedX` conflicts with this impl (the
            // blanket impl in `mc::__private` covers every `Drop` type).
            #[automatically_derived]
            impl #impl_generics ::mc::__private::MustNotImplDrop for #repr #ty_generics
                #where_clause {}

            // `Unpin` exactly when every field representation is; the
            // lifetime keeps the bound from being trivially decided, and a
            // user `impl Unpin for SharedX` conflicts with this impl.
            #[automatically_derived]
            impl #pin_impl_generics ::core::marker::Unpin for #repr #ty_generics
            where
                #user
                ::mc::__private::AlwaysUnpinIf<#pin, (#(#reprs,)*)>: ::core::marker::Unpin,
            {}
        }
    }

    // -----------------------------------------------------------------
    // 6. `project()`

    fn project_impl(&self) -> TokenStream {
        if !self.has_fields() {
            return TokenStream::new();
        }
        let c = self.c;
        let repr = &c.repr_ident;
        let mut_ident = self.mut_ident();
        let (impl_generics, ty_generics, where_clause) = self.generics.split_for_impl();
        let type_params = self.generics.type_params().map(|p| &p.ident);
        let mut_ty = quote!(#mut_ident<'_, #(#type_params),*>);
        let body = match &c.data {
            Data::Struct(fields) => {
                let items = fields.list.iter().map(|f| {
                    let m = &f.member;
                    quote!(#m: ::core::pin::Pin::new_unchecked(&mut this.#m))
                });
                quote! {
                    let this = ::core::pin::Pin::get_unchecked_mut(self);
                    #mut_ident { #(#items,)* }
                }
            }
            Data::Enum(variants) => {
                let arms = variants.iter().map(|v| {
                    let vi = v.ident;
                    let pat = pattern(&v.fields);
                    let items = v.fields.list.iter().map(|f| {
                        let (m, b) = (&f.member, &f.binding);
                        quote!(#m: ::core::pin::Pin::new_unchecked(#b))
                    });
                    quote!(#repr::#vi #pat => #mut_ident::#vi { #(#items,)* })
                });
                quote! {
                    match ::core::pin::Pin::get_unchecked_mut(self) {
                        #(#arms,)*
                    }
                }
            }
        };
        let doc = format!(
            "Projects a pinned `{repr}` onto its fields, each pinned (for modification in \
             place)."
        );
        quote! {
            #[automatically_derived]
            #[allow(clippy::undocumented_unsafe_blocks)]
            impl #impl_generics #repr #ty_generics #where_clause {
                #[doc = #doc]
                #[inline]
                pub fn project(self: ::core::pin::Pin<&mut Self>) -> #mut_ty {
                    // SAFETY: see the module docs ("`project()`").
                    unsafe { #body }
                }
            }
        }
    }

    // -----------------------------------------------------------------
    // 7. `Debug`

    fn debug_impl(&self) -> TokenStream {
        let c = self.c;
        let repr = &c.repr_ident;
        let name = self.name_str();
        let (impl_generics, ty_generics, _) = self.generics.split_for_impl();
        let user = self.user_predicates();
        // Bounds on the type parameters' representations, as `derive(Debug)`
        // bounds type parameters: bounds on field types would make the
        // trait solver recurse forever on recursive types.
        let bounds = self.generics.type_params().map(|p| {
            let t = &p.ident;
            quote!(<#t as ::mc::Shared>::Repr: ::core::fmt::Debug)
        });
        let body = match &c.data {
            Data::Struct(fields) => {
                let accesses: Vec<TokenStream> = fields
                    .list
                    .iter()
                    .map(|f| {
                        let m = &f.member;
                        quote!(&self.#m)
                    })
                    .collect();
                debug_fields(&name, fields, &accesses)
            }
            Data::Enum(variants) => {
                let arms = variants.iter().map(|v| {
                    let vi = v.ident;
                    let pat = pattern(&v.fields);
                    let accesses: Vec<TokenStream> = v
                        .fields
                        .list
                        .iter()
                        .map(|f| {
                            let b = &f.binding;
                            quote!(#b)
                        })
                        .collect();
                    let body = debug_fields(&vi.to_string(), &v.fields, &accesses);
                    quote!(#repr::#vi #pat => { #body })
                });
                quote!(match self { #(#arms,)* })
            }
        };
        quote! {
            #[automatically_derived]
            impl #impl_generics ::core::fmt::Debug for #repr #ty_generics
            where
                #user
                #(#bounds,)*
            {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    #body
                }
            }
        }
    }
}

/// The span of the last token of the field's type (with the span of the
/// first token, tokens can cover the whole type: stable proc macros cannot
/// join spans).
fn end_span(f: &Field<'_>) -> Span {
    let last = f.original.ty.to_token_stream().into_iter().last();
    last.map_or_else(|| f.original.ty.span(), |t| t.span())
}

/// `<Ty as ::mc::Shared>::Repr`, spanned on the whole field type.
fn repr_of(f: &Field<'_>) -> TokenStream {
    let ty = &f.ty;
    let open = quote_spanned!(f.original.ty.span()=> <);
    let rest = quote_spanned!(end_span(f)=> as ::mc::Shared>::Repr);
    quote!(#open #ty #rest)
}

/// `u8`, or `u16` for enums with more than 256 variants.
fn tag_type(variants: usize) -> TokenStream {
    if variants <= 256 {
        quote!(u8)
    } else {
        quote!(u16)
    }
}

fn variant_struct_ident(i: usize) -> Ident {
    format_ident!("__mc_Variant{}", i)
}

/// `{ name: __mc_f0, 1: __mc_f1 }`: a pattern binding every field, valid
/// for every variant style.
fn pattern(fields: &Fields<'_>) -> TokenStream {
    let items = fields.list.iter().map(|f| {
        let (m, b) = (&f.member, &f.binding);
        quote!(#m: #b)
    });
    quote!({ #(#items),* })
}

/// The twin's fields: `{ vis name: Repr<T>, .. }` or `(vis Repr<T>, ..)`.
fn fields_def(fields: &Fields<'_>, with_vis: bool) -> TokenStream {
    let items = fields.list.iter().map(|f| {
        let docs = docs(&f.original.attrs);
        let vis = if with_vis {
            f.vis.to_token_stream()
        } else {
            TokenStream::new()
        };
        let repr = repr_of(f);
        match &f.original.ident {
            Some(name) => quote!(#(#docs)* #vis #name: #repr),
            None => quote!(#(#docs)* #vis #repr),
        }
    });
    match fields.style {
        Style::Named => quote!({ #(#items,)* }),
        Style::Tuple => quote!(( #(#items,)* )),
        Style::Unit => TokenStream::new(),
    }
}

/// The projection's fields: `Pin<&'a mut Repr<T>>` per field.
fn projection_fields_def(fields: &Fields<'_>, lt: &Lifetime, with_vis: bool) -> TokenStream {
    let items = fields.list.iter().map(|f: &Field<'_>| {
        let ty = &f.ty;
        let vis = if with_vis {
            f.vis.to_token_stream()
        } else {
            TokenStream::new()
        };
        let pinned = quote_spanned! {f.original.ty.span()=>
            ::core::pin::Pin<&#lt mut <#ty as ::mc::Shared>::Repr>
        };
        match &f.original.ident {
            Some(name) => quote!(#vis #name: #pinned),
            None => quote!(#vis #pinned),
        }
    });
    match fields.style {
        Style::Named => quote!({ #(#items,)* }),
        Style::Tuple => quote!(( #(#items,)* )),
        Style::Unit => TokenStream::new(),
    }
}

/// `f.debug_struct("Name").field("x", x).finish()` and the like.
fn debug_fields(name: &str, fields: &Fields<'_>, accesses: &[TokenStream]) -> TokenStream {
    match fields.style {
        Style::Named => {
            let names = fields.list.iter().map(Field::display_name);
            quote!(f.debug_struct(#name) #(.field(#names, #accesses))* .finish())
        }
        Style::Tuple => quote!(f.debug_tuple(#name) #(.field(#accesses))* .finish()),
        Style::Unit => quote!(f.write_str(#name)),
    }
}

/// The bodies of the `Shared` methods that depend on the type's shape.
struct Methods {
    to_repr: TokenStream,
    repr_to_repr: TokenStream,
    from_repr: TokenStream,
    trace: TokenStream,
    validate: TokenStream,
}

/// What follows a struct's name: its generics, where clause and fields in
/// the order that `style` asks for.
fn struct_decl(
    style: Style,
    generics: &Generics,
    where_clause: &Option<WhereClause>,
    body: TokenStream,
) -> TokenStream {
    match style {
        Style::Named => quote!(#generics #where_clause #body),
        Style::Tuple => quote!(#generics #body #where_clause;),
        Style::Unit => quote!(#generics #where_clause;),
    }
}
