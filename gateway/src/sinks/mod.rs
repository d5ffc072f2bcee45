//! Stage 6: where accepted readings go. Today one sink: the time-series store.

pub mod tsdb;
