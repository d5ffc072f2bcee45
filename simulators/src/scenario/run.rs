//! Runs a scenario against a gateway: its community's virtual devices over the gateway's MQTT
//! broker, its incidents at their simulated times, and the gateway's alert list read every
//! [`RunOptions::poll_every`] to check what the scenario expects ([`super::check`]).
//!
//! The run ends once every incident has started, every expectation is decided and the
//! scenario's `duration` has passed. Then, if [`RunOptions::close`] says so, the alerts the run
//! opened are closed through the API, so that the next run opens them afresh.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::api::{ApiError, GatewayApi};
use super::check::{Checker, Now, SeenAlert, Verdict};
use super::{Expectation, Scenario, ScenarioError, Step};
use crate::community::{Community, SpecError};
use crate::fleet::{self, Broker, FleetStats};
use crate::sim::{Happening, SimError, Simulation};
use crate::store::{SeqStore, StoreError};

/// Where the scenario runs.
#[derive(Clone, Debug)]
pub struct Target {
    /// The broker the gateway reads.
    pub broker: Broker,
    /// The gateway's HTTP base URL (`http://127.0.0.1:8080`).
    pub gateway: String,
}

/// Closes what a run opened, as `by`, with the API token.
#[derive(Clone, Debug)]
pub struct Closer {
    /// The gateway's API token.
    pub token: String,
    /// Who closes them.
    pub by: String,
}

/// How to run it.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The speed, instead of the scenario's.
    pub speed: Option<f64>,
    /// Where the devices' sequence numbers are kept between runs; in memory when `None` (then a
    /// gateway that has seen these devices refuses them as replays).
    pub state_dir: Option<PathBuf>,
    /// How often the gateway's alerts are read.
    pub poll_every: Duration,
    /// Close the alerts the run opened, once it is over.
    pub close: Option<Closer>,
    /// The community to run in instead of the scenario's generated one (the devices of a
    /// gateway's registry); it must have every device the scenario names.
    pub community: Option<Community>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            speed: None,
            state_dir: None,
            poll_every: Duration::from_millis(500),
            close: None,
            community: None,
        }
    }
}

/// What a run is doing, for whoever watches it.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The devices are connecting.
    Began {
        /// The scenario.
        scenario: &'a Scenario,
        /// How many devices run.
        devices: usize,
        /// At what speed.
        speed: f64,
    },
    /// An incident began.
    Started(&'a Step),
    /// An incident is over.
    Ended(&'a Step),
    /// An expectation is decided.
    Decided(&'a Expectation, &'a Verdict),
    /// Strict mode saw an alert nobody expected.
    Unexpected(&'a SeenAlert),
}

/// Why a run could not be done (as opposed to done and failed).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The community could not be generated.
    #[error(transparent)]
    Community(#[from] SpecError),
    /// The community given lacks a device the scenario names.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The devices' memory could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The simulation refused the scenario.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The gateway did not answer.
    #[error("the gateway: {0}")]
    Gateway(#[from] ApiError),
}

/// What a run found.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario's name.
    pub scenario: String,
    /// Each expectation with its verdict, in scenario order.
    pub verdicts: Vec<(Expectation, Verdict)>,
    /// Alerts strict mode did not expect.
    pub unexpected: Vec<SeenAlert>,
    /// Alerts the run closed at its end.
    pub closed: usize,
    /// What the devices sent.
    pub fleet: FleetStats,
}

impl Outcome {
    /// Whether every expectation was met and nothing unexpected opened.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|(_, v)| v.passed) && self.unexpected.is_empty()
    }
}

/// One line for a verdict: `✅ …` or `❌ …`.
pub fn verdict_line(expectation: &Expectation, v: &Verdict) -> String {
    let mark = if v.passed { "✅" } else { "❌" };
    let after = format!("{:.1} s", v.after_ms as f64 / 1000.0);
    let detail = v
        .detail
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    format!("{mark} {expectation} (after {after}{detail})")
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (e, v) in &self.verdicts {
            writeln!(f, "  {}", verdict_line(e, v))?;
        }
        for a in &self.unexpected {
            writeln!(
                f,
                "  ❌ unexpected: {} on {} ({})",
                a.rule, a.device.id, a.alert_id
            )?;
        }
        let met = self.verdicts.iter().filter(|(_, v)| v.passed).count();
        write!(
            f,
            "{}: {} — {met} of {} expectations met, {} unexpected alerts; {} messages sent, {} lost",
            self.scenario,
            if self.passed() { "PASS" } else { "FAIL" },
            self.verdicts.len(),
            self.unexpected.len(),
            self.fleet.published,
            self.fleet.lost
        )
    }
}

