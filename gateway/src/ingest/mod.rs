//! Stage 1: bytes in: from an MQTT broker, and from serial ports with nodes wired over RS-485.

pub mod ack_order;
pub mod actions;
pub mod mqtt;
pub mod serial;
pub mod tls;
