//! Helpers shared by the suites that include `mod common;`.

pub mod resp;
