//! Maintenance windows: a device, building or grid being worked on does not page anyone, but
//! its alerts still open, marked with the silence that held them, so nothing is silenced unseen.

use serde::{Deserialize, Serialize};

/// What a silence covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One device.
    Device(String),
    /// Every device in a building.
    Building(String),
    /// Every device in a grid.
    Grid(String),
}

/// A maintenance window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Id, for the record and for ending it early.
    pub id: String,
    /// What it covers.
    pub scope: Scope,
    /// Start, in milliseconds since the Unix epoch.
    pub from_ms: u64,
    /// End (exclusive), in milliseconds since the Unix epoch.
    pub until_ms: u64,
    /// Who set it.
    pub by: String,
    /// Why, for the control room.
    pub reason: String,
}

impl Silence {
    /// Whether it covers a device with this id, building and grid at `now_ms`.
    pub fn covers(&self, device: &str, building: &str, grid: &str, now_ms: u64) -> bool {
        (self.from_ms..self.until_ms).contains(&now_ms)
            && match &self.scope {
                Scope::Device(d) => d == device,
                Scope::Building(b) => b == building,
                Scope::Grid(g) => g == grid,
            }
    }
}
