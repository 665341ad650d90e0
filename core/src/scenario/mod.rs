//! Scenarios: one famous failure, run twice side by side under one seed — once as it
//! happens, once with the fix — so the difference is the fix's alone. Each file is one
//! scenario's lab, named by its catalog id (`scenario.disruptive-rejoin` is
//! [`disruptive_rejoin`]).

pub mod cascading_failure;
pub mod clock_skew;
pub mod disruptive_rejoin;
pub mod mesh_pair;
pub mod retry_storm;
pub mod split_brain;
pub mod thundering_herd;
pub mod zombie_leader;
