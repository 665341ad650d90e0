//! `cargo xtask catalog`: every catalog id, in catalog order, one per line as
//! `<id> <implemented|planned> <title>`. "implemented" comes from the core's registry
//! (`distlab_core::catalog()`), so this is what the npm package's `catalog()` says too.

use std::io::Write;

use distlab_core::lab::CatalogEntry;

use crate::Result;

pub fn catalog() -> Result {
    let text = lines(&distlab_core::catalog());
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // `cargo xtask catalog | head` closes the pipe early: that is not a failure.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("writing the catalog: {e}"))
        }
        _ => Ok(()),
    }
}

/// One line per entry: `<id> <implemented|planned> <title>`.
pub fn lines(entries: &[CatalogEntry]) -> String {
    entries
        .iter()
        .map(|e| {
            let status = if e.implemented {
                "implemented"
            } else {
                "planned"
            };
            format!("{} {status} {}", e.id, e.title)
                .trim_end()
                .to_string()
                + "\n"
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_lines_say_implemented_or_planned_in_catalog_order() {
        let entries = distlab_core::catalog();
        let text = lines(&entries);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), entries.len());
        for (line, e) in lines.iter().zip(&entries) {
            assert!(line.starts_with(&format!("{} ", e.id)), "{line}");
        }
        let line = |id: &str| {
            lines
                .iter()
                .find(|l| l.split(' ').next() == Some(id))
                .copied()
                .unwrap_or_else(|| panic!("{id} is not listed"))
        };
        assert!(
            line("sim.network").starts_with("sim.network implemented latency models"),
            "{}",
            line("sim.network")
        );
        assert!(
            line("consensus.pbft").starts_with("consensus.pbft implemented PBFT"),
            "{}",
            line("consensus.pbft")
        );
        assert!(
            line("scenario.dual-write").starts_with("scenario.dual-write planned DB and"),
            "{}",
            line("scenario.dual-write")
        );
        assert_eq!(lines[0].split(' ').next(), Some("sim.engine"));
    }
}
