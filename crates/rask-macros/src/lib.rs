//! `#[rask::delayed]`: turns a function into one that builds a task instead of running.
//!
//! ```ignore
//! #[rask::delayed]
//! fn inc(x: i64) -> i64 { x + 1 }
//!
//! let a = inc(1);          // Delayed<i64>: nothing ran
//! let b = inc(a.clone());  // arguments may be plain values or Delayeds
//! assert_eq!(b.compute()?, 3);
//! ```
//!
//! The attribute rewrites `fn f(a: A, b: &B) -> R` into
//! `fn f(a: impl IntoArg<A>, b: impl IntoArg<B>) -> Delayed<R>`. The original body runs
//! inside the task. A return type `Result<T, E>` gives `Delayed<T>`, and an `Err` fails the
//! task (the error names the task's key). Reference parameters borrow the input value instead
//! of cloning it; `&str` reads a `String` and `&[T]` a `Vec<T>`.
//!
//! Options: `#[delayed(pure)]` gives deterministic keys (equal calls share one task), as
//! Dask's `delayed(pure=True)`; `#[delayed(name = "load")]` sets the key prefix.
//!
//! # Crossing the wire
//!
//! The op is named by the function's path (`module_path!()::ident`), and the expansion
//! registers, inside the function's body, a decoder under that name (through `inventory`)
//! holding the same function pointer, so a worker that runs the same binary rebuilds the call
//! from `(name, params)`; the params are the literal arguments in their portable form
//! (`rask_graph::Value::encode`) and the positions of the dependencies. It also registers the
//! return type and each parameter's stored type with the value codec, so results and literal
//! arguments decode on the other side. A type without `Data::spill` still compiles: sending
//! a value of it fails with an error naming the type. Two functions of one name nested in
//! different functions of one module share an op name; decoding such a name is refused.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, Pat, PathArguments, ReturnType, Token, Type};

struct Options {
    pure: bool,
    name: Option<String>,
}

impl Parse for Options {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut opts = Options {
            pure: false,
            name: None,
        };
        let items = Punctuated::<syn::Meta, Token![,]>::parse_terminated(input)?;
        for item in items {
            match &item {
                syn::Meta::Path(p) if p.is_ident("pure") => opts.pure = true,
                syn::Meta::NameValue(nv) if nv.path.is_ident("pure") => {
                    opts.pure = parse_bool(&nv.value)?;
                }
                syn::Meta::NameValue(nv) if nv.path.is_ident("name") => match &nv.value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => opts.name = Some(s.value()),
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "`name` takes a string literal",
                        ));
                    }
                },
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "unknown option: expected `pure`, `pure = bool` or `name = \"...\"`",
                    ));
                }
            }
        }
        Ok(opts)
    }
}

fn parse_bool(e: &syn::Expr) -> syn::Result<bool> {
    match e {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Bool(b),
            ..
        }) => Ok(b.value),
        other => Err(syn::Error::new(other.span(), "expected `true` or `false`")),
    }
}

