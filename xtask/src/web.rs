//! The npm package, the page and their tests: `cargo xtask serve` builds both and serves
//! the page; `cargo xtask test` ends with the npm-pack import test and the browser e2e.
//!
//! Every step installs what it needs from committed lockfiles (`npm ci`) and skips what
//! is already there. The static server is a few lines of std: the page is plain files.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use super::{Result, ensure_chromium, ensure_wasm_tools};

/// The oldest Node the page's toolchain (Vite 8) runs on.
const MIN_NODE: (u32, u32) = (20, 19);
/// Where `cargo xtask serve` listens.
const SERVE_ADDR: &str = "127.0.0.1:8080";
/// The browser the e2e drives (Debian's package `chromium`).
const CHROMIUM: &str = "/usr/bin/chromium";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| format!("path is not UTF-8: {}", p.display()))
}

/// Runs `program args` in `dir`, failing on a non-zero exit.
fn run_in(dir: &Path, label: &str, program: &str, args: &[&str]) -> Result {
    super::run_step(label, Command::new(program).args(args).current_dir(dir))
}

/// Fails unless a browser run of `crate_dir`'s integration suites passed at least as many
/// tests as they mark for wasm: a suite file without `wasm_bindgen_test_configure!
/// (run_in_browser)` is silently skipped in Chrome, and this catches it.
pub fn expect_browser_tests(crate_dir: &str, passed: u64) -> Result {
    let dir = root().join(crate_dir).join("tests");
    let (mut native, mut browser) = (0u64, 0u64);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for line in text.lines().map(str::trim) {
            if line == "#[test]" {
                native += 1;
            } else if line.starts_with("#[distlab_tests::test") {
                native += 1;
                browser += 1;
            } else if line == "#[wasm_bindgen_test]"
                || line == r#"#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]"#
            {
                browser += 1;
            }
        }
    }
    eprintln!(
        "<== {crate_dir}/tests: {passed} passed in Chrome; {browser} marked for wasm, \
         {native} native"
    );
    if passed < browser {
        return Err(format!(
            "{crate_dir}/tests: only {passed} of {browser} browser tests passed in Chrome \
             (a suite without `wasm_bindgen_test_configure!(run_in_browser)` runs nothing)"
        ));
    }
    Ok(())
}

