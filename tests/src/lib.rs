//! Shared helpers for the suites in `tests/tests/`.
