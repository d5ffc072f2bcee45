//! Actions on alerts from a worker app over MQTT, the same four as the HTTP API.
//!
//! The app publishes on `gw/v1/{community}/alerts/{alert_id}/act` (QoS 1):
//! `{"v":1,"action":"acknowledge","by":"李军","note":null,"token":"…","request_id":"…"}`, where
//! `action` is `acknowledge`, `on_site`, `resolve` or `close` (a note is required to close) and
//! `token` is the API token. The gateway answers on `…/act/result`:
//! `{"v":1,"request_id":"…","ok":true,"state":"acknowledged"}` or `{"ok":false,"error":"…"}`,
//! and the alert's change goes out on `gw/v1/{community}/alerts/{alert_id}` as every change does.

use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::mqtt::{Acker, Commander, Incoming};
use crate::alerts::desk::Desk;
use crate::alerts::lifecycle::Action;
use crate::alerts::ActError;
use crate::metrics::events::WorkerActed;
use crate::metrics::Metrics;

/// The topic filter of actions for `community`.
pub fn subscription(community: &str) -> String {
    format!("gw/v1/{community}/alerts/+/act")
}

/// One action, as a worker app sends it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The alert it is about (from the topic).
    pub alert_id: String,
    /// What to do.
    pub action: Action,
    /// Who does it.
    pub by: String,
    /// What they found or did.
    pub note: Option<String>,
    /// The API token.
    pub token: String,
    /// Echoed in the answer, so the app can match it.
    pub request_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    v: u8,
    action: String,
    by: String,
    #[serde(default)]
    note: Option<String>,
    token: String,
    #[serde(default)]
    request_id: Option<String>,
}

/// Why an action message cannot be acted on, in words the app's developer can act on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The topic is not `gw/v1/{community}/alerts/{alert_id}/act`.
    #[error("topic must be gw/v1/{{community}}/alerts/{{alert_id}}/act")]
    Topic,
    /// The payload is not the JSON this module describes.
    #[error("payload: {0}")]
    Payload(String),
    /// The action is none of the four.
    #[error("there is no action `{0}`: acknowledge, on_site, resolve or close")]
    Action(String),
    /// `by` is empty, or `note` missing on a close.
    #[error(
        "`by` is required, and `note` to close: a case is closed by someone, with what they found"
    )]
    Incomplete,
}

/// Reads an action message; pure, so it can be fuzzed.
pub fn parse(topic: &str, payload: &[u8]) -> Result<Request, Refused> {
    let mut parts = topic.split('/');
    let (Some("gw"), Some("v1"), Some(_), Some("alerts"), Some(alert_id), Some("act"), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(Refused::Topic);
    };
    if alert_id.is_empty() || alert_id.len() > 128 {
        return Err(Refused::Topic);
    }
    let raw: Raw = serde_json::from_slice(payload).map_err(|e| Refused::Payload(e.to_string()))?;
    if raw.v != 1 {
        return Err(Refused::Payload(format!("version {} is not 1", raw.v)));
    }
    let action = Action::parse(&raw.action).ok_or(Refused::Action(raw.action.clone()))?;
    let by = raw.by.trim().to_owned();
    let note = raw
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if by.is_empty() || (action == Action::Close && note.is_none()) {
        return Err(Refused::Incomplete);
    }
    Ok(Request {
        alert_id: alert_id.to_owned(),
        action,
        by,
        note,
        token: raw.token,
        request_id: raw.request_id,
    })
}

