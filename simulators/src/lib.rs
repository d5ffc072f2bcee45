//! A virtual community: sensor nodes that publish the real v1 wire format over MQTT.
//!
//! [`node`] is pure (time and randomness are inputs): a node turns "now" into the message a real
//! node would send. [`publisher`] drives many nodes against a broker. Payloads are encoded with
//! `gridwatch_firmware::wire`, the same code the nodes run.

pub mod node;
pub mod publisher;
