//! `gridwatch-sim`: drives virtual devices against an MQTT broker. Thin: arguments, files, then
//! the library's load engine.
//!
//! ```text
//! gridwatch-sim registry --devices 10000 --out registry.toml [--keys-out device-keys.toml]
//! gridwatch-sim load --broker 127.0.0.1:1883 --devices 10000 --rate 1 --duration 60s
//! gridwatch-sim faults --broker 127.0.0.1:1883 --flood 2 --malformed 3 --replay 2 --offline 2
//! ```

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use gridwatch_edge_rules::duration::parse_ms;
use gridwatch_simulators::faults::Faults;
use gridwatch_simulators::load::pool::Broker;
use gridwatch_simulators::load::readings::Kind;
use gridwatch_simulators::load::registry::{self, is_id, DeviceSpec, Keys};
use gridwatch_simulators::load::report::Label;
use gridwatch_simulators::load::{self, Group, Plan, Steady};
use rumqttc::QoS;

#[derive(Parser)]
#[command(
    name = "gridwatch-sim",
    version,
    about = "Virtual Gridwatch devices, each a real firmware node, against any MQTT broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// N healthy devices reporting at a steady rate; a progress line every second, a summary at the end.
    Load {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Devices that flood, send malformed payloads, replay old messages or go offline, beside
    /// any number of healthy ones; the summary counts what was sent by what it tests.
    Faults {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Write the registry (and device keys) a gateway needs to accept the same devices as
    /// `load` or `faults` with the same --community, --devices, --kind and fault counts.
    Registry {
        /// The registry file to write.
        #[arg(long)]
        out: PathBuf,
        /// Also write a fresh random key for every device to this file (mode 600), for the
        /// gateway's `ingest.device_keys_path` and the simulator's --keys.
        #[arg(long)]
        keys_out: Option<PathBuf>,
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        faults: FaultArgs,
    },
}

/// Which devices.
#[derive(Args)]
struct FleetArgs {
    /// The community in every topic and in the registry.
    #[arg(long, default_value = "sim")]
    community: String,
    /// Healthy devices (`sim-00000`, …). Default: 10 for load, none beside faults.
    #[arg(long)]
    devices: Option<usize>,
    /// Kinds of the healthy devices, taken in turn (comma-separated); every kind if not given.
    #[arg(long, value_delimiter = ',')]
    kind: Vec<Kind>,
}

/// How many faulty devices, and how they misbehave.
#[derive(Args)]
struct FaultArgs {
    /// Devices sending far above the gateway's per-device rate.
    #[arg(long, default_value_t = 0)]
    flood: usize,
    /// Devices sending malformed payloads (every sort in turn).
    #[arg(long, default_value_t = 0)]
    malformed: usize,
    /// Devices replaying old messages.
    #[arg(long, default_value_t = 0)]
    replay: usize,
    /// Devices that announce `online`, report, then vanish (their last will says `offline`).
    #[arg(long, default_value_t = 0)]
    offline: usize,
    /// Kind of the faulty devices.
    #[arg(long, default_value = "manhole")]
    fault_kind: Kind,
    /// Messages per second of each flooding device (the gateway's default limit is 120 a minute).
    #[arg(long, default_value_t = 50.0)]
    flood_rate: f64,
    /// When the offline devices vanish, after the start (default: half the duration).
    #[arg(long, value_parser = duration)]
    offline_after: Option<Duration>,
    /// Size of the oversized payloads, bytes (the gateway's default limit is 4096).
    #[arg(long, default_value_t = 8192)]
    oversize_bytes: usize,
}

/// How to reach the broker, and how fast and how long to send.
#[derive(Args)]
struct RunArgs {
    /// The broker, host:port.
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
    /// Login at the broker.
    #[arg(long)]
    username: Option<String>,
    /// A file holding the password of --username.
    #[arg(long, requires = "username")]
    password_file: Option<PathBuf>,
    /// Messages per second per device.
    #[arg(long, default_value_t = 1.0, conflicts_with = "every")]
    rate: f64,
    /// Or: each device reports once per this (e.g. 30s, 5m).
    #[arg(long, value_parser = duration)]
    every: Option<Duration>,
    /// How long devices send (e.g. 60s, 5m).
    #[arg(long, default_value = "60s", value_parser = duration)]
    duration: Duration,
    /// MQTT QoS of telemetry: 0 or 1 (status words always go at 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// MQTT connections the devices share (default: one per 1,000 devices).
    #[arg(long)]
    connections: Option<usize>,
    /// Device keys (as `registry --keys-out` writes them): every device signs with its own.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// The devices' EEPROMs hold this sequence lease at the start (1: fresh devices). Default:
    /// the wall clock in ms, so a later run continues above an earlier one, as real nodes do.
    #[arg(long)]
    seq_from: Option<u64>,
    /// Client ids are this, a dash and a number (default: gwsim-<process id>).
    #[arg(long)]
    client_prefix: Option<String>,
    /// How long to wait at the end for the broker's acknowledgements.
    #[arg(long, default_value = "10s", value_parser = duration)]
    drain: Duration,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

/// Devices per pooled connection when --connections is not given.
const DEVICES_PER_CONNECTION: usize = 1000;

fn duration(s: &str) -> Result<Duration, String> {
    parse_ms(s).map(Duration::from_millis)
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn period(run: &RunArgs) -> anyhow::Result<Duration> {
    match run.every {
        Some(every) if every.is_zero() => bail!("--every must be longer than zero"),
        Some(every) => Ok(every),
        None if run.rate > 0.0 && run.rate.is_finite() => {
            Ok(Duration::from_secs_f64(1.0 / run.rate))
        }
        None => bail!("--rate must be a positive number of messages per second"),
    }
}

fn plan(run: &RunArgs, community: &str, devices: usize) -> anyhow::Result<Plan> {
    let (host, port) = run
        .broker
        .rsplit_once(':')
        .context("--broker is host:port, e.g. 127.0.0.1:1883")?;
    let port = port.parse().context("--broker: the port is a number")?;
    let password = match &run.password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading --password-file {}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        None => None,
    };
    if run.username.is_some() && password.is_none() {
        bail!("--username needs --password-file");
    }
    Ok(Plan {
        broker: Broker {
            host: host.to_owned(),
            port,
            username: run.username.clone(),
            password,
        },
        community: community.to_owned(),
        qos: if run.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
        duration: run.duration,
        connections: run
            .connections
            .unwrap_or_else(|| devices.div_ceil(DEVICES_PER_CONNECTION))
            .max(1),
        client_prefix: run
            .client_prefix
            .clone()
            .unwrap_or_else(|| format!("gwsim-{}", std::process::id())),
        drain: run.drain,
        progress: !run.quiet,
    })
}

fn read_keys(path: &Option<PathBuf>) -> anyhow::Result<Option<Keys>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --keys {}", path.display()))?;
    Ok(Some(
        registry::parse_keys(&text).with_context(|| format!("--keys {}", path.display()))?,
    ))
}

fn faults(args: &FaultArgs, duration: Duration) -> anyhow::Result<Faults> {
    if !(args.flood_rate > 0.0 && args.flood_rate.is_finite()) {
        bail!("--flood-rate must be a positive number of messages per second");
    }
    Ok(Faults {
        flood: args.flood,
        malformed: args.malformed,
        replay: args.replay,
        offline: args.offline,
        kind: args.fault_kind,
        flood_period: Duration::from_secs_f64(1.0 / args.flood_rate),
        offline_after: args.offline_after.unwrap_or(duration / 2),
        oversize_bytes: args.oversize_bytes,
    })
}

fn healthy(fleet: &FleetArgs, default: usize) -> anyhow::Result<Vec<DeviceSpec>> {
    if !is_id(&fleet.community) {
        bail!("--community must match [A-Za-z0-9_-]{{1,64}}");
    }
    Ok(registry::healthy(
        fleet.devices.unwrap_or(default),
        &fleet.kind,
    ))
}

/// Writes `text` to `path`, readable by the owner only when `secret`.
fn write(path: &PathBuf, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

async fn drive(
    run: &RunArgs,
    fleet: &FleetArgs,
    healthy_default: usize,
    fault_args: Option<&FaultArgs>,
) -> anyhow::Result<()> {
    let specs = healthy(fleet, healthy_default)?;
    let keys = read_keys(&run.keys)?;
    let period = period(run)?;
    let faults = fault_args.map(|f| faults(f, run.duration)).transpose()?;
    let fault_devices = faults
        .as_ref()
        .map_or(0, |f| f.devices().iter().map(|(_, d)| d.len()).sum());
    let plan = plan(run, &fleet.community, specs.len() + fault_devices)?;
    let seq_from = Some(run.seq_from.unwrap_or_else(wall_ms));
    let start = wall_ms();
    let mut groups = Vec::new();
    if !specs.is_empty() {
        groups.push(Group {
            devices: load::devices(&fleet.community, &specs, keys.as_ref(), seq_from, start)?,
            period,
            vanish_at: None,
            behaviour: Box::new(Steady(Label::Telemetry)),
        });
    }
    if let Some(f) = &faults {
        groups.extend(f.groups(&fleet.community, period, keys.as_ref(), seq_from, start)?);
    }
    if groups.is_empty() {
        bail!("no devices: give --devices (or fault counts such as --flood 1)");
    }
    let summary = load::run(&plan, groups).await;
    print!("{summary}");
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Load { run, fleet } => drive(&run, &fleet, 10, None).await,
        Command::Faults { run, fleet, faults } => drive(&run, &fleet, 0, Some(&faults)).await,
        Command::Registry {
            out,
            keys_out,
            fleet,
            faults: fault_args,
        } => {
            let mut specs = healthy(&fleet, 10)?;
            let f = faults(&fault_args, Duration::ZERO)?;
            specs.extend(f.devices().into_iter().flat_map(|(_, d)| d));
            write(
                &out,
                &registry::registry_toml(&fleet.community, &specs),
                false,
            )?;
            println!("wrote {} with {} devices", out.display(), specs.len());
            if let Some(path) = keys_out {
                write(
                    &path,
                    &registry::keys_toml(&registry::new_keys(&specs)),
                    true,
                )?;
                println!("wrote {} (mode 600)", path.display());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_load_command_line_becomes_a_plan() {
        let cli = Cli::try_parse_from([
            "gridwatch-sim",
            "load",
            "--broker",
            "mqtt.local:1884",
            "--devices",
            "2500",
            "--rate",
            "2",
            "--duration",
            "1m",
            "--qos",
            "0",
            "--kind",
            "manhole,sos",
        ])
        .unwrap();
        let Command::Load { run, fleet } = cli.command else {
            panic!("not load")
        };
        let plan = plan(&run, &fleet.community, 2500).unwrap();
        assert_eq!(
            (plan.broker.host.as_str(), plan.broker.port),
            ("mqtt.local", 1884)
        );
        assert_eq!(plan.connections, 3);
        assert_eq!(plan.duration, Duration::from_secs(60));
        assert_eq!(plan.qos, QoS::AtMostOnce);
        assert_eq!(period(&run).unwrap(), Duration::from_millis(500));
        assert_eq!(fleet.kind, [Kind::Manhole, Kind::Sos]);
        assert!(
            Cli::try_parse_from(["gridwatch-sim", "load", "--rate", "1", "--every", "5s"]).is_err()
        );
        assert!(Cli::try_parse_from(["gridwatch-sim", "load", "--qos", "2"]).is_err());
        assert!(Cli::try_parse_from(["gridwatch-sim", "load", "--kind", "toaster"]).is_err());
    }
}