/// Acts on every action message until `shutdown` turns true, answering each on its result
/// topic and acknowledging it to the broker once handled.
pub async fn serve(
    mut rx: mpsc::Receiver<Incoming>,
    front: Front,
    mut shutdown: watch::Receiver<bool>,
) {
    let front = Arc::new(front);
    loop {
        let m = tokio::select! {
            _ = shutdown.changed() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        // Each in its own task: one waiting on a slow disk must not hold up the queue, which
        // would hold up the broker connection and the SOS events behind it.
        tokio::spawn(front.clone().handle(m));
    }
}

/// What handling an action needs.
pub struct Front {
    /// Where actions land.
    pub desk: Desk,
    /// Acknowledges the action message to the broker.
    pub acker: Acker,
    /// Publishes the answer.
    pub commander: Commander,
    /// The API token; `None` refuses every action.
    pub api_token: Option<String>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl Front {
    async fn handle(self: Arc<Self>, m: Incoming) {
        let topic = m.publish.topic.clone();
        let parsed = parse(&topic, &m.publish.payload);
        // A topic outside the grammar gets no answer: it must not steer where we publish.
        let answerable = !matches!(parsed, Err(Refused::Topic));
        let request_id = parsed.as_ref().ok().and_then(|r| r.request_id.clone());
        let (outcome, answer) = match parsed {
            Err(e) => ("bad", Err(e.to_string())),
            Ok(r) => self.act(r).await,
        };
        WorkerActed {
            topic: &topic,
            outcome,
            error: answer.as_ref().err().map(String::as_str),
        }
        .emit(&self.metrics);
        let body = match answer {
            Ok(state) => {
                serde_json::json!({"v": 1, "request_id": request_id, "ok": true, "state": state})
            }
            Err(error) => {
                serde_json::json!({"v": 1, "request_id": request_id, "ok": false, "error": error})
            }
        };
        if answerable {
            self.commander
                .publish(format!("{topic}/result"), body.to_string().into_bytes());
        }
        self.acker.ack(m.publish);
    }

    async fn act(&self, r: Request) -> (&'static str, Result<&'static str, String>) {
        let Some(token) = &self.api_token else {
            return (
                "refused",
                Err(
                    "actions are turned off: start the gateway with GRIDWATCH_API_TOKEN set".into(),
                ),
            );
        };
        if !crate::auth::token_matches(&r.token, token) {
            return ("refused", Err("`token` is not the API token".into()));
        }
        match self
            .desk
            .act(&r.alert_id, r.action, &r.by, r.note.as_deref())
            .await
        {
            Ok(alert) => ("done", Ok(alert.state.as_str())),
            Err(e @ ActError::NotFound(_)) => ("not_found", Err(e.to_string())),
            Err(e @ ActError::Wrong(_)) => ("conflict", Err(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOPIC: &str = "gw/v1/yg/alerts/0192-abc/act";

    #[test]
    fn an_action_is_read_from_its_topic_and_payload() {
        let r = parse(
            TOPIC,
            r#"{"v":1,"action":"acknowledge","by":" 李军 ","token":"t","request_id":"r1"}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.alert_id, "0192-abc");
        assert_eq!((r.action, r.by.as_str()), (Action::Acknowledge, "李军"));
        assert_eq!(r.request_id.as_deref(), Some("r1"));
    }

    #[test]
    fn every_refusal_says_what_to_fix() {
        let close = r#"{"v":1,"action":"close","by":"李军","token":"t","note":"  "}"#.as_bytes();
        assert_eq!(parse(TOPIC, close), Err(Refused::Incomplete));
        let bad_action = br#"{"v":1,"action":"ack","by":"x","token":"t"}"#;
        assert_eq!(parse(TOPIC, bad_action), Err(Refused::Action("ack".into())));
        assert_eq!(
            parse("gw/v1/yg/alerts/a/b/act", bad_action),
            Err(Refused::Topic)
        );
        let v2 = br#"{"v":2,"action":"close","by":"x","token":"t","note":"n"}"#;
        assert!(matches!(parse(TOPIC, v2), Err(Refused::Payload(_))));
        let extra = br#"{"v":1,"action":"close","by":"x","token":"t","note":"n","x":1}"#;
        assert!(matches!(parse(TOPIC, extra), Err(Refused::Payload(_))));
        assert!(matches!(parse(TOPIC, b"\xff"), Err(Refused::Payload(_))));
    }

    proptest! {
        #[test]
        fn no_input_panics(topic in ".{0,80}", payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&topic, &payload);
        }
    }
}
