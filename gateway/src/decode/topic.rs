//! The v1 topic grammar: `gw/v1/{community}/{device}/{channel}`.

use crate::registry::is_id;

/// What a device publishes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Periodic readings.
    Telemetry,
    /// Events the node detected itself (life-safety first).
    Event,
    /// `online` / `offline`, retained; the node's last will.
    Status,
}

impl Channel {
    /// The channel's topic segment, also its metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::Event => "event",
            Self::Status => "status",
        }
    }
}

/// A topic that follows the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topic<'a> {
    /// Community id.
    pub community: &'a str,
    /// Device id.
    pub device: &'a str,
    /// Channel.
    pub channel: Channel,
}

/// The channel a topic names, judged by its last segment only: used to pick a queue before the
/// topic is checked in full.
pub fn channel_hint(topic: &str) -> Option<Channel> {
    match topic.rsplit('/').next() {
        Some("telemetry") => Some(Channel::Telemetry),
        Some("event") => Some(Channel::Event),
        Some("status") => Some(Channel::Status),
        _ => None,
    }
}

/// Parses a device topic, or says why it breaks the grammar.
pub fn parse(topic: &str) -> Result<Topic<'_>, &'static str> {
    let mut parts = topic.split('/');
    let (Some("gw"), Some("v1"), Some(community), Some(device), Some(channel), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err("topic must be gw/v1/{community}/{device}/{telemetry|event|status}");
    };
    if !is_id(community) {
        return Err("community id must match [A-Za-z0-9_-]{1,64}");
    }
    if !is_id(device) {
        return Err("device id must match [A-Za-z0-9_-]{1,64}");
    }
    let channel = match channel {
        "telemetry" => Channel::Telemetry,
        "event" => Channel::Event,
        "status" => Channel::Status,
        _ => return Err("channel must be telemetry, event or status"),
    };
    Ok(Topic {
        community,
        device,
        channel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_three_device_channels() {
        assert_eq!(
            parse("gw/v1/yg/sos-1/event"),
            Ok(Topic {
                community: "yg",
                device: "sos-1",
                channel: Channel::Event
            })
        );
        assert_eq!(
            parse("gw/v1/yg/e_2/telemetry").unwrap().channel,
            Channel::Telemetry
        );
        assert_eq!(
            parse("gw/v1/yg/e_2/status").unwrap().channel,
            Channel::Status
        );
    }

    #[test]
    fn rejects_everything_else() {
        for t in [
            "",
            "gw/v1/yg/d",
            "gw/v2/yg/d/event",
            "gw/v1/yg/d/event/x",
            "gw/v1/yg/d/cmd",
            "gw/v1/yg/bad.id/event",
            "gw/v1//d/event",
            "gw/v1/yg/d!/telemetry",
            "x/v1/yg/d/event",
        ] {
            assert!(parse(t).is_err(), "{t}");
        }
    }

    proptest! {
        #[test]
        fn any_valid_pair_of_ids_round_trips(c in "[A-Za-z0-9_-]{1,64}", d in "[A-Za-z0-9_-]{1,64}") {
            let t = format!("gw/v1/{c}/{d}/event");
            prop_assert_eq!(parse(&t), Ok(Topic { community: &c, device: &d, channel: Channel::Event }));
        }

        #[test]
        fn arbitrary_topics_never_panic(t in ".{0,200}") {
            let _ = parse(&t);
            let _ = channel_hint(&t);
        }
    }
}
