//! The catalog as data: every primitive id of CATALOG.md, its section, a one-line
//! description and the checks it needs.
//!
//! The rows live in `catalog.md` beside this file: the section headings and tables of
//! shared/CATALOG.md, line for line, except that a blank *what* cell may be filled in
//! (`balance.round-robin`, a few `crdt.*`) so that the page has something to show. A test
//! in tests/ (`catalog_data_matches_catalog_md_when_present`) compares the two whenever
//! shared/CATALOG.md is present; to follow a change there, copy its changed table lines.
//!
//! `catalog.md` is parsed at compile time (`const fn`), so a malformed row is a build
//! error, never a panic at run time. A scenario table (`| id | failure | fix |`) becomes
//! rows whose title is `failure — fix: fix` and whose checks are empty.

/// One row of CATALOG.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogRow {
    pub section: &'static str,
    pub id: &'static str,
    pub title: &'static str,
    /// P property, F fault schedules, V vectors, D differential, A accuracy.
    pub checks: &'static str,
}

/// The catalog data file, as checked in (the tables of CATALOG.md).
pub const CATALOG_MD: &str = include_str!("catalog.md");

/// Every catalog row, in CATALOG.md order.
pub const CATALOG_ROWS: &[CatalogRow] = &ROWS;

const ROWS: [CatalogRow; parse::count(CATALOG_MD)] = parse::rows(CATALOG_MD, &JOINED);

/// The scenario titles, `failure — fix: fix`, one after the other: a `const fn` cannot
/// allocate, so the joined strings are built into this buffer and the rows point into it.
const JOINED: [u8; parse::joined_len(CATALOG_MD)] = parse::joined(CATALOG_MD);

/// A `const fn` parser of `catalog.md`. Every `panic!` here runs during constant
/// evaluation only, where it is a compile error naming the problem.
mod parse {
    use super::CatalogRow;

    const FIX: &[u8] = " — fix: ".as_bytes();

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Table {
        /// No table header seen yet.
        None,
        /// `| id | what | checks |`
        Plain,
        /// `| id | failure | fix |`
        Scenario,
    }

    /// The next data row at or after byte `at`: its three trimmed cells, the kind of
    /// table it is in, and where to continue.
    struct Next {
        cells: [&'static [u8]; 3],
        table: Table,
        at: usize,
    }

