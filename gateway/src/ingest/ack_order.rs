//! PUBACKs in the order the messages arrived, as MQTT 3.1.1 (section 4.6) requires of a client.
//!
//! The pipeline finishes messages out of order (events jump the queue; rejections are done at
//! once, accepted messages only after their journal fsync). This keeps the arrival order of the
//! QoS 1 messages on the current connection and releases acks only for the finished prefix.
//! Mosquitto tolerates acks out of order; rumqttd, the demo's broker, drops the connection.

use std::collections::{HashSet, VecDeque};

/// Arrival order of unacknowledged QoS 1 messages, and which of them are finished.
#[derive(Debug, Default)]
pub struct AckOrder {
    arrived: VecDeque<u16>,
    waiting: HashSet<u16>,
    finished: HashSet<u16>,
}

impl AckOrder {
    /// A QoS 1 message with packet id `pkid` arrived.
    pub fn arrived(&mut self, pkid: u16) {
        // The broker does not reuse a packet id before its ack; a repeat is a redelivery.
        if self.waiting.insert(pkid) {
            self.arrived.push_back(pkid);
        }
    }

    /// The message `pkid` is finished; returns the packet ids that may be acknowledged now, in
    /// arrival order. An id this connection is not waiting for (it arrived on an earlier
    /// connection, whose messages the broker sends again) is ignored.
    pub fn finished(&mut self, pkid: u16) -> Vec<u16> {
        if self.waiting.contains(&pkid) {
            self.finished.insert(pkid);
        }
        let mut ready = Vec::new();
        while let Some(&front) = self.arrived.front() {
            if !self.finished.remove(&front) {
                break;
            }
            self.arrived.pop_front();
            self.waiting.remove(&front);
            ready.push(front);
        }
        ready
    }

    /// The connection is new: whatever was unacknowledged will be delivered again.
    pub fn reset(&mut self) {
        self.arrived.clear();
        self.waiting.clear();
        self.finished.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_event_finished_first_waits_for_the_telemetry_that_came_before_it() {
        let mut o = AckOrder::default();
        for pkid in [47, 48, 56] {
            o.arrived(pkid);
        }
        assert_eq!(o.finished(56), Vec::<u16>::new());
        assert_eq!(o.finished(48), Vec::<u16>::new());
        assert_eq!(o.finished(47), vec![47, 48, 56]);
    }

    #[test]
    fn acks_for_an_earlier_connection_are_ignored() {
        let mut o = AckOrder::default();
        o.arrived(1);
        o.reset();
        o.arrived(2);
        assert!(o.finished(1).is_empty());
        o.arrived(1);
        assert!(
            o.finished(1).is_empty(),
            "1 arrived after 2 on this connection"
        );
        assert_eq!(o.finished(2), vec![2, 1]);
    }

    proptest! {
        #[test]
        fn every_message_is_acked_once_in_arrival_order(n in 1usize..200, seed in any::<u64>()) {
            let mut o = AckOrder::default();
            let ids: Vec<u16> = (0..n as u16).collect();
            for id in &ids {
                o.arrived(*id);
            }
            let mut finish_order = ids.clone();
            let mut s = seed | 1;
            for i in (1..finish_order.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                finish_order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut acked = Vec::new();
            for id in finish_order {
                acked.extend(o.finished(id));
            }
            prop_assert_eq!(acked, ids);
        }
    }
}
