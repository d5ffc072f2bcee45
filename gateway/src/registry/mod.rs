//! The community registry: who and what the gateway knows.
//!
//! One TOML file names the community, its buildings and grids, every device (id, kind, building,
//! grid, location), the grid workers and who is on duty for which grid. The registry, not a
//! device's payload, decides a device's kind and place. Loading checks every id against the topic
//! grammar and every reference against its target, and reports all problems at once with lines.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::notify::Channel;
use toml::Spanned;

pub mod files;
pub mod sheets;

use crate::catalogue::Catalogue;
use crate::roster::{self, Gap, RawShift, Role, Roster, Zone};
use gridwatch_edge_rules::Level;

/// The topic level alerts use (`gw/v1/{community}/alerts/{alert_id}`), so no device may have it
/// as its id: its `…/telemetry` would reach every worker app as an alert change.
pub const RESERVED_DEVICE_ID: &str = "alerts";

/// Whether `s` is a valid community or device id: `[A-Za-z0-9_-]{1,64}`.
pub fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// Shared text: devices in one building share its id and name, so a registry of 100,000
/// devices holds each building's strings once.
pub type Text = Arc<str>;

/// A registered device with its place, as alerts and the time-series store describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Device id, unique in the community.
    pub id: Text,
    /// Device kind, from the kind catalogue.
    pub kind: Text,
    /// Community id.
    pub community: Text,
    /// Building id.
    pub building: Text,
    /// Building name, for people.
    pub building_name: Text,
    /// Grid id.
    pub grid: Text,
    /// Grid name, for people.
    pub grid_name: Text,
    /// Where in the building, for the worker who goes there.
    pub location: Text,
    /// Tags that rules can select on, such as `living_alone` for an elderly resident's SOS button.
    #[serde(default, skip_serializing_if = "<[Text]>::is_empty")]
    pub tags: Box<[Text]>,
}

/// A grid worker and the ways to reach them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    /// Worker id.
    pub id: String,
    /// Name, for people.
    pub name: String,
    /// Phone number, shown to the control room and @-mentioned in group robots.
    pub phone: Option<String>,
    /// Every way to reach them; each alert goes out on all of them.
    pub reach: Vec<Reach>,
}

/// One way to reach a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    /// How.
    pub channel: Channel,
    /// Where: a URL, or an e-mail address.
    pub target: String,
    /// The robot's signing secret (DingTalk 加签, Feishu 签名校验), if it has one.
    pub secret: Option<String>,
}

impl Worker {
    /// A worker reachable only by a signed webhook at `url`.
    pub fn with_webhook(id: &str, name: &str, url: Option<&str>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            phone: None,
            reach: url
                .map(|u| Reach {
                    channel: Channel::Webhook,
                    target: u.into(),
                    secret: None,
                })
                .into_iter()
                .collect(),
        }
    }

    /// The signing secret of this worker's `channel`, if any.
    pub fn secret(&self, channel: Channel) -> Option<&str> {
        self.reach
            .iter()
            .find(|r| r.channel == channel)
            .and_then(|r| r.secret.as_deref())
    }
}

/// The loaded, cross-checked registry.
#[derive(Debug)]
pub struct Registry {
    /// Community id.
    pub community: String,
    /// Community name, for people.
    pub community_name: String,
    devices: HashMap<Text, Arc<Device>>,
    catalogue: Arc<Catalogue>,
    grids: Vec<(String, String)>,
    staff: RwLock<Arc<Staff>>,
}

/// Who works for the community and when: the workers, who holds each role on a grid all the
/// time (`[[duty]]`, `duty_officer`) and the shifts that take over from them. It is what a
/// change to the registry file replaces while the gateway runs.
#[derive(Debug)]
pub struct Staff {
    workers: HashMap<String, Arc<Worker>>,
    on_duty: HashMap<String, String>,
    backups: HashMap<String, String>,
    leaders: HashMap<String, String>,
    duty_officer: Option<String>,
    roster: Roster,
}

impl Staff {
    /// The worker with this id.
    pub fn worker(&self, id: &str) -> Option<&Arc<Worker>> {
        self.workers.get(id)
    }

