//! `cargo xtask soak <id> [--seeds N] [...]`: the long fault soak of protocol `<id>`
//! (any of `distlab_core::soaks::IDS`), built in release and run on every core by the one
//! soak driver
//! (tests/src/bin/soak.rs), which draws the progress bar, prints the summary and the
//! replay command of every failing seed. `cargo xtask soak merge FILE...` adds up the
//! summaries that shards wrote with `--summary-out FILE`.

use crate::Result;

pub fn soak(args: &[String]) -> Result {
    let ids = distlab_core::soaks::IDS;
    let (target, rest) = args.split_first().ok_or_else(|| {
        format!(
            "usage: cargo xtask soak <{}> [--seeds N] [--start S] [--shard i/n] [--threads T] \
             [--fault-ms MS] [--summary-out FILE] | --seed S | cargo xtask soak merge FILE...",
            ids.join("|")
        )
    })?;
    // Checked here so that a mistyped id fails before the release build of the driver.
    if target != "merge" && !ids.contains(&target.as_str()) {
        return Err(format!(
            "no soak named `{target}` (known: {})",
            ids.join(", ")
        ));
    }
    let mut argv = vec![
        "run",
        "--release",
        "-q",
        "-p",
        "distlab-tests",
        "--bin",
        "soak",
        "--",
        target.as_str(),
    ];
    argv.extend(rest.iter().map(String::as_str));
    crate::run(&format!("{target} soak"), "cargo", &argv)
}