    /// `b[from..to]`, in a `const fn`.
    const fn sub(b: &'static [u8], from: usize, to: usize) -> &'static [u8] {
        b.split_at(to).0.split_at(from).1
    }

    const fn text(b: &'static [u8]) -> &'static str {
        match core::str::from_utf8(b) {
            Ok(s) => s,
            Err(_) => panic!("catalog.md: a cell is not UTF-8"),
        }
    }

    const fn eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    const fn trim(b: &'static [u8]) -> &'static [u8] {
        let (mut from, mut to) = (0, b.len());
        while from < to && (b[from] == b' ' || b[from] == b'\r') {
            from += 1;
        }
        while to > from && (b[to - 1] == b' ' || b[to - 1] == b'\r') {
            to -= 1;
        }
        sub(b, from, to)
    }

    /// The three cells of a table line `| a | b | c |`.
    const fn cells(line: &'static [u8]) -> [&'static [u8]; 3] {
        let line = trim(line);
        let mut out: [&'static [u8]; 3] = [&[]; 3];
        let (mut n, mut start, mut i) = (0, 1, 1);
        while i < line.len() {
            if line[i] == b'|' {
                if n == 3 {
                    panic!("catalog.md: a table line has more than three cells");
                }
                out[n] = trim(sub(line, start, i));
                n += 1;
                start = i + 1;
            }
            i += 1;
        }
        if n != 3 || start != line.len() {
            panic!("catalog.md: a table line must be `| a | b | c |`");
        }
        out
    }

    /// Checks an id (`section.name`, lowercase ASCII, digits, `-`) and returns its section.
    const fn section(id: &'static [u8]) -> &'static str {
        let mut dot = 0;
        let mut i = 0;
        while i < id.len() {
            let c = id[i];
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.') {
                panic!("catalog.md: an id has a character other than a-z, 0-9, `-`, `.`");
            }
            if c == b'.' && dot == 0 {
                dot = i;
            }
            i += 1;
        }
        if dot == 0 || dot + 1 == id.len() {
            panic!("catalog.md: an id is not `section.name`");
        }
        text(sub(id, 0, dot))
    }

    const fn next(src: &'static [u8], mut at: usize, mut table: Table) -> Option<Next> {
        while at < src.len() {
            let mut end = at;
            while end < src.len() && src[end] != b'\n' {
                end += 1;
            }
            let line = sub(src, at, end);
            at = end + 1;
            if line.is_empty() || line[0] != b'|' {
                continue;
            }
            let cells = cells(line);
            if eq(cells[0], b"id") {
                table = if eq(cells[1], b"what") && eq(cells[2], b"checks") {
                    Table::Plain
                } else if eq(cells[1], b"failure") && eq(cells[2], b"fix") {
                    Table::Scenario
                } else {
                    panic!(
                        "catalog.md: a table header is neither `id | what | checks` nor `id | failure | fix`"
                    )
                };
            } else if !cells[0].is_empty() && cells[0][0] == b'-' {
                // The `|---|---|---|` line under a header.
            } else if matches!(table, Table::None) {
                panic!("catalog.md: a row comes before any table header");
            } else {
                return Some(Next { cells, table, at });
            }
        }
        None
    }

    /// How many rows `src` has.
    pub(super) const fn count(src: &'static str) -> usize {
        let (mut n, mut at, mut table) = (0, 0, Table::None);
        while let Some(row) = next(src.as_bytes(), at, table) {
            n += 1;
            at = row.at;
            table = row.table;
        }
        n
    }

    const fn joined_title_len(row: &Next) -> usize {
        match row.table {
            Table::Scenario => row.cells[1].len() + FIX.len() + row.cells[2].len(),
            _ => 0,
        }
    }

    /// How many bytes the scenario titles take, joined.
    pub(super) const fn joined_len(src: &'static str) -> usize {
        let (mut n, mut at, mut table) = (0, 0, Table::None);
        while let Some(row) = next(src.as_bytes(), at, table) {
            n += joined_title_len(&row);
            at = row.at;
            table = row.table;
        }
        n
    }

    /// The scenario titles, `failure — fix: fix`, one after the other.
    pub(super) const fn joined<const L: usize>(src: &'static str) -> [u8; L] {
        let mut out = [0; L];
        let (mut n, mut at, mut table) = (0, 0, Table::None);
        while let Some(row) = next(src.as_bytes(), at, table) {
            if matches!(row.table, Table::Scenario) {
                let parts = [row.cells[1], FIX, row.cells[2]];
                let mut p = 0;
                while p < parts.len() {
                    let mut i = 0;
                    while i < parts[p].len() {
                        out[n] = parts[p][i];
                        n += 1;
                        i += 1;
                    }
                    p += 1;
                }
            }
            at = row.at;
            table = row.table;
        }
        out
    }

    const EMPTY: CatalogRow = CatalogRow {
        section: "",
        id: "",
        title: "",
        checks: "",
    };

    /// Every row of `src`; `joined` is [`joined`] of the same `src`.
    pub(super) const fn rows<const N: usize>(
        src: &'static str,
        joined: &'static [u8],
    ) -> [CatalogRow; N] {
        let mut out = [EMPTY; N];
        let (mut n, mut at, mut table, mut j) = (0, 0, Table::None, 0);
        while let Some(row) = next(src.as_bytes(), at, table) {
            let [id, what, last] = row.cells;
            let (title, checks) = match row.table {
                Table::Scenario => {
                    let len = joined_title_len(&row);
                    j += len;
                    (sub(joined, j - len, j), &[] as &[u8])
                }
                _ => (what, last),
            };
            out[n] = CatalogRow {
                section: section(id),
                id: text(id),
                title: text(title),
                checks: text(checks),
            };
            n += 1;
            at = row.at;
            table = row.table;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_rows_parse_from_the_data_file() {
        let table_rows = CATALOG_MD
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| id ") && !l.starts_with("|-"))
            .count();
        assert_eq!(CATALOG_ROWS.len(), table_rows);
        // CATALOG.md's 115 and the project's resilience.mesh (issue 19's mesh lab).
        assert_eq!(CATALOG_ROWS.len(), 116);
        assert_eq!(
            CATALOG_ROWS[0],
            CatalogRow {
                section: "sim",
                id: "sim.engine",
                title: "discrete-event simulator: virtual time in µs, seeded RNG, stable event order; same seed ⇒ identical trace natively and in wasm",
                checks: "P",
            }
        );
        let ids: std::collections::BTreeSet<_> = CATALOG_ROWS.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), CATALOG_ROWS.len(), "ids are unique");
        for r in CATALOG_ROWS {
            assert_eq!(r.id.split('.').next(), Some(r.section), "{}", r.id);
            assert_eq!(r.title, r.title.trim(), "{}", r.id);
            assert!(!r.title.is_empty(), "{} has no title", r.id);
            assert!(
                !r.title.contains('|') && !r.checks.contains('|'),
                "{}",
                r.id
            );
        }
    }

    #[test]
    fn catalog_crdt_rows_keep_their_section_and_filled_titles() {
        let g = CATALOG_ROWS.iter().find(|r| r.id == "crdt.g-counter");
        assert_eq!(
            g,
            Some(&CatalogRow {
                section: "crdt",
                id: "crdt.g-counter",
                title: "grow-only counter",
                checks: "P (merge laws)",
            })
        );
    }

    #[test]
    fn catalog_scenario_rows_join_failure_and_fix() {
        let scenarios: Vec<_> = CATALOG_ROWS
            .iter()
            .filter(|r| r.section == "scenario")
            .collect();
        assert_eq!(scenarios.len(), 10);
        assert_eq!(
            *scenarios[0],
            CatalogRow {
                section: "scenario",
                id: "scenario.thundering-herd",
                title: "cache key expires, every request hits the database — fix: singleflight / early expiration",
                checks: "",
            }
        );
        assert_eq!(
            scenarios[9].title,
            "LWW loses writes, Snowflake IDs go backwards — fix: HLC / logical clocks"
        );
        assert!(scenarios.iter().all(|r| r.checks.is_empty()));
    }
}