    /// Whoever holds `role` for `grid` at `at_ms`: the shift that covers it, or else the
    /// always-on assignment.
    pub fn holder(&self, grid: &str, role: Role, at_ms: u64) -> Option<&Arc<Worker>> {
        let id = self.roster.who(grid, role, at_ms).or_else(|| {
            match role {
                Role::OnDuty => self.on_duty.get(grid),
                Role::Backup => self.backups.get(grid),
                Role::Leader => self.leaders.get(grid),
                Role::DutyOfficer => self.duty_officer.as_ref(),
            }
            .map(String::as_str)
        })?;
        self.workers.get(id)
    }

    /// Who an alert in `grid` goes to at each of `levels` at `at_ms`, in order: `None` for a
    /// level nobody fills then.
    pub fn chain(&self, grid: &str, levels: &[Level], at_ms: u64) -> Vec<Option<Arc<Worker>>> {
        levels
            .iter()
            .map(|&level| {
                let role = match level {
                    Level::OnDuty => Role::OnDuty,
                    Level::Backup => Role::Backup,
                    Level::GridLeader => Role::Leader,
                    Level::DutyOfficer => Role::DutyOfficer,
                };
                self.holder(grid, role, at_ms).cloned()
            })
            .collect()
    }

    /// The first stretch within `horizon_ms` of `from_ms` when each of `grids` has nobody on
    /// duty (no shift, no always-on worker).
    pub fn gaps(&self, grids: &[&str], from_ms: u64, horizon_ms: u64) -> Vec<Gap> {
        self.roster
            .gaps(grids, Role::OnDuty, from_ms, horizon_ms, |g| {
                self.on_duty.contains_key(g)
            })
    }

    /// Every worker.
    pub fn workers(&self) -> impl Iterator<Item = &Arc<Worker>> {
        self.workers.values()
    }

    /// The community's time zone.
    pub fn zone(&self) -> &Zone {
        self.roster.zone()
    }

    /// How many shifts the roster has.
    pub fn shifts(&self) -> usize {
        self.roster.len()
    }
}

impl Registry {
    /// The device with this id.
    pub fn device(&self, id: &str) -> Option<&Arc<Device>> {
        self.devices.get(id)
    }

    /// All devices, in no particular order.
    pub fn devices(&self) -> impl Iterator<Item = &Arc<Device>> {
        self.devices.values()
    }

    /// The kind catalogue the devices were checked against.
    pub fn catalogue(&self) -> &Arc<Catalogue> {
        &self.catalogue
    }

    /// Who works for the community and when, as the registry file says now.
    pub fn staff(&self) -> Arc<Staff> {
        self.staff.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the staff (workers, duty, shifts) of `newer`, a later reading of the same file;
    /// returns whether its devices differ from these, which takes a restart.
    pub fn take_staff(&self, newer: Registry) -> bool {
        let devices_differ = newer.devices.len() != self.devices.len()
            || newer
                .devices
                .iter()
                .any(|(id, d)| self.devices.get(id).is_none_or(|mine| mine != d));
        let staff = newer.staff();
        *self.staff.write().unwrap_or_else(|e| e.into_inner()) = staff;
        devices_differ
    }

    /// The grid ids.
    pub fn grids(&self) -> impl Iterator<Item = &str> {
        self.grids.iter().map(|(id, _)| id.as_str())
    }

    /// The name of the grid `id`, for people; the id itself if the grid is unknown.
    pub fn grid_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.grids
            .iter()
            .find(|(g, _)| g == id)
            .map_or(id, |(_, name)| name.as_str())
    }

    /// The worker on duty for `grid` at `at_ms`.
    pub fn on_duty(&self, grid: &str, at_ms: u64) -> Option<Arc<Worker>> {
        self.staff().holder(grid, Role::OnDuty, at_ms).cloned()
    }

    /// Reads and checks a registry file against `catalogue`.
    pub fn load(path: &Path, catalogue: Arc<Catalogue>) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let parsed =
            Self::parse_with(&text, catalogue).map_err(|problems| RegistryError::Invalid {
                path: path.display().to_string(),
                problems,
            });
        drop(text);
        release_free_memory();
        parsed
    }

    /// Parses and checks registry text against the built-in kind catalogue.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        Self::parse_with(text, Arc::new(Catalogue::builtin()))
    }

    /// Parses and checks registry text against `catalogue`, returning every problem found.
    pub fn parse_with(text: &str, catalogue: Arc<Catalogue>) -> Result<Self, Vec<String>> {
        let raw: RawRegistry = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        raw.check(text, catalogue)
    }
}

