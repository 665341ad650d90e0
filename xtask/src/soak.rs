//! `cargo xtask soak raft [--seeds N] [...]`: the long Raft soak, built in release and run
//! on every core by the `raft-soak` driver (tests/src/bin/raft_soak.rs), which draws the
//! progress bar, prints the summary and the replay command of every failing seed.

use crate::Result;

pub fn soak(args: &[String]) -> Result {
    let (target, rest) = args
        .split_first()
        .ok_or("usage: cargo xtask soak raft [--seeds N] [--start S] [--shard i/n] [--threads T] [--fault-ms MS] | --seed S")?;
    match target.as_str() {
        "raft" => {
            let mut argv = vec![
                "run",
                "--release",
                "-q",
                "-p",
                "distlab-tests",
                "--bin",
                "raft-soak",
                "--",
            ];
            argv.extend(rest.iter().map(String::as_str));
            crate::run("raft soak", "cargo", &argv)
        }
        other => Err(format!("no soak named `{other}` (known: raft)")),
    }
}