/// See the crate docs.
#[proc_macro_attribute]
pub fn delayed(attr: TokenStream, item: TokenStream) -> TokenStream {
    let opts = syn::parse_macro_input!(attr as Options);
    let func = syn::parse_macro_input!(item as ItemFn);
    match expand(opts, func) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// How a parameter reaches the body.
enum ParamKind {
    /// `x: T`: the value is cloned out of its input (moved when it is the last reference).
    Owned(Type),
    /// `x: &T` (with `&str` read from a `String`, `&[T]` from a `Vec<T>`): borrowed.
    Borrowed { stored: Type },
}

fn expand(opts: Options, func: ItemFn) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new(
            a.span(),
            "#[delayed] functions cannot be async",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "#[delayed] functions cannot be generic: each task needs one concrete op",
        ));
    }
    let vis = &func.vis;
    let attrs = &func.attrs;
    let ident = &sig.ident;
    let label = opts.name.clone().unwrap_or_else(|| ident.to_string());
    let pure = opts.pure;

    let mut names = Vec::new();
    let mut kinds = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                return Err(syn::Error::new(
                    r.span(),
                    "#[delayed] cannot be used on methods",
                ));
            }
            FnArg::Typed(pt) => {
                let Pat::Ident(pi) = &*pt.pat else {
                    return Err(syn::Error::new(pt.pat.span(), "use a plain parameter name"));
                };
                names.push(pi.ident.clone());
                kinds.push(param_kind(&pt.ty)?);
            }
        }
    }

    let (out_ty, fallible) = match &sig.output {
        ReturnType::Default => (syn::parse_quote!(()), false),
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(ok) => (ok, true),
            None => ((**ty).clone(), false),
        },
    };

    let body_inputs = &sig.inputs;
    let body_output = &sig.output;
    let block = &func.block;

    let outer_params = names.iter().zip(&kinds).map(|(n, k)| {
        let stored = match k {
            ParamKind::Owned(t) => t,
            ParamKind::Borrowed { stored } => stored,
        };
        quote_spanned!(n.span()=> #n: impl ::rask::IntoArg<#stored>)
    });

    let extract = names.iter().zip(&kinds).enumerate().map(|(i, (n, k))| {
        let pname = n.to_string();
        match k {
            ParamKind::Owned(t) => {
                quote!(let #n: #t = ::rask::__private::arg_owned::<#t>(&__args[#i], #pname)?;)
            }
            ParamKind::Borrowed { stored } => {
                quote!(let #n: &#stored = ::rask::__private::arg_ref::<#stored>(&__args[#i], #pname)?;)
            }
        }
    });

    // Pure keys hash the op name, which nested functions of one name in one module share;
    // where the function is defined tells them apart.
    let salt = if pure {
        quote!(__call.salt(concat!(file!(), ":", line!(), ":", column!()));)
    } else {
        quote!()
    };

    let body_ident = format_ident!("__rask_body_{}", ident);
    let call_result = if fallible {
        quote!(#body_ident(#(#names),*).map_err(::rask::RaskError::external)?)
    } else {
        quote!(#body_ident(#(#names),*))
    };

    // The types whose values cross the wire for this function: its result and what each
    // parameter stores (a literal argument travels as one). Registering a type without a
    // spill implementation compiles; encoding a value of it fails, naming the type.
    let value_types = std::iter::once(&out_ty).chain(kinds.iter().map(|k| match k {
        ParamKind::Owned(t) => t,
        ParamKind::Borrowed { stored } => stored,
    }));

    Ok(quote! {
        #(#attrs)*
        #[allow(clippy::too_many_arguments)]
        #vis fn #ident(#(#outer_params),*) -> ::rask::Delayed<#out_ty> {
            #[allow(clippy::too_many_arguments, clippy::ptr_arg)]
            fn #body_ident(#body_inputs) #body_output #block

            fn __rask_call(__args: &[::rask::Value]) -> ::rask::Result<::rask::Value> {
                #(#extract)*
                let __out: #out_ty = #call_result;
                Ok(::rask::Value::new(__out))
            }

            // A worker running this binary rebuilds the call from its name: the decoder
            // holds the same function pointer.
            fn __rask_decode(
                __params: &[u8],
                _: &::rask::__private::OpRegistry,
            ) -> ::rask::Result<::std::sync::Arc<dyn ::rask::__private::Op>> {
                ::rask::__private::decode_call(
                    concat!(module_path!(), "::", stringify!(#ident)),
                    #label,
                    __rask_call,
                    __params,
                )
            }
            ::rask::__private::register_op!(
                concat!(module_path!(), "::", stringify!(#ident)),
                __rask_decode
            );
            #( ::rask::__private::register_value!(#value_types); )*

            let mut __call = ::rask::__private::Call::new(
                concat!(module_path!(), "::", stringify!(#ident)),
                #label,
                ::rask::__private::Func::Ptr(__rask_call),
                #pure,
            );
            #salt
            #( __call.arg(#names); )*
            __call.finish()
        }
    })
}

fn param_kind(ty: &Type) -> syn::Result<ParamKind> {
    match ty {
        Type::Reference(r) => {
            if let Some(m) = &r.mutability {
                return Err(syn::Error::new(
                    m.span(),
                    "task inputs are shared: use `&T`, not `&mut T`",
                ));
            }
            let stored: Type = match &*r.elem {
                Type::Path(p) if p.path.is_ident("str") => syn::parse_quote!(::std::string::String),
                Type::Slice(s) => {
                    let elem = &s.elem;
                    syn::parse_quote!(::std::vec::Vec<#elem>)
                }
                other => other.clone(),
            };
            Ok(ParamKind::Borrowed { stored })
        }
        Type::ImplTrait(t) => Err(syn::Error::new(t.span(), "use a concrete parameter type")),
        other => Ok(ParamKind::Owned(other.clone())),
    }
}

/// `Result<T, ..>` (any path ending in `Result` with a first type argument) gives `T`.
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    })
}