/// Reads the registry file at `path` again whenever it changes (looked at every `every`), and
/// takes its staff: workers, duty and shifts change without a restart; devices need one. A file
/// with problems changes nothing and says why.
pub async fn watch(
    registry: Arc<Registry>,
    path: std::path::PathBuf,
    every: std::time::Duration,
    metrics: Arc<crate::metrics::Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use crate::metrics::events::{RosterReloadFailed, RosterReloaded};
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    let mut seen = stamp(&path);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        let now = stamp(&path);
        if now.is_none() || now == seen {
            continue;
        }
        seen = now;
        let (p, catalogue) = (path.clone(), registry.catalogue().clone());
        match tokio::task::spawn_blocking(move || Registry::load(&p, catalogue)).await {
            Ok(Ok(newer)) => {
                let devices_differ = registry.take_staff(newer);
                let staff = registry.staff();
                RosterReloaded {
                    workers: staff.workers().count(),
                    shifts: staff.shifts(),
                    devices_differ,
                }
                .emit(&metrics);
            }
            Ok(Err(e)) => RosterReloadFailed { error: &e }.emit(&metrics),
            Err(e) => RosterReloadFailed { error: &e }.emit(&metrics),
        }
    }
}

/// Hands freed heap memory back to the system: parsing a large registry peaks at several times
/// what the result keeps (about 2.5× for 100,000 devices), and glibc would otherwise keep those
/// pages in the process for good. Also called once the rule engine is built.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Why a registry could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read.
    #[error("cannot read registry file {path} (write one as the README's \"Registry file\" shows, or point registry.path at it)")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file has problems.
    #[error("registry file {path} has {} problem(s):\n{}", .problems.len(), .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { path: String, problems: Vec<String> },
}

