//! Probabilistic sketches: set membership (Bloom, counting Bloom, cuckoo), frequency
//! (count-min) and cardinality (HyperLogLog, as Redis implements it). Each is a plain
//! struct over byte-string keys, hashed deterministically ([`hash`]) so a sketch built
//! natively and one built in wasm hold the same bits. Each primitive's lab sits beside it
//! (`*_lab.rs`); [`lab_support`] holds what the labs share.

pub mod bloom;
pub mod bloom_lab;
pub mod count_min;
pub mod count_min_lab;
pub mod counting_bloom;
pub mod counting_bloom_lab;
pub mod cuckoo;
pub mod cuckoo_lab;
pub mod hash;
pub mod hyperloglog;
pub mod hyperloglog_lab;
pub mod lab_support;
