//! A virtual Gridwatch community: every virtual node runs the real firmware loop of its kind
//! (`gridwatch_firmware::node`) over simulated pins, buses and ADC inputs, with simple physics
//! behind them, so the firmware's detectors decide the events; scenarios in TOML files say what
//! happens when and which alerts must follow, and a runner checks that they do against a gateway.
//!
//! ```text
//!  scenario file ─▶ scenario ──plan──▶ sim: devices (world + firmware loop) ─▶ links ─▶ fleet ─MQTT─▶ gateway
//!                      │                 (simulated time, 100 ms steps)                 (real time × speed)
//!                      └── check ◀── GET /api/v1/alerts ◀──────────────────────────────────────────┘
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`community`] | a community from a few numbers, its devices and its registry file |
//! | [`hw`] | simulated parts: pins, ADC inputs, an ADXL345 on I2C, a TFmini-S on a UART |
//! | [`devices`] | one module per kind: the firmware loop over the parts, and the physics behind them |
//! | [`store`] | each node's non-volatile memory (its sequence lease), in a file per community |
//! | [`link`] | the firmware `Transport` each node publishes through |
//! | [`sim`] | every device stepped together on simulated time, with planned incidents (pure) |
//! | [`fleet`] | the simulation on real time over MQTT: one connection per device |
//! | [`scenario`] | scenario files, the check of their expected alerts, and the runner |
//! | [`load`] | load mode: many devices, each a firmware node, at a set rate over a pool of connections |
//! | [`faults`] | fault mode: devices that flood, send malformed payloads, replay, or vanish |

pub mod community;
pub mod devices;
pub mod faults;
pub mod fleet;
pub mod hw;
pub mod link;
pub mod load;
pub mod scenario;
pub mod sim;
pub mod store;