type Id = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    community: RawCommunity,
    #[serde(default)]
    buildings: Vec<RawBuilding>,
    #[serde(default)]
    grids: Vec<RawGrid>,
    #[serde(default)]
    workers: Vec<RawWorker>,
    #[serde(default)]
    duty: Vec<RawDuty>,
    #[serde(default)]
    shifts: Vec<RawShift>,
    #[serde(default)]
    devices: Vec<RawDevice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommunity {
    id: Id,
    name: String,
    duty_officer: Option<Id>,
    time_zone: Option<Id>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuilding {
    id: Id,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrid {
    id: Id,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    id: Id,
    name: String,
    phone: Option<String>,
    webhook: Option<Spanned<String>>,
    email: Option<Spanned<String>>,
    wecom: Option<Spanned<String>>,
    dingtalk: Option<Spanned<String>>,
    dingtalk_secret: Option<String>,
    feishu: Option<Spanned<String>>,
    feishu_secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDuty {
    grid: Id,
    /// Left out when shifts cover the grid's on-duty role and only backup or leader are fixed.
    worker: Option<Id>,
    backup: Option<Id>,
    leader: Option<Id>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    id: Id,
    kind: Id,
    building: Id,
    grid: Id,
    location: String,
    #[serde(default)]
    tags: Vec<String>,
}

struct Problems<'t> {
    text: &'t str,
    list: Vec<String>,
}

impl Problems<'_> {
    fn at(&mut self, spanned: &Id, message: String) {
        let line = crate::config::line_at(self.text, spanned.span().start);
        self.list.push(format!("line {line}: {message}"));
    }

    /// Records an id that breaks the grammar or repeats, and returns whether it is usable.
    fn unique_id(&mut self, what: &str, id: &Id, seen: &mut HashMap<String, ()>) -> bool {
        if !is_id(id.get_ref()) {
            self.at(
                id,
                format!(
                    "{what} id {:?} must match [A-Za-z0-9_-]{{1,64}}",
                    id.get_ref()
                ),
            );
            false
        } else if seen.insert(id.get_ref().clone(), ()).is_some() {
            self.at(id, format!("{what} id {:?} is listed twice", id.get_ref()));
            false
        } else {
            true
        }
    }
}

impl RawRegistry {
    fn check(self, text: &str, catalogue: Arc<Catalogue>) -> Result<Registry, Vec<String>> {
        let mut p = Problems {
            text,
            list: Vec::new(),
        };
        p.unique_id("community", &self.community.id, &mut HashMap::new());
        let mut seen = HashMap::new();
        let buildings: HashMap<&str, (Text, Text)> = self
            .buildings
            .iter()
            .filter(|b| p.unique_id("building", &b.id, &mut seen))
            .map(|b| {
                (
                    b.id.get_ref().as_str(),
                    (b.id.get_ref().as_str().into(), b.name.as_str().into()),
                )
            })
            .collect();
        let mut seen = HashMap::new();
        let grids: HashMap<&str, (Text, Text)> = self
            .grids
            .iter()
            .filter(|g| p.unique_id("grid", &g.id, &mut seen))
            .map(|g| {
                (
                    g.id.get_ref().as_str(),
                    (g.id.get_ref().as_str().into(), g.name.as_str().into()),
                )
            })
            .collect();
        let kinds: HashMap<&str, Text> = catalogue
            .names()
            .into_iter()
            .map(|k| (k, Text::from(k)))
            .collect();
        let mut seen = HashMap::new();
        let mut workers = HashMap::new();
        for w in &self.workers {
            if !p.unique_id("worker", &w.id, &mut seen) {
                continue;
            }
            let mut reach = Vec::new();
            for (channel, url, secret) in [
                (Channel::Webhook, &w.webhook, None),
                (Channel::Wecom, &w.wecom, None),
                (Channel::Dingtalk, &w.dingtalk, w.dingtalk_secret.as_ref()),
                (Channel::Feishu, &w.feishu, w.feishu_secret.as_ref()),
            ] {
                let Some(url) = url else { continue };
                match reqwest::Url::parse(url.get_ref()) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => reach.push(Reach {
                        channel,
                        target: url.get_ref().clone(),
                        secret: secret.cloned(),
                    }),
                    _ => p.at(
                        url,
                        format!(
                            "{} {:?} must be an http:// or https:// URL",
                            channel.as_str(),
                            url.get_ref()
                        ),
                    ),
                }
            }
            if let Some(address) = &w.email {
                match address.get_ref().parse::<lettre::Address>() {
                    Ok(_) => reach.push(Reach {
                        channel: Channel::Email,
                        target: address.get_ref().clone(),
                        secret: None,
                    }),
                    Err(e) => p.at(
                        address,
                        format!("email {:?} is not an address: {e}", address.get_ref()),
                    ),
                }
            }
            let worker = Worker {
                id: w.id.get_ref().clone(),
                name: w.name.clone(),
                phone: w.phone.clone(),
                reach,
            };
            workers.insert(worker.id.clone(), Arc::new(worker));
        }
        let mut on_duty = HashMap::new();
        let (mut backups, mut leaders) = (HashMap::new(), HashMap::new());
        let known = |p: &mut Problems<'_>, id: &Id, role: &str| {
            let ok = workers.contains_key(id.get_ref());
            if !ok {
                p.at(
                    id,
                    format!("{role} {:?} is not in [[workers]]", id.get_ref()),
                );
            }
            ok
        };
        let duty_officer = self
            .community
            .duty_officer
            .as_ref()
            .filter(|id| known(&mut p, id, "duty_officer"))
            .map(|id| id.get_ref().clone());
        for d in &self.duty {
            for (id, role, map) in [
                (&d.backup, "backup", &mut backups),
                (&d.leader, "leader", &mut leaders),
            ] {
                if let Some(id) = id.as_ref().filter(|id| known(&mut p, id, role)) {
                    map.insert(d.grid.get_ref().clone(), id.get_ref().clone());
                }
            }
            if !grids.contains_key(d.grid.get_ref().as_str()) {
                p.at(
                    &d.grid,
                    format!(
                        "duty names grid {:?}, which is not in [[grids]]",
                        d.grid.get_ref()
                    ),
                );
            } else if let Some(worker) = &d.worker {
                if !workers.contains_key(worker.get_ref()) {
                    p.at(
                        worker,
                        format!(
                            "duty names worker {:?}, which is not in [[workers]]",
                            worker.get_ref()
                        ),
                    );
                } else if on_duty
                    .insert(d.grid.get_ref().clone(), worker.get_ref().clone())
                    .is_some()
                {
                    p.at(
                        &d.grid,
                        format!(
                            "grid {:?} has two workers on duty; keep one",
                            d.grid.get_ref()
                        ),
                    );
                }
            }
        }
        let community = self.community.id.get_ref().clone();
        let community_text: Text = community.as_str().into();
        let mut seen = HashMap::new();
        let mut devices = HashMap::with_capacity(self.devices.len());
        for d in &self.devices {
            let mut ok = p.unique_id("device", &d.id, &mut seen);
            if d.id.get_ref() == RESERVED_DEVICE_ID {
                p.at(
                    &d.id,
                    format!("device id {RESERVED_DEVICE_ID:?} is reserved: gw/v1/{{community}}/{RESERVED_DEVICE_ID}/… carries alert changes"),
                );
                ok = false;
            }
            let kind = kinds.get(d.kind.get_ref().as_str());
            if kind.is_none() {
                p.at(
                    &d.kind,
                    format!(
                        "kind {:?} is not in the kind catalogue ({})",
                        d.kind.get_ref(),
                        catalogue.names().join(", ")
                    ),
                );
                ok = false;
            }
            let building = buildings.get(d.building.get_ref().as_str());
            if building.is_none() {
                p.at(
                    &d.building,
                    format!(
                        "building {:?} is not in [[buildings]]",
                        d.building.get_ref()
                    ),
                );
            }
            let grid = grids.get(d.grid.get_ref().as_str());
            if grid.is_none() {
                p.at(
                    &d.grid,
                    format!("grid {:?} is not in [[grids]]", d.grid.get_ref()),
                );
            }
            if let (true, Some(kind), Some((building, building_name)), Some((grid, grid_name))) =
                (ok, kind, building, grid)
            {
                let id: Text = d.id.get_ref().as_str().into();
                let device = Device {
                    id: id.clone(),
                    kind: kind.clone(),
                    community: community_text.clone(),
                    building: building.clone(),
                    building_name: building_name.clone(),
                    grid: grid.clone(),
                    grid_name: grid_name.clone(),
                    location: d.location.as_str().into(),
                    tags: d.tags.iter().map(|t| Text::from(t.as_str())).collect(),
                };
                devices.insert(id, Arc::new(device));
            }
        }
        let zone = match &self.community.time_zone {
            None => Zone::default(),
            Some(name) => Zone::parse(name.get_ref()).unwrap_or_else(|e| {
                p.at(name, e.to_string());
                Zone::default()
            }),
        };
        let worker_ids: HashSet<String> = workers.keys().cloned().collect();
        let grid_ids: HashSet<String> = grids.keys().map(|g| g.to_string()).collect();
        let shifts =
            roster::check(&self.shifts, text, &worker_ids, &grid_ids).unwrap_or_else(|problems| {
                p.list.extend(problems);
                Vec::new()
            });
        if !p.list.is_empty() {
            p.list.sort_by_key(|l| {
                l.strip_prefix("line ")
                    .and_then(|l| l.split(':').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0)
            });
            return Err(p.list);
        }
        let mut grid_list: Vec<(String, String)> = grids
            .values()
            .map(|(id, name)| (id.to_string(), name.to_string()))
            .collect();
        grid_list.sort();
        Ok(Registry {
            community,
            community_name: self.community.name,
            devices,
            catalogue,
            grids: grid_list,
            staff: RwLock::new(Arc::new(Staff {
                workers,
                on_duty,
                backups,
                leaders,
                duty_officer,
                roster: Roster::new(shifts, zone),
            })),
        })
    }
}

