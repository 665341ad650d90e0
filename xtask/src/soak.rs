//! `cargo xtask soak <id> [--seeds N] [...]`: the long fault soak of protocol `<id>`
//! (`raft`, `2pc`, `3pc`, `paxos`, `vr`, `redlock`, `cache`, `quorum`, `replication` or `snapshot`), built in release and run on every core by the one soak driver
//! (tests/src/bin/soak.rs), which draws the progress bar, prints the summary and the
//! replay command of every failing seed. `cargo xtask soak merge FILE...` adds up the
//! summaries that shards wrote with `--summary-out FILE`.

use crate::Result;

/// The protocols the driver has a soak for, and its `merge` command.
const KNOWN: &[&str] = &[
    "raft",
    "2pc",
    "3pc",
    "paxos",
    "vr",
    "redlock",
    "cache",
    "quorum",
    "replication",
    "snapshot",
    "merge",
];

pub fn soak(args: &[String]) -> Result {
    let (target, rest) = args.split_first().ok_or(
        "usage: cargo xtask soak <raft|2pc|3pc|paxos|vr|redlock|cache|quorum|replication|snapshot> [--seeds N] [--start S] [--shard i/n] [--threads T] \
         [--fault-ms MS] [--summary-out FILE] | --seed S | cargo xtask soak merge FILE...",
    )?;
    if !KNOWN.contains(&target.as_str()) {
        return Err(format!(
            "no soak named `{target}` (known: {})",
            KNOWN.join(", ")
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
