//! `servin volume …`.

pub mod create;
pub mod inspect;
pub mod ls;
pub mod prune;
pub mod rm;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Go's `volume.Volume`, encoded as docker's CLI re-encodes it.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_volume: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    pub driver: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub mountpoint: String,
    pub name: String,
    pub options: Option<BTreeMap<String, String>>,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<UsageData>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UsageData {
    pub ref_count: i64,
    pub size: i64,
}
