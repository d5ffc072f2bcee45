//! Gridwatch sensor-node logic, shared by the nodes, the gateway and the simulators.
//!
//! The crate is `no_std` and allocation-free so the same code runs on a microcontroller and on the
//! host. It holds the v1 wire format ([`wire`]) and its message authentication ([`auth`]): the
//! contract between a node and the gateway. There is deliberately no second definition of either
//! anywhere in the workspace. On top of them, [`seq`] numbers messages across reboots and [`node`]
//! is the kind-agnostic core of a node's loop (events, telemetry, heartbeats, downlink commands).
//! [`drivers`] read the sensors and drive the outputs, over embedded-hal 1.0 and [`hal`];
//! [`detect`] turns their samples into the events a node sends, as pure state machines.
//! [`framing`] carries the wire format over a wired RS-485 bus.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod detect;
pub mod drivers;
pub mod framing;
pub mod hal;
pub mod node;
pub mod seq;
pub mod wire;
