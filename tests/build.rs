//! Embeds Porcupine's test histories (tests/data/porcupine) into the suites with
//! `include_str!`, so the same suite runs natively and in a browser, where there is no
//! file system. Writes `$OUT_DIR/porcupine_data.rs`: `PORCUPINE_FILES`, every file as
//! (path relative to data/porcupine, contents), sorted by path.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let data = manifest.join("data/porcupine");
    println!("cargo::rerun-if-changed={}", data.display());
    let mut files = Vec::new();
    files_under(&data, &mut files);
    files.sort();
    let mut code = String::from(
        "/// Every file of tests/data/porcupine: (path relative to it, contents), sorted.\n\
         pub const PORCUPINE_FILES: &[(&str, &str)] = &[\n",
    );
    for path in &files {
        let relative = path
            .strip_prefix(&data)
            .expect("under the data folder")
            .to_string_lossy()
            .replace('\\', "/");
        writeln!(
            code,
            "    ({relative:?}, include_str!({:?})),",
            path.to_string_lossy()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("porcupine_data.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
