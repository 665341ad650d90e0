//! Maps every implemented catalog id to its lab's constructor, and joins that with the
//! catalog data to say what is implemented and what is planned.

use serde::Serialize;
use serde_json::Value;

use crate::error::{DistlabError, Result};
use crate::lab::catalog::CATALOG_ROWS;
use crate::lab::json::{config_from_value, from_value};
use crate::lab::{Lab, LabModel, Runner};

/// Builds a lab from a JSON config and, optionally, a recorded action script to replay.
type Constructor = fn(&Value, Option<&Value>) -> Result<Box<dyn Lab>>;

fn make<M: LabModel>(config: &Value, actions: Option<&Value>) -> Result<Box<dyn Lab>> {
    let Some(actions) = actions else {
        return Ok(Box::new(Runner::<M>::from_json(config)?));
    };
    let config = config_from_value(config)?;
    let actions = from_value("actions", actions)?;
    Ok(Box::new(Runner::<M>::replay(config, actions)?))
}

/// Every lab there is, by catalog id.
pub fn registered() -> Vec<(&'static str, Constructor)> {
    vec![
        (
            <crate::sim_labs::network::NetworkLab as crate::lab::ClusterLab>::ID,
            make::<crate::lab::Cluster<crate::sim_labs::network::NetworkLab>>,
        ),
        (
            <crate::consensus::raft::lab::RaftLab as crate::lab::ClusterLab>::ID,
            make::<crate::lab::Cluster<crate::consensus::raft::lab::RaftLab>>,
        ),
        (
            crate::consensus::raft::scenario::RejoinLab::ID,
            make::<crate::consensus::raft::scenario::RejoinLab>,
        ),
        (
            <crate::sim_labs::linearizability::LinearizabilityLab as crate::lab::LocalLab>::ID,
            make::<crate::lab::Local<crate::sim_labs::linearizability::LinearizabilityLab>>,
        ),
        (
            <crate::sim_labs::workload::WorkloadLab as crate::lab::LocalLab>::ID,
            make::<crate::lab::Local<crate::sim_labs::workload::WorkloadLab>>,
        ),
        (
            <crate::ratelimit::lab::TokenBucketLab as crate::lab::LocalLab>::ID,
            make::<crate::lab::Local<crate::ratelimit::lab::TokenBucketLab>>,
        ),
        (
            <crate::ratelimit::distributed::DistributedLab as crate::lab::ClusterLab>::ID,
            make::<crate::lab::Cluster<crate::ratelimit::distributed::DistributedLab>>,
        ),
        (
            <crate::ratelimit::compare_lab::FixedWindowLab as crate::lab::LocalLab>::ID,
            make::<crate::lab::Local<crate::ratelimit::compare_lab::FixedWindowLab>>,
        ),
        (
            <crate::ratelimit::compare_lab::SlidingLogLab as crate::lab::LocalLab>::ID,
            make::<crate::lab::Local<crate::ratelimit::compare_lab::SlidingLogLab>>,
        ),
        (
            <crate::ratelimit::compare_lab::SlidingCounterLab as crate::lab::LocalLab>::ID,
            make::<crate::lab::Local<crate::ratelimit::compare_lab::SlidingCounterLab>>,
        ),
        (
            <crate::ratelimit::compare_lab::LeakyBucketLab as crate::lab::LocalLab>::ID,
            make::<crate::lab::Local<crate::ratelimit::compare_lab::LeakyBucketLab>>,
        ),
        (
            <crate::ratelimit::compare_lab::KeyedLab as crate::lab::LocalLab>::ID,
            make::<crate::lab::Local<crate::ratelimit::compare_lab::KeyedLab>>,
        ),
    ]
}

/// One catalog row with its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct CatalogEntry {
    pub section: &'static str,
    pub id: &'static str,
    pub title: &'static str,
    pub checks: &'static str,
    pub implemented: bool,
}

/// Every catalog id, in CATALOG.md order, with whether it has a lab yet.
pub fn catalog() -> Vec<CatalogEntry> {
    let labs = registered();
    CATALOG_ROWS
        .iter()
        .map(|r| CatalogEntry {
            section: r.section,
            id: r.id,
            title: r.title,
            checks: r.checks,
            implemented: labs.iter().any(|(id, _)| *id == r.id),
        })
        .collect()
}

/// Creates the lab `id` from a JSON config (`null` for defaults).
pub fn create_lab(id: &str, config: &Value) -> Result<Box<dyn Lab>> {
    constructor(id)?(config, None)
}

/// Creates the lab `id` and replays an action script recorded by [`Lab::actions`]: a
/// shared link's config and actions give back exactly the state its sender saw.
pub fn replay_lab(id: &str, config: &Value, actions: &Value) -> Result<Box<dyn Lab>> {
    constructor(id)?(config, Some(actions))
}

fn constructor(id: &str) -> Result<Constructor> {
    let (_, make) = registered()
        .into_iter()
        .find(|(lab, _)| *lab == id)
        .ok_or_else(|| match CATALOG_ROWS.iter().any(|r| r.id == id) {
            true => DistlabError::field(
                "id",
                format!("`{id}` is in the catalog but not implemented yet"),
            ),
            false => DistlabError::Unknown {
                what: "lab",
                id: id.to_string(),
            },
        })?;
    Ok(make)
}