fn ensure_node() -> Result {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|_| {
            format!(
                "Node.js ≥ {}.{} and npm are needed for the page and the npm package: \
             on Debian, `apt-get install nodejs npm` (or install Node from nodejs.org)",
                MIN_NODE.0, MIN_NODE.1
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.trim().trim_start_matches('v').split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if (major, minor) < MIN_NODE {
        return Err(format!(
            "Node {} is too old: Vite 8 needs Node ≥ {}.{}",
            text.trim(),
            MIN_NODE.0,
            MIN_NODE.1
        ));
    }
    Ok(())
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// `npm ci` in `dir` unless node_modules is already newer than the lockfile.
fn npm_ci(dir: &Path) -> Result {
    let lock = dir.join("package-lock.json");
    if !lock.exists() {
        return Err(format!("{} is missing: commit it", lock.display()));
    }
    let installed = dir.join("node_modules/.package-lock.json");
    if let (Some(l), Some(i)) = (modified(&lock), modified(&installed))
        && i >= l
    {
        return Ok(());
    }
    run_in(
        dir,
        "npm ci",
        "npm",
        &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
    )
}

/// Builds the npm package `distlab` into wasm/pkg.
pub fn build_package() -> Result {
    ensure_wasm_tools()?;
    ensure_node()?;
    let root = root();
    // wasm-pack adds to its out dir; start clean so no stale file is packed or served.
    let _ = std::fs::remove_dir_all(root.join("wasm/pkg"));
    run_in(
        &root,
        "npm package (wasm-pack)",
        "wasm-pack",
        &[
            "build",
            "--target",
            "web",
            "--out-dir",
            "pkg",
            "--out-name",
            "distlab",
            "--release",
            "wasm",
            // Whole-program optimisation and no symbol names: about a quarter smaller
            // and a little faster than the workspace's release profile (wasm-opt cannot
            // be downloaded here). Only this build: native builds keep their profile.
            "--",
            "--config",
            "profile.release.lto=true",
            "--config",
            "profile.release.codegen-units=1",
            "--config",
            "profile.release.strip=true",
        ],
    )?;
    run_in(
        &root,
        "npm package (name, exports, README)",
        "node",
        &["wasm/finish-package.mjs"],
    )
}

/// Builds the page into web/dist (after the package it imports).
pub fn build_page() -> Result {
    build_package()?;
    let web = root().join("web");
    npm_ci(&web)?;
    // The page depends on `file:../wasm/pkg`: `npm ci` links it, so a rebuilt package is
    // picked up without reinstalling.
    run_in(&web, "page (tsc + vite build)", "npm", &["run", "build"])
}

/// `cargo xtask serve`: builds the package and the page and serves web/dist.
pub fn serve() -> Result {
    build_page()?;
    let listener =
        TcpListener::bind(SERVE_ADDR).map_err(|e| format!("cannot listen on {SERVE_ADDR}: {e}"))?;
    println!("distlab: serving web/dist on http://{SERVE_ADDR}/  (Ctrl-C stops)");
    serve_forever(listener, root().join("web/dist"), "/");
    Ok(())
}

fn serve_forever(listener: TcpListener, dir: PathBuf, base: &'static str) {
    for stream in listener.incoming().map_while(std::result::Result::ok) {
        let dir = dir.clone();
        std::thread::spawn(move || {
            let _ = handle(stream, &dir, base);
        });
    }
}

/// Serves `dir` on a free port in a background thread; returns its URL.
fn serve_in_background(dir: PathBuf) -> Result<String> {
    serve_in_background_at(dir, "/")
}

/// Serves `dir` under the path `base` (starting and ending with `/`) on a free port in a
/// background thread; returns its URL. Anything outside `base` is not found, as on
/// GitHub Pages, which serves a project's site under `/<repo>/`.
fn serve_in_background_at(dir: PathBuf, base: &'static str) -> Result<String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot listen on a port: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || serve_forever(listener, dir, base));
    Ok(format!("http://{addr}{base}"))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "webmanifest" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file under `dir` that URL path `path` names when `dir` is served at `base`
/// (directories name their index.html); none outside `base` — a file the page asked
/// for at the server's root would be missing on GitHub Pages too.
fn file_under(dir: &Path, base: &str, path: &str) -> Option<PathBuf> {
    let rest = path.strip_prefix(base.trim_end_matches('/'))?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let mut file = dir.to_path_buf();
    for c in Path::new(rest.trim_start_matches('/')).components() {
        if let Component::Normal(p) = c {
            file.push(p);
        }
    }
    if file.is_dir() {
        file.push("index.html");
    }
    Some(file)
}

/// One HTTP/1.1 request: GET or HEAD of a file under `dir`, served at the path `base`
/// (directories serve their index.html); the connection closes after the response.
fn handle(mut stream: TcpStream, dir: &Path, base: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let file = file_under(dir, base, path);
    let read = file.as_ref().map(|f| (std::fs::read(f), content_type(f)));
    let (status, body, kind) = match (method, read) {
        ("GET" | "HEAD", Some((Ok(body), kind))) => ("200 OK", body, kind),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            b"not found\n".to_vec(),
            "text/plain; charset=utf-8",
        ),
        _ => (
            "405 Method Not Allowed",
            b"GET or HEAD only\n".to_vec(),
            "text/plain; charset=utf-8",
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(&body)?;
    }
    stream.flush()
}

/// Runs a Node test file (or a script printing a plain "N passed, N failed" line),
/// streaming its output; fails on a non-zero exit, a failure, or when nothing passed.
fn run_node_tests(
    label: &str,
    dir: &Path,
    program: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result {
    eprintln!(
        "==> {label}: (in {}) {program} {}",
        dir.display(),
        args.join(" ")
    );
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{label}: cannot start `{program}`: {e}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out)
            .lines()
            .map_while(std::result::Result::ok)
        {
            println!("{line}");
            let t = line.trim();
            let num = |s: &str| s.trim().parse::<u64>().ok();
            if let Some(n) = t.strip_prefix("# pass ").and_then(num) {
                passed += n;
            } else if let Some(n) = t.strip_prefix("# fail ").and_then(num) {
                failed += n;
            } else if let Some((p, f)) = plain_counts(t) {
                passed += p;
                failed += f;
            }
        }
    }
    let status = child.wait().map_err(|e| format!("{label}: {e}"))?;
    eprintln!(
        "<== {label}: {status}, {passed} passed, {failed} failed, after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if !status.success() || failed > 0 {
        return Err(format!("{label} failed ({status}, {failed} failed)"));
    }
    if passed == 0 {
        return Err(format!("{label} ran no test"));
    }
    Ok(())
}

/// "word: N passed, M failed" → (N, M).
fn plain_counts(line: &str) -> Option<(u64, u64)> {
    let rest = line.split_once(": ").map_or(line, |(_, r)| r);
    let (p, f) = rest.split_once(" passed, ")?;
    let f = f.split(' ').next()?;
    Some((p.trim().parse().ok()?, f.parse().ok()?))
}

/// `npm pack` the package, install the tarball into a temporary folder, and import it
/// from a plain Node script and from Deno (type-checked against the generated .d.ts).
pub fn npm_pack_test() -> Result {
    build_package()?;
    let root = root();
    let tests = root.join("tests/npm");
    npm_ci(&tests)?;
    let tmp = root.join("target/npm-pack-test");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    run_in(
        &root.join("wasm/pkg"),
        "npm pack",
        "npm",
        &["pack", "--pack-destination", path_str(&tmp)?],
    )?;
    let tarball = std::fs::read_dir(&tmp)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or("npm pack wrote no tarball")?;
    std::fs::write(
        tmp.join("package.json"),
        "{\"name\": \"distlab-pack-check\", \"private\": true, \"type\": \"module\"}\n",
    )
    .map_err(|e| e.to_string())?;
    run_in(
        &tmp,
        "install the tarball",
        "npm",
        &[
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            path_str(&tarball)?,
        ],
    )?;
    for f in [
        "node-smoke.test.mjs",
        "deno-smoke.ts",
        "jupyter-snippet.ts",
        "observable-snippet.js",
    ] {
        std::fs::copy(tests.join(f), tmp.join(f)).map_err(|e| format!("{f}: {e}"))?;
    }
    run_node_tests(
        "npm package in Node",
        &tmp,
        "node",
        &["--test", "node-smoke.test.mjs"],
        &[],
    )?;
    let deno = tests.join("node_modules/.bin/deno");
    let deno = path_str(&deno)?;
    run_in(
        &tmp,
        "deno check (generated types)",
        deno,
        &["check", "deno-smoke.ts"],
    )?;
    run_node_tests(
        "npm package in Deno",
        &tmp,
        deno,
        &["run", "--allow-read", "deno-smoke.ts"],
        &[("NO_COLOR", "1")],
    )?;
    // The README's notebook snippets: Jupyter's Deno kernel (`await init()` reads the
    // .wasm beside the module) and Observable (ESM and .wasm from a URL, served here
    // from the installed package as a stand-in for the CDN).
    run_node_tests(
        "README Jupyter (Deno kernel) snippet",
        &tmp,
        deno,
        &["run", "--allow-read", "jupyter-snippet.ts"],
        &[("NO_COLOR", "1")],
    )?;
    let cdn = serve_in_background(tmp.join("node_modules/distlab"))?;
    let cdn = cdn.trim_end_matches('/');
    let host = cdn.trim_start_matches("http://");
    run_node_tests(
        "README Observable snippet",
        &tmp,
        deno,
        &[
            "run",
            &format!("--allow-net={host}"),
            &format!("--allow-import={host}"),
            "observable-snippet.js",
            cdn,
        ],
        &[("NO_COLOR", "1")],
    )
}

/// The path the e2e serves the page under.
const E2E_BASE: &str = "/distlab/";

/// `npm publish --dry-run` of the package and `cargo publish --dry-run` of distlab-core:
/// a package that would not publish (a missing file, bad metadata, a dependency not on
/// crates.io) fails the test command, not the release.
pub fn publish_dry_runs() -> Result {
    build_package()?;
    let root = root();
    run_in(
        &root.join("wasm/pkg"),
        "npm publish --dry-run",
        "npm",
        &["publish", "--dry-run", "--loglevel=warn"],
    )?;
    // The working tree may hold uncommitted work while testing: the release workflow
    // publishes from a clean tag.
    run_in(
        &root,
        "cargo publish --dry-run -p distlab-core",
        "cargo",
        &[
            "publish",
            "--dry-run",
            "--allow-dirty",
            "-p",
            "distlab-core",
        ],
    )
}

/// Browser e2e: builds the page, serves it on a free port and drives Debian's Chromium
/// with playwright-core through every implemented lab; screenshots go to a folder it
/// prints.
pub fn e2e() -> Result {
    build_page()?;
    ensure_chromium()?;
    let root = root();
    let e2e = root.join("tests/e2e");
    npm_ci(&e2e)?;
    // Under a sub-path, as GitHub Pages serves a project's site.
    let url = serve_in_background_at(root.join("web/dist"), E2E_BASE)?;
    let shots = root.join("target/e2e-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).map_err(|e| format!("{}: {e}", shots.display()))?;
    eprintln!(
        "e2e: page served at {url}; screenshots in {}",
        shots.display()
    );
    let result = run_node_tests(
        "browser e2e (Chromium)",
        &e2e,
        "node",
        &[
            "--test",
            "--test-concurrency=1",
            "page.test.mjs",
            "checker.test.mjs",
        ],
        &[
            ("DISTLAB_URL", url.as_str()),
            ("DISTLAB_SCREENSHOTS", path_str(&shots)?),
            ("DISTLAB_CHROMIUM", CHROMIUM),
        ],
    );
    eprintln!("e2e: screenshots are in {}", shots.display());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_path_serves_only_under_it() {
        let dir = Path::new("/site");
        let at = |base, path| file_under(dir, base, path).map(|f| f.display().to_string());
        assert_eq!(at("/distlab/", "/distlab/a.js"), Some("/site/a.js".into()));
        assert_eq!(at("/distlab/", "/a.js"), None);
        assert_eq!(at("/distlab/", "/distlabx/a.js"), None);
        assert_eq!(at("/distlab/", "/distlab/../x"), Some("/site/x".into()));
        assert_eq!(at("/", "/a.js"), Some("/site/a.js".into()));
    }

    #[test]
    fn plain_count_lines_are_read() {
        assert_eq!(
            plain_counts("deno: 4 passed, 0 failed (step 3)"),
            Some((4, 0))
        );
        assert_eq!(plain_counts("2 passed, 1 failed"), Some((2, 1)));
        assert_eq!(plain_counts("# pass 4"), None);
    }
}
