//! Stage 1: bytes in. Today from an MQTT broker; a serial bridge for wired nodes comes later.

pub mod ack_order;
pub mod actions;
pub mod mqtt;
pub mod tls;
