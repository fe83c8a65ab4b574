//! `#[process]`: turns `fn name(arg: A) -> R` into a process definition.
//!
//! Parse → validate (every error, with its span) → generate. The original
//! item is always re-emitted, followed by the generated items or by the
//! errors as `compile_error!`, so IDEs keep seeing the function.
//!
//! For `fn name(arg: A) -> R` it generates, next to the untouched `fn`:
//!
//! - `mod name` (a module lives in the type namespace, so it does not clash
//!   with the `fn`) holding the marker type `name::Definition`, whose
//!   `mc::processes::Definition` impl (inside `const _: () = { … }`, in the
//!   item's own scope, so the user's types resolve as written) has a
//!   `static` `DefinitionInfo` whose address the start requests carry;
//! - in `mod name`: `start`, `start_with`, `join`, `join_outcome`,
//!   `join_timeout`, `try_join`, `release_join_point` and the typed `Pid`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Item, ItemFn, ReturnType, Type};

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(i) => i,
        Err(e) => return with_errors(item, vec![e]),
    };
    let mut errors = Vec::new();
    let mut krate: Option<syn::Path> = None;
    if !attr.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") && krate.is_none() {
                krate = Some(crate::krate::parse_value(&meta)?);
                Ok(())
            } else {
                Err(meta.error(
                    "`#[mc::process]` takes one option, `crate = \"path\"` (where the `mc` \
                     crate is)",
                ))
            }
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, attr) {
            errors.push(e);
        }
    }
    let f = match &parsed {
        Item::Fn(f) => f,
        Item::Static(syn::ItemStatic { expr, .. }) | Item::Const(syn::ItemConst { expr, .. })
            if matches!(**expr, syn::Expr::Closure(_)) =>
        {
            errors.push(syn::Error::new_spanned(
                expr,
                "a closure cannot be a process: a process runs in a fresh copy of the master, \
                 where state a closure captured does not exist; write a `fn name(arg: A) -> R` \
                 and pass what it needs in its argument",
            ));
            return with_errors(item, errors);
        }
        other => {
            errors.push(syn::Error::new(
                item_span(other),
                "`#[mc::process]` applies to a function `fn name(arg: A) -> R`",
            ));
            return with_errors(item, errors);
        }
    };
    let arg_ty = validate(f, &mut errors);
    if !errors.is_empty() {
        return with_errors(item, errors);
    }
    let Some(arg_ty) = arg_ty else {
        return with_errors(
            item,
            vec![syn::Error::new(Span::call_site(), "no argument")],
        );
    };
    let generated = crate::krate::rebase(generate(f, &arg_ty), krate.as_ref());
    let mut out = item;
    out.extend(generated);
    out
}

fn item_span(item: &Item) -> Span {
    let tokens = quote!(#item);
    tokens
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

fn with_errors(mut item: TokenStream, errors: Vec<syn::Error>) -> TokenStream {
    for e in errors {
        item.extend(e.into_compile_error());
    }
    item
}

/// Checks the signature; returns the argument type.
fn validate(f: &ItemFn, errors: &mut Vec<syn::Error>) -> Option<Type> {
    let sig = &f.sig;
    if let Some(a) = &sig.asyncness {
        errors.push(syn::Error::new_spanned(
            a,
            "an `async fn` cannot be a process: a process body runs to completion in its own \
             process; write a plain `fn` (and run an async runtime inside it if needed)",
        ));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            u,
            "an `unsafe fn` cannot be a process: nobody could uphold its safety contract when the \
             master starts it",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a process cannot have an `extern` ABI",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a process cannot be generic: a start request names one compiled function; write a \
             non-generic `fn` for each type you need",
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new_spanned(v, "a process cannot be variadic"));
    }
    let mut arg_ty = None;
    for (i, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(r) => errors.push(syn::Error::new_spanned(
                r,
                "a method cannot be a process: write a free `fn name(arg: A) -> R`",
            )),
            FnArg::Typed(t) if i == 0 => {
                if let Some(r) = find_reference(&t.ty) {
                    errors.push(syn::Error::new_spanned(
                        r,
                        "the argument of a process must be owned: a reference cannot reach \
                         another process; use an owned type (`String`, `Vec<T>`, ...)",
                    ));
                } else if let Type::ImplTrait(_) = &*t.ty {
                    errors.push(syn::Error::new_spanned(
                        &t.ty,
                        "the argument of a process needs a concrete type, not `impl Trait`",
                    ));
                } else {
                    arg_ty = Some((*t.ty).clone());
                }
            }
            FnArg::Typed(t) => errors.push(syn::Error::new_spanned(
                t,
                "a process takes exactly one argument; pass several values as a tuple: \
                 `fn name((a, b): (A, B)) -> R`",
            )),
        }
    }
    if sig.inputs.is_empty() {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            "a process takes exactly one argument; use `_: ()` when it needs none",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Type::ImplTrait(_) = &**ty {
            errors.push(syn::Error::new_spanned(
                ty,
                "the result of a process needs a concrete type, not `impl Trait`",
            ));
        } else if let Some(r) = find_reference(ty) {
            errors.push(syn::Error::new_spanned(
                r,
                "the result of a process must be owned: a reference cannot leave the process; \
                 use an owned type (`String`, `Vec<T>`, ...)",
            ));
        }
    }
    arg_ty
}

