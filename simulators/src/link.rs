//! A virtual node's link to the gateway: the firmware's [`Transport`], which keeps what the node
//! sent for the simulation's shell to publish and hands it the downlink commands that arrived.
//!
//! The link is up or down as the shell's MQTT connection is. While it is down, `publish` fails,
//! so the firmware keeps its events and retries them (byte for byte) once the link is back, as it
//! would on a board whose radio lost the broker.

use std::collections::VecDeque;

use gridwatch_firmware::node::{Channel, Transport};

/// What `publish` returns while the link is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkDown;

/// One virtual node's link.
#[derive(Debug, Default)]
pub struct Link {
    up: bool,
    sent: Vec<(Channel, Vec<u8>)>,
    cmds: VecDeque<Vec<u8>>,
}

impl Link {
    /// A link that is up or down.
    pub fn new(up: bool) -> Self {
        Self {
            up,
            ..Self::default()
        }
    }

    /// Brings the link up or takes it down.
    pub fn set_up(&mut self, up: bool) {
        self.up = up;
    }

    /// A downlink command (the payload of the device's `cmd` topic) arrived.
    pub fn push_cmd(&mut self, payload: Vec<u8>) {
        self.cmds.push_back(payload);
    }

    /// Takes what the node published since the last call, oldest first.
    pub fn take_sent(&mut self) -> Vec<(Channel, Vec<u8>)> {
        std::mem::take(&mut self.sent)
    }
}

impl Transport for Link {
    type Error = LinkDown;

    fn publish(&mut self, channel: Channel, payload: &[u8]) -> Result<(), LinkDown> {
        if !self.up {
            return Err(LinkDown);
        }
        self.sent.push((channel, payload.to_vec()));
        Ok(())
    }

    fn poll_cmd(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LinkDown> {
        let Some(cmd) = self.cmds.pop_front() else {
            return Ok(None);
        };
        // A command longer than the node's buffer is reported with its full length, which the
        // firmware refuses as too long rather than reading it cut short.
        let n = cmd.len().min(buf.len());
        buf[..n].copy_from_slice(&cmd[..n]);
        Ok(Some(cmd.len()))
    }
}
