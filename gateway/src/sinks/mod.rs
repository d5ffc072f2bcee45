//! Stage 6: where accepted readings go: the time-series store, and the latest occupancy of
//! watched spaces for the screen.

pub mod occupancy;
pub mod tsdb;
