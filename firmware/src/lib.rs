//! Gridwatch sensor-node logic, shared by the nodes, the gateway and the simulators.
//!
//! The crate is `no_std` and allocation-free so the same code runs on a microcontroller and on the
//! host. Today it holds the v1 wire format ([`wire`]): the contract between a node and the gateway;
//! and the serial framing ([`framing`]) that carries it over a wired RS-485 bus.
//! There is deliberately no second definition of that format anywhere in the workspace.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod framing;
pub mod hal;
pub mod wire;
