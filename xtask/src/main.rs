//! The project's two commands: `cargo xtask test` and `cargo xtask serve`.
//! Each installs what it needs and skips what is already present.

use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("serve") => serve(),
        _ => {
            eprintln!("usage: cargo xtask <test|serve>");
            eprintln!("  test   format check, clippy (-D warnings), every test suite");
            eprintln!("  serve  build the page and serve it on http://127.0.0.1:8080");
            Err("no command given".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

/// Runs one step, printing what it is and how long it took; fails on a non-zero exit.
fn run(label: &str, program: &str, args: &[&str]) -> Result {
    eprintln!("==> {label}: {program} {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("{label}: cannot start `{program}`: {e}"))?;
    eprintln!(
        "<== {label}: {status} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("{label} failed ({status})"))
    }
}

fn test() -> Result {
    run("format", "cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "clippy",
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run(
        "native tests",
        "cargo",
        &["test", "--workspace", "--release"],
    )?;
    Ok(())
}

fn serve() -> Result {
    Err(
        "the page is not built yet: it arrives with the web/ issue. \
         Until then, `cargo xtask test` runs everything there is."
            .into(),
    )
}