/// The first reference type anywhere inside `ty` (a tuple element, an array
/// or slice element, a generic argument such as `Vec<&str>`).
fn find_reference(ty: &Type) -> Option<&syn::TypeReference> {
    match ty {
        Type::Reference(r) => Some(r),
        Type::Tuple(t) => t.elems.iter().find_map(find_reference),
        Type::Array(a) => find_reference(&a.elem),
        Type::Slice(s) => find_reference(&s.elem),
        Type::Paren(p) => find_reference(&p.elem),
        Type::Group(g) => find_reference(&g.elem),
        Type::Path(p) => {
            let in_qself = p.qself.as_ref().and_then(|q| find_reference(&q.ty));
            in_qself.or_else(|| {
                p.path.segments.iter().find_map(|seg| match &seg.arguments {
                    syn::PathArguments::AngleBracketed(args) => {
                        args.args.iter().find_map(|a| match a {
                            syn::GenericArgument::Type(t) => find_reference(t),
                            _ => None,
                        })
                    }
                    _ => None,
                })
            })
        }
        _ => None,
    }
}

fn generate(f: &ItemFn, arg_ty: &Type) -> TokenStream {
    let vis = &f.vis;
    let inner = inner_visibility(vis);
    let name = &f.sig.ident;
    let out_ty = match &f.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let out_span = match &f.sig.output {
        ReturnType::Default => f.sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let name_str = name.to_string();
    let arg_assoc = quote_spanned! {arg_ty.span()=> type Arg = #arg_ty; };
    let out_assoc = quote_spanned! {out_span=> type Output = #out_ty; };
    let mod_doc = format!(
        "The process definition of [`{name_str}`](fn@{name_str}): start it with \
         [`start`]({name_str}::start), join it with [`join`]({name_str}::join)."
    );
    quote! {
        const _: () = {
            impl ::mc::processes::Definition for #name::Definition {
                #arg_assoc
                #out_assoc
                const NAME: &'static str =
                    ::core::concat!(::core::module_path!(), "::", #name_str);
                fn run(arg: #arg_ty) -> #out_ty {
                    #name(arg)
                }
                fn info() -> &'static ::mc::processes::DefinitionInfo {
                    static INFO: ::mc::processes::DefinitionInfo =
                        ::mc::processes::DefinitionInfo::of::<#name::Definition>();
                    &INFO
                }
            }
        };

        #[doc = #mod_doc]
        #vis mod #name {
            /// The definition's marker type (implements
            /// `mc::processes::Definition`).
            #[derive(Debug, Clone, Copy)]
            #inner struct Definition;
            /// The argument type.
            #inner type Arg = <Definition as ::mc::processes::Definition>::Arg;
            /// The result type.
            #inner type Output = <Definition as ::mc::processes::Definition>::Output;
            /// The id of a process of this definition.
            #inner type Pid = ::mc::processes::Pid<Definition>;

            /// Starts a process running this definition with `arg`; it
            /// inherits every resource the caller uses.
            #inner fn start(arg: Arg) -> ::core::result::Result<Pid, ::mc::ProcessError> {
                ::mc::processes::start::<Definition>(arg)
            }

            /// Starts a process running this definition with `arg` and
            /// `options`.
            #inner fn start_with(
                arg: Arg,
                options: ::mc::StartOptions,
            ) -> ::core::result::Result<Pid, ::mc::ProcessError> {
                ::mc::processes::start_with::<Definition>(arg, options)
            }

            /// Waits for the process and returns its result; a process that
            /// ended without returning is a `JoinError` that says how.
            /// Only the first join gets the result.
            #inner fn join(pid: Pid) -> ::core::result::Result<Output, ::mc::JoinError> {
                ::mc::processes::join::<Definition>(pid)
            }

            /// Waits for the process; how it ended, with its result.
            #inner fn join_outcome(
                pid: Pid,
            ) -> ::core::result::Result<::mc::Outcome<Output>, ::mc::ProcessError> {
                ::mc::processes::join_outcome::<Definition>(pid)
            }

            /// Like `join`, but gives up after `timeout` (with
            /// `JoinError::Join(ProcessError::Timeout)`).
            #inner fn join_timeout(
                pid: Pid,
                timeout: ::core::time::Duration,
            ) -> ::core::result::Result<Output, ::mc::JoinError> {
                ::mc::processes::join_timeout::<Definition>(pid, timeout)
            }

            /// Joins without waiting: `Ok(None)` while the process runs.
            #inner fn try_join(
                pid: Pid,
            ) -> ::core::result::Result<::core::option::Option<Output>, ::mc::JoinError> {
                ::mc::processes::try_join::<Definition>(pid)
            }

            /// Results of this definition are no longer kept.
            #inner fn release_join_point() -> ::core::result::Result<(), ::mc::ProcessError> {
                ::mc::processes::release_join_point::<Definition>()
            }
        }
    }
}

/// The visibility, inside `mod name`, that makes an item exactly as visible
/// as the function `name` is outside it.
fn inner_visibility(vis: &syn::Visibility) -> TokenStream {
    match vis {
        syn::Visibility::Public(_) => quote!(pub),
        syn::Visibility::Inherited => quote!(pub(super)),
        syn::Visibility::Restricted(r) => {
            let path = &r.path;
            let first = path.segments.first().map(|s| s.ident.to_string());
            match first.as_deref() {
                Some("crate") => quote!(pub(in #path)),
                Some("self") if path.segments.len() == 1 => quote!(pub(super)),
                _ => quote!(pub(in super::#path)),
            }
        }
    }
}
