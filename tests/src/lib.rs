//! Shared helpers for the suites in `tests/tests/`.

/// Marks a suite test that runs natively and in headless Chrome; see the macro crate for
/// why the browser side yields first.
pub use distlab_test_macros::test;

pub mod soak;

/// Lets the browser page run its event loop (and answer chromedriver) before the caller
/// goes on: a `setTimeout(0)` is a new task, where a resolved promise would be a microtask
/// of the same one.
#[cfg(target_arch = "wasm32")]
pub async fn yield_to_browser() {
    use wasm_bindgen::{JsCast, JsValue};
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let set_timeout = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        let scheduled = set_timeout
            .is_some_and(|f| f.call2(&JsValue::NULL, &resolve, &JsValue::from(0)).is_ok());
        if !scheduled {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
