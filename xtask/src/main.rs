//! The project's two commands: `cargo xtask test` and `cargo xtask serve`.
//! Each installs what it needs (when it can) and skips what is already present.
//! Besides them: `cargo xtask soak <id>` (the long fault soak of a protocol) and
//! `cargo xtask catalog` (every catalog id, implemented or planned).

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

mod catalog;
mod redis;
mod soak;
mod web;

/// Must equal the `wasm-bindgen` version pinned in wasm/Cargo.toml.
const WASM_BINDGEN_VERSION: &str = "0.2.130";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("serve") => serve(),
        Some("e2e") => web::e2e(),
        Some("soak") => soak::soak(&args[1..]),
        Some("catalog") => catalog::catalog(),
        _ => {
            eprintln!("usage: cargo xtask <test|serve|soak|catalog>");
            eprintln!("  test     format check, clippy (-D warnings), native tests, browser tests");
            eprintln!("  serve    build the page and serve it on http://127.0.0.1:8080");
            eprintln!("  e2e      build the page and run only the browser e2e (part of test)");
            eprintln!(
                "  soak     <{}> --seeds N: the long fault soak of a protocol, with progress and summary",
                distlab_core::soaks::IDS.join("|")
            );
            eprintln!(
                "  catalog  every catalog id, one per line: <id> <implemented|planned> <title>"
            );
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

fn command(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// Runs one step, printing what it is and how long it took; fails on a non-zero exit.
fn run(label: &str, program: &str, args: &[&str]) -> Result {
    run_step(label, &mut command(program, args))
}

/// Runs `cmd` as one step (see [`run`]), naming its folder when it has one.
fn run_step(label: &str, cmd: &mut Command) -> Result {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    let dir = cmd
        .get_current_dir()
        .map(|d| format!("(in {}) ", d.display()))
        .unwrap_or_default();
    eprintln!("==> {label}: {dir}{program} {}", args.join(" "));
    let started = Instant::now();
    let status = cmd
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

/// Runs a test command, streaming its output, and fails unless it passed at least one
/// test: a browser runner that finds nothing to run still exits 0. Returns how many passed.
fn run_tests(label: &str, program: &str, args: &[&str]) -> Result<u64> {
    eprintln!("==> {label}: {program} {}", args.join(" "));
    let started = Instant::now();
    let mut child = command(program, args)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{label}: cannot start `{program}`: {e}"))?;
    let mut passed = 0u64;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out)
            .lines()
            .map_while(std::result::Result::ok)
        {
            println!("{line}");
            if let Some(rest) = line.trim().strip_prefix("test result: ok. ")
                && let Some(n) = rest.split(' ').next().and_then(|n| n.parse::<u64>().ok())
            {
                passed += n;
            }
        }
    }
    let status = child.wait().map_err(|e| format!("{label}: {e}"))?;
    eprintln!(
        "<== {label}: {status}, {passed} passed, after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if !status.success() {
        return Err(format!("{label} failed ({status})"));
    }
    if passed == 0 {
        return Err(format!("{label} ran no test"));
    }
    Ok(passed)
}

/// The first line a program prints for `--version`, if it runs.
fn version_of(program: &str) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn ensure_wasm_tools() -> Result {
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup is needed for the wasm32 target: {e}"))?;
    if !String::from_utf8_lossy(&targets.stdout).contains("wasm32-unknown-unknown") {
        run(
            "wasm32 target",
            "rustup",
            &["target", "add", "wasm32-unknown-unknown"],
        )?;
    }
    if !version_of("wasm-bindgen").is_some_and(|v| v.ends_with(WASM_BINDGEN_VERSION)) {
        // Not --locked: its lockfile names a crate version this registry lacks.
        run(
            "wasm-bindgen-cli (about 5 minutes, once)",
            "cargo",
            &[
                "install",
                "wasm-bindgen-cli",
                "--version",
                WASM_BINDGEN_VERSION,
            ],
        )?;
    }
    if version_of("wasm-pack").is_none() {
        run(
            "wasm-pack (about 5 minutes, once)",
            "cargo",
            &["install", "--locked", "wasm-pack"],
        )?;
    }
    Ok(())
}

fn ensure_chromium() -> Result {
    if version_of("chromium").is_some() && version_of("chromedriver").is_some() {
        return Ok(());
    }
    let debian = std::path::Path::new("/etc/debian_version").exists();
    if !(debian && is_root()) {
        return Err(
            "browser tests need Chromium and ChromeDriver on PATH: on Debian, \
                    `apt-get install chromium chromium-driver` as root"
                .into(),
        );
    }
    run("apt-get update", "apt-get", &["update", "-q"])?;
    run(
        "chromium",
        "apt-get",
        &["install", "-y", "-q", "chromium", "chromium-driver"],
    )
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
    let redis = redis::start()?;
    run_tests(
        "native tests",
        "cargo",
        &["test", "--workspace", "--release"],
    )?;
    drop(redis);
    ensure_wasm_tools()?;
    ensure_chromium()?;
    run_tests(
        "npm API in Chrome",
        "wasm-pack",
        &["test", "--headless", "--chrome", "wasm"],
    )?;
    web::expect_browser_tests(
        "tests",
        run_tests(
            "suites of tests/ in Chrome",
            "wasm-pack",
            &["test", "--headless", "--chrome", "tests"],
        )?,
    )?;
    web::npm_pack_test()?;
    web::publish_dry_runs()?;
    web::e2e()?;
    Ok(())
}

fn serve() -> Result {
    web::serve()
}
