//! Allocating a primitive's tables without aborting. A sketch or a cache sized from user
//! input may ask for more memory than there is (a wasm32 page has at most 4 GiB, and a
//! browser tab usually less): `vec![0; n]` then aborts the process — in the browser, the
//! whole module — where the caller should get an error naming the field it can fix.

use crate::error::{DistlabError, Result};

/// A vector of `len` copies of `value`, or an error under `field` if the memory cannot
/// be had.
pub fn filled<T: Clone>(len: usize, value: T, field: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        DistlabError::field(
            field,
            format!(
                "needs {} bytes, more memory than could be allocated",
                len.saturating_mul(size_of::<T>())
            ),
        )
    })?;
    v.resize(len, value);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_much_is_an_error_naming_the_field() {
        let e = filled(usize::MAX / 2, 0u64, "bits")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bits"), "{e}");
        assert!(e.contains("more memory"), "{e}");
        assert_eq!(filled(3, 7u8, "bits").unwrap(), vec![7, 7, 7]);
    }
}