/// A registry of one manhole cover, `mh-1` in building `b1`, grid `g1`, community `yg`: the
/// fixture of the unit tests that need a device.
#[cfg(test)]
pub(crate) fn one_manhole() -> Registry {
    Registry::parse(
        "[community]\nid = \"yg\"\nname = \"n\"\n[[buildings]]\nid = \"b1\"\nname = \"n\"\n\
         [[grids]]\nid = \"g1\"\nname = \"n\"\n[[devices]]\nid = \"mh-1\"\nkind = \"manhole\"\n\
         building = \"b1\"\ngrid = \"g1\"\nlocation = \"x\"\n",
    )
    .expect("the fixture is valid")
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_device_id_alerts_is_reserved_for_the_alert_topics() {
        let text = REGISTRY_TEXT_FOR_RESERVED;
        let problems = Registry::parse(text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("line 11: device id \"alerts\" is reserved"),
            "{problems:?}"
        );
    }

    const REGISTRY_TEXT_FOR_RESERVED: &str = r#"[community]
id = "yg"
name = "阳光"
[[buildings]]
id = "b1"
name = "1号楼"
[[grids]]
id = "g1"
name = "一网格"
[[devices]]
id = "alerts"
kind = "sos"
building = "b1"
grid = "g1"
location = "101"
"#;
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"
[community]
id = "yangguang"
name = "阳光社区"

[[buildings]]
id = "b1"
name = "1号楼"

[[grids]]
id = "g1"
name = "第一网格"

[[workers]]
id = "w1"
name = "王芳"
webhook = "http://127.0.0.1:9/hook"

[[duty]]
grid = "g1"
worker = "w1"

[[devices]]
id = "sos-101"
kind = "sos"
building = "b1"
grid = "g1"
location = "1单元101室"
"#;

    #[test]
    fn a_shift_takes_over_from_the_always_on_worker_while_it_lasts() {
        let text = GOOD.replace(
            "[[duty]]",
            "[[workers]]\nid = \"w2\"\nname = \"李军\"\nemail = \"li@example.com\"\n\n\
             [[shifts]]\ngrid = \"g1\"\nworker = \"w2\"\nfrom = \"20:00\"\nto = \"08:00\"\n\n[[duty]]",
        );
        let r = Registry::parse(&text).unwrap();
        // 2026-11-27 12:00 UTC is 20:00 in Shanghai; 00:30 UTC is 08:30.
        let evening = 1_795_780_800_000;
        let morning = evening + 12 * 3_600_000 + 1_800_000;
        assert_eq!(r.on_duty("g1", evening).unwrap().name, "李军");
        assert_eq!(r.on_duty("g1", morning).unwrap().name, "王芳");
        assert_eq!(
            r.on_duty("g1", evening).unwrap().reach[0].channel,
            Channel::Email
        );
    }

    #[test]
    fn roster_mistakes_are_reported_with_the_rest_by_line() {
        let text = GOOD.replace(
            "[[duty]]",
            "[[shifts]]\ngrid = \"g9\"\nworker = \"w1\"\nfrom = \"8am\"\nto = \"20:00\"\n\n\
             [[workers]]\nid = \"w3\"\nname = \"x\"\ndingtalk = \"ftp://x\"\n\n[[duty]]",
        );
        let problems = Registry::parse(&text).unwrap_err();
        assert!(problems.len() >= 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("g9")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("8am")), "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("dingtalk \"ftp://x\" must be")),
            "{problems:?}"
        );
        let lines: Vec<usize> = problems
            .iter()
            .filter_map(|p| p.strip_prefix("line ")?.split(':').next()?.parse().ok())
            .collect();
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{problems:?}");
    }

    #[test]
    fn a_good_registry_resolves_devices_and_duty() {
        let r = Registry::parse(GOOD).unwrap();
        let d = r.device("sos-101").unwrap();
        assert_eq!(
            (&*d.kind, &*d.building_name, &*d.grid),
            ("sos", "1号楼", "g1")
        );
        assert_eq!(&*d.community, "yangguang");
        assert_eq!(r.on_duty("g1", 0).unwrap().name, "王芳");
        assert!(r.on_duty("g2", 0).is_none());
    }

    #[test]
    fn the_escalation_chain_follows_the_levels_that_are_filled() {
        let text = GOOD
            .replace(
                "name = \"阳光社区\"",
                "name = \"阳光社区\"\nduty_officer = \"w2\"",
            )
            .replace("worker = \"w1\"", "worker = \"w1\"\nleader = \"w2\"")
            .replace(
                "[[duty]]",
                "[[workers]]\nid = \"w2\"\nname = \"张主任\"\n\n[[duty]]",
            );
        let r = Registry::parse(&text).unwrap();
        let all = [
            Level::OnDuty,
            Level::Backup,
            Level::GridLeader,
            Level::DutyOfficer,
        ];
        let chain: Vec<Option<String>> = r
            .staff()
            .chain("g1", &all, 0)
            .into_iter()
            .map(|w| w.map(|w| w.id.clone()))
            .collect();
        assert_eq!(
            chain,
            [
                Some("w1".to_string()),
                None,
                Some("w2".to_string()),
                Some("w2".to_string())
            ],
            "a level nobody fills is a gap in the chain"
        );
        let bad = text.replace("leader = \"w2\"", "leader = \"w9\"");
        let problems = Registry::parse(&bad).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("leader \"w9\"")),
            "{problems:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let bad = GOOD
            .replace("kind = \"sos\"", "kind = \"toaster\"")
            .replace("building = \"b1\"", "building = \"b9\"")
            .replace("worker = \"w1\"", "worker = \"w7\"")
            .replace("id = \"sos-101\"", "id = \"sos 101\"");
        let problems = Registry::parse(&bad).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0].starts_with("line 21: duty names worker \"w7\""),
            "{problems:#?}"
        );
        assert!(
            problems[1].starts_with("line 24: device id \"sos 101\""),
            "{problems:#?}"
        );
        assert!(
            problems[2].starts_with("line 25: kind \"toaster\""),
            "{problems:#?}"
        );
        assert!(
            problems[3].starts_with("line 26: building \"b9\""),
            "{problems:#?}"
        );
    }

    #[test]
    fn unknown_fields_are_errors() {
        let problems = Registry::parse(&GOOD.replace("location =", "locaton =")).unwrap_err();
        assert!(problems[0].contains("locaton"), "{problems:?}");
    }

    #[test]
    fn a_device_cannot_take_the_alerts_topic_level() {
        let problems =
            Registry::parse(&GOOD.replace("id = \"sos-101\"", "id = \"alerts\"")).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("line 24: device id \"alerts\" is reserved"),
            "{problems:?}"
        );
    }

    #[test]
    fn ids_follow_the_topic_grammar() {
        assert!(is_id("sos-101_A"));
        assert!(!is_id(""));
        assert!(!is_id("a/b"));
        assert!(!is_id("a+b"));
        assert!(!is_id(&"x".repeat(65)));
    }

    /// Whether an MQTT topic filter matches a topic name.
    fn filter_matches(filter: &str, topic: &str) -> bool {
        let (mut f, mut t) = (filter.split('/'), topic.split('/'));
        loop {
            match (f.next(), t.next()) {
                (Some("#"), _) | (None, None) => return true,
                (Some("+"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                _ => return false,
            }
        }
    }

    /// Ids as a registry file or spreadsheet might carry them: valid ones, the level the alerts
    /// use, and strings full of topic separators, wildcards, NUL, line breaks and non-ASCII.
    fn any_id() -> impl Strategy<Value = String> {
        let nasty = prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(vec!['/', '+', '#', '\0', '\n', ' ', ',', '=', '"', '\\', '$', 'é', '井', 'a', '-']),
                1 => any::<char>(),
            ],
            0..8,
        )
        .prop_map(|cs| cs.into_iter().collect::<String>());
        prop_oneof![
            "[A-Za-z0-9_-]{1,64}",
            nasty,
            prop::sample::select(vec!["alerts", "+", "#", "$SYS", "cmd", "event", "act"])
                .prop_map(String::from),
        ]
    }

    proptest! {
        #[test]
        fn no_id_the_registry_accepts_can_change_a_topics_shape(community in any_id(), device in any_id()) {
            let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
            let text = format!(
                "[community]\nid = {}\nname = \"n\"\n[[buildings]]\nid = \"b1\"\nname = \"n\"\n\
                 [[grids]]\nid = \"g1\"\nname = \"n\"\n[[devices]]\nid = {}\nkind = \"sos\"\n\
                 building = \"b1\"\ngrid = \"g1\"\nlocation = \"x\"\n",
                quote(&community),
                quote(&device)
            );
            if Registry::parse(&text).is_err() {
                return Ok(());
            }
            let alert_filters = [
                format!("gw/v1/{community}/alerts/+"),
                crate::ingest::actions::subscription(&community),
            ];
            for channel in ["telemetry", "event", "status", "cmd"] {
                // Built as the gateway builds device topics (ingest::mqtt, decode::topic).
                let topic = format!("gw/v1/{community}/{device}/{channel}");
                prop_assert_eq!(topic.split('/').count(), 5, "{:?}", topic);
                prop_assert!(!topic.contains(['+', '#', '\0']), "{:?}", topic);
                for filter in &alert_filters {
                    prop_assert!(!filter_matches(filter, &topic), "{:?} lands in the alerts' {:?}", topic, filter);
                }
                let subscribed = crate::ingest::mqtt::SUBSCRIPTIONS.iter().any(|f| filter_matches(f, &topic));
                prop_assert_eq!(subscribed, channel != "cmd", "{:?}", topic);
                if let Ok(t) = crate::decode::topic::parse(&topic) {
                    prop_assert_eq!((t.community, t.device, t.channel.as_str()), (community.as_str(), device.as_str(), channel));
                } else {
                    prop_assert_eq!(channel, "cmd");
                }
            }
        }
    }
}
