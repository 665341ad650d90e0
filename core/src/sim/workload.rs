//! Workloads: arrival processes and key distributions.
