//! `#[distlab_tests::test]`: a suite test that runs natively under `cargo test` and in
//! headless Chrome under `wasm-pack test`.
//!
//! Why not `#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]` on a plain `#[test]`:
//! wasm-bindgen-test runs synchronous tests back to back in one task, so a whole suite
//! holds the page's thread, and chromedriver gives up on a renderer that has not answered
//! for 30 s ("Timed out receiving message from renderer"). In the browser this attribute
//! makes the test `async` and has it wait for a `setTimeout` before its body runs, so the
//! page answers the driver between every two tests and only a single test's time counts.
//!
//! `#[distlab_tests::test(each = lab_ids())]` on `fn name(id: &str)` runs the body once
//! per item of the expression, and in the browser yields before each: a test over every
//! lab then holds the page for one lab's time, however many labs there are.

use proc_macro::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, FnArg, ItemFn, ReturnType, Token, parse_macro_input, spanned::Spanned};

/// The attribute's arguments: nothing, or `each = <expression>`.
struct Args {
    each: Option<Expr>,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(Args { each: None });
        }
        let key: syn::Ident = input.parse()?;
        if key != "each" {
            return Err(syn::Error::new(
                key.span(),
                "expected `each = <expression>`",
            ));
        }
        input.parse::<Token![=]>()?;
        let each = input.parse()?;
        Ok(Args { each: Some(each) })
    }
}

#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as Args);
    let function = parse_macro_input!(item as ItemFn);
    match expand(args, function) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(args: Args, function: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    if function.sig.asyncness.is_some() {
        return Err(syn::Error::new(
            function.sig.span(),
            "#[distlab_tests::test] is for a synchronous test",
        ));
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let name = &sig.ident;
    let output = &sig.output;
    let Some(each) = args.each else {
        if !sig.inputs.is_empty() {
            return Err(syn::Error::new(
                sig.inputs.span(),
                "a test without `each = …` takes no arguments",
            ));
        }
        return Ok(quote! {
            #[cfg(not(target_arch = "wasm32"))]
            #[test]
            #(#attrs)*
            #vis #sig #block

            #[cfg(target_arch = "wasm32")]
            #[::wasm_bindgen_test::wasm_bindgen_test]
            #(#attrs)*
            #vis async fn #name() #output {
                ::distlab_tests::yield_to_browser().await;
                let body = move || #output #block;
                body()
            }
        });
    };
    let input = match (sig.inputs.len(), sig.inputs.first()) {
        (1, Some(FnArg::Typed(input))) => input,
        _ => {
            return Err(syn::Error::new(
                sig.inputs.span(),
                "a test with `each = …` takes one argument, the item",
            ));
        }
    };
    if !matches!(output, ReturnType::Default) {
        return Err(syn::Error::new(
            output.span(),
            "a test with `each = …` returns nothing",
        ));
    }
    let case = quote! { fn case(#input) #block };
    Ok(quote! {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        #(#attrs)*
        #vis fn #name() {
            #case
            for item in #each {
                case(item);
            }
        }

        #[cfg(target_arch = "wasm32")]
        #[::wasm_bindgen_test::wasm_bindgen_test]
        #(#attrs)*
        #vis async fn #name() {
            #case
            for item in #each {
                ::distlab_tests::yield_to_browser().await;
                case(item);
            }
        }
    })
}
