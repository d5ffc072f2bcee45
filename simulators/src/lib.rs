//! A virtual community: sensor nodes that publish the real v1 wire format over MQTT.
//!
//! [`node`] is pure (time and randomness are inputs): a node turns "now" into the message a real
//! node would send. [`publisher`] drives many nodes against a broker. Payloads are encoded with
//! `gridwatch_firmware::wire`, the same code the nodes run.
//!
//! [`load`] drives thousands of devices, each a real firmware `Node`, at a steady rate over a pool
//! of MQTT connections and counts what the broker acknowledged; [`faults`] adds devices that
//! flood, send malformed payloads, replay old messages or vanish. The `gridwatch-sim` binary runs
//! both and writes the registry and keys files a gateway needs to accept them.

pub mod faults;
pub mod load;
pub mod node;
pub mod publisher;