/// How long the gateway may stay unreachable during a run before it is given up.
const UNREACHABLE: Duration = Duration::from_secs(20);

/// Runs `scenario` against `target`, telling `progress` as it goes.
pub async fn run(
    scenario: &Scenario,
    target: &Target,
    opts: &RunOptions,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Outcome, RunError> {
    let speed = opts.speed.unwrap_or(scenario.speed).max(0.01);
    let community = match &opts.community {
        Some(c) => {
            scenario.check_in(c)?;
            c.clone()
        }
        None => scenario.community.generate()?,
    };
    let store = match &opts.state_dir {
        Some(dir) => SeqStore::open(dir, &community.id)?,
        None => SeqStore::in_memory(),
    };
    let mut sim = Simulation::new(&community, store)?;
    for (id, kind) in sim.skipped() {
        tracing::warn!("{id} is a {kind}, which the simulator cannot run yet: it is left out");
    }
    for step in &scenario.steps {
        sim.plan(
            &step.device,
            step.at_ms,
            step.incident.clone(),
            step.lasts.map(|l| l.sim_ms(speed)),
        )?;
    }
    let api = GatewayApi::new(&target.gateway)?;
    let mut checker = Checker::new(scenario);
    checker.baseline(&api.alerts().await?);
    progress(Progress::Began {
        scenario,
        devices: sim.len(),
        speed,
    });

    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let (handle, fleet) = fleet::fleet(sim, target.broker.clone(), speed);
    let (stop, stopped) = oneshot::channel::<()>();
    let devices = fleet.report_to(reports_tx).run(async {
        let _ = stopped.await;
    });
    let began = Instant::now();
    let watch = async {
        let mut poll = tokio::time::interval(opts.poll_every);
        let mut reachable = Instant::now();
        let result = loop {
            tokio::select! {
                Some(report) = reports.recv() => match report.happening {
                    Happening::Started(n) => {
                        let real_ms = report.at.saturating_duration_since(began).as_millis() as u64;
                        checker.started(n, Now { real_ms, sim_ms: report.sim_ms });
                        progress(Progress::Started(&scenario.steps[n]));
                    }
                    Happening::Ended(n) => progress(Progress::Ended(&scenario.steps[n])),
                },
                _ = poll.tick() => {
                    let alerts = match api.alerts().await {
                        Ok(alerts) => alerts,
                        Err(e) if reachable.elapsed() < UNREACHABLE => {
                            tracing::warn!("reading the gateway's alerts: {e}");
                            continue;
                        }
                        Err(e) => break Err(RunError::Gateway(e)),
                    };
                    reachable = Instant::now();
                    let now = Now {
                        real_ms: began.elapsed().as_millis() as u64,
                        sim_ms: handle.sim_ms(),
                    };
                    let seen_before = checker.unexpected().len();
                    for v in checker.observe(now, &alerts) {
                        let step = &scenario.steps[v.step];
                        progress(Progress::Decided(&step.expect[v.expectation], &v));
                    }
                    for a in &checker.unexpected()[seen_before..] {
                        progress(Progress::Unexpected(a));
                    }
                    if checker.done() && now.sim_ms >= scenario.duration_ms {
                        break Ok(());
                    }
                }
            }
        };
        let _ = stop.send(());
        result
    };
    let (fleet, watched) = tokio::join!(devices, watch);
    watched?;
    let mut closed = 0;
    if let Some(closer) = &opts.close {
        for id in checker.opened() {
            let note = format!(
                "场景 {} 结束 / scenario {} is over",
                scenario.name, scenario.name
            );
            match api.close(id, &closer.token, &closer.by, &note).await {
                Ok(()) => closed += 1,
                // Already closed by someone watching: that is fine.
                Err(ApiError::Status { status, .. }) if status.as_u16() == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let verdicts = checker
        .verdicts()
        .into_iter()
        .map(|v| (scenario.steps[v.step].expect[v.expectation].clone(), v))
        .collect();
    Ok(Outcome {
        scenario: scenario.name.clone(),
        verdicts,
        unexpected: checker.unexpected().to_vec(),
        closed,
        fleet,
    })
}
