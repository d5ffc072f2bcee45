//! The control-room screen: the page at `/` (its files are in `dashboards/screen/`, built into
//! the binary, so nothing is built or installed on the user's machine), the overview it shows
//! beside the alerts, and the server-sent events that keep it live without polling.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::stream::{self, Stream};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use super::AppState;
use crate::alerts::{Alert, AlertBook, State as CaseState};
use crate::registry::Registry;
use crate::sinks::occupancy::Spaces;

const INDEX: &str = include_str!("../../../dashboards/screen/index.html");
const SCRIPT: &str = include_str!("../../../dashboards/screen/app.js");
const STYLE: &str = include_str!("../../../dashboards/screen/style.css");

/// `/`: the page.
#[utoipa::path(get, path = "/", tag = "screen", responses(
    (status = 200, description = "The control-room page", content_type = "text/html", body = String),
))]
pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX)
}

/// `/screen/app.js`.
#[utoipa::path(get, path = "/screen/app.js", tag = "screen", responses(
    (status = 200, description = "The page's script", content_type = "text/javascript", body = String),
))]
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

/// `/screen/style.css`.
#[utoipa::path(get, path = "/screen/style.css", tag = "screen", responses(
    (status = 200, description = "The page's style sheet", content_type = "text/css", body = String),
))]
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// One line of the live ticker: an event a device reported.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TickerItem {
    /// When the gateway took it, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The device.
    pub device: String,
    /// Its kind.
    pub kind: String,
    /// The event.
    pub event: String,
    /// The building's name.
    pub building_name: String,
    /// Where in the building.
    pub location: String,
}

/// `GET /api/v1/events`: server-sent events, `alert` (an alert as it changed) and `ticker` (a
/// device's event), and `resync` when this listener fell behind and should fetch the lists
/// again. Browsers reconnect by themselves; the page fetches the lists on every (re)connect.
#[utoipa::path(get, path = "/api/v1/events", tag = "screen", responses(
    (status = 200, description = "Server-sent events: `alert` (an alert as it changed, the JSON of \
        `GET /api/v1/alerts/{id}` without timeline), `ticker` (a device's event, a TickerItem), \
        `resync` (this listener fell behind: fetch the lists again); a comment every 15 s keeps \
        the connection open", content_type = "text/event-stream", body = String),
))]
pub async fn events(
    State(s): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let alerts = s.desk.alert_changes.subscribe();
    let ticker = s.ticker.subscribe();
    let state = (alerts, ticker, s.shutdown.clone());
    let stream = stream::unfold(state, |(mut alerts, mut ticker, mut stop)| async move {
        let event = tokio::select! {
            _ = stop.changed() => return None,
            a = alerts.recv() => match a {
                Ok(alert) => Event::default().event("alert").json_data(alert),
                Err(RecvError::Lagged(_)) => Ok(Event::default().event("resync").data("{}")),
                Err(RecvError::Closed) => return None,
            },
            t = ticker.recv() => match t {
                Ok(item) => Event::default().event("ticker").json_data(item),
                Err(RecvError::Lagged(_)) => Ok(Event::default().event("resync").data("{}")),
                Err(RecvError::Closed) => return None,
            },
        };
        let event = event.unwrap_or_else(|_| Event::default().event("resync").data("{}"));
        Some((Ok(event), (alerts, ticker, stop)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Devices of one building or grid, and how many are offline or low on battery.
#[derive(Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Health {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Devices registered.
    pub devices: usize,
    /// With a `device_offline` alert open.
    pub offline: usize,
    /// With a `low_battery` alert open.
    pub low_battery: usize,
}

/// Today's cases, from local midnight.
#[derive(Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Today {
    /// Alerts opened today.
    pub opened: usize,
    /// Of those, closed by a person.
    pub closed: usize,
    /// `closed / opened`, or `None` with nothing opened.
    pub closure_rate: Option<f64>,
    /// Median seconds from opening to acknowledgement, of today's acknowledged alerts.
    pub median_ack_s: Option<f64>,
    /// Median seconds from opening to someone on site.
    pub median_on_site_s: Option<f64>,
}

/// What the screen shows beside the alerts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    /// The community's name.
    pub community: String,
    /// Per building.
    pub buildings: Vec<Health>,
    /// Per grid.
    pub grids: Vec<Health>,
    /// Free and taken spaces per building, where sensors watch spaces.
    pub spaces: Vec<Spaces>,
    /// Today's figures.
    pub today: Today,
    /// The gateway's clock, so the page's countdowns agree with it.
    pub now_ms: u64,
}

/// `GET /api/v1/overview`.
#[utoipa::path(get, path = "/api/v1/overview", tag = "screen", responses(
    (status = 200, description = "Device health per building and grid, today's case figures, \
        the gateway's clock", body = Overview),
))]
pub async fn overview(State(s): State<AppState>) -> impl IntoResponse {
    let now = crate::clock::now_ms();
    let (_, minute) = s.registry.staff().zone().local(now);
    let midnight = now - u64::from(minute) * 60_000 - now % 60_000;
    let spaces = s.occupancy.per_building(&s.registry);
    let book = s.alerts.read().unwrap_or_else(|e| e.into_inner());
    Json(build(&s.registry, &book, spaces, midnight, now))
}

/// The overview of `registry` with the alerts in `book` and the watched `spaces`, today
/// starting at `midnight`.
pub fn build(
    registry: &Registry,
    book: &AlertBook,
    spaces: Vec<Spaces>,
    midnight: u64,
    now_ms: u64,
) -> Overview {
    // An open alert of the default rule says so; one a person resolved no longer counts.
    let has = |device: &str, rule: &str| {
        book.open_alert(device, rule)
            .is_some_and(|a| a.resolved_at.is_none())
    };
    let mut buildings: BTreeMap<String, Health> = BTreeMap::new();
    let mut grids: BTreeMap<String, Health> = BTreeMap::new();
    for d in registry.devices() {
        for (map, id, name) in [
            (&mut buildings, &d.building, &d.building_name),
            (&mut grids, &d.grid, &d.grid_name),
        ] {
            let h = map.entry(id.to_string()).or_insert_with(|| Health {
                id: id.to_string(),
                name: name.to_string(),
                ..Health::default()
            });
            h.devices += 1;
            h.offline += usize::from(has(&d.id, "device_offline"));
            h.low_battery += usize::from(has(&d.id, "low_battery"));
        }
    }
    Overview {
        community: registry.community_name.clone(),
        buildings: buildings.into_values().collect(),
        grids: grids.into_values().collect(),
        spaces,
        today: today(book.iter(), midnight),
        now_ms,
    }
}

/// Today's figures from `alerts`; storm members count once, through their storm.
pub fn today<'a>(alerts: impl Iterator<Item = &'a Alert>, midnight: u64) -> Today {
    let todays: Vec<&Alert> = alerts
        .filter(|a| a.started_at >= midnight && a.grouped_into.is_none())
        .collect();
    let took = |state: CaseState| {
        let mut secs: Vec<f64> = todays
            .iter()
            .filter_map(|a| {
                let step = a.timeline.iter().find(|s| s.state == state)?;
                Some(step.at_ms.saturating_sub(a.started_at) as f64 / 1000.0)
            })
            .collect();
        median(&mut secs)
    };
    let opened = todays.len();
    let closed = todays.iter().filter(|a| a.closed.is_some()).count();
    Today {
        opened,
        closed,
        closure_rate: (opened > 0).then(|| closed as f64 / opened as f64),
        median_ack_s: took(CaseState::Acknowledged),
        median_on_site_s: took(CaseState::OnSite),
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_empty_lists() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
