//! `gridwatch`: the gateway binary. Thin: arguments, config, logging, then the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gridwatch_gateway::catalogue::Catalogue;
use gridwatch_gateway::config::{Config, InfluxConfig, Secrets};
use gridwatch_gateway::demo::{self, DemoOptions};
use gridwatch_gateway::registry::Registry;
use gridwatch_gateway::sinks::tsdb::{replay, HttpStore};
use gridwatch_gateway::Gateway;
use gridwatch_simulators::scenario::Scenario;

#[derive(Parser)]
#[command(
    name = "gridwatch",
    version,
    about = "The Gridwatch edge gateway for smart residential communities"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway against a broker and a time-series store.
    Run {
        /// Config file (TOML). Without it, ./gridwatch.toml if present, else the defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// HTTP listen address; overrides `http.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Send readings kept by the local store to a server's InfluxDB v2 write API.
    Replay {
        /// The local store's folder (`store.local.path`).
        #[arg(long)]
        from: PathBuf,
        /// Base URL of the server, e.g. http://127.0.0.1:8428; the token comes from GRIDWATCH_TSDB_TOKEN.
        #[arg(long)]
        to: String,
        /// Organisation (InfluxDB).
        #[arg(long, default_value = "gridwatch")]
        org: String,
        /// Bucket (InfluxDB).
        #[arg(long, default_value = "gridwatch")]
        bucket: String,
        /// Lines per request.
        #[arg(long, default_value_t = 5000)]
        chunk_lines: usize,
    },
    /// Check alert rule files, or backtest them over recorded messages.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Import the community's spreadsheets into the registry file, export it, or write the template.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Lay out a working installation in a folder: config, registry, template, rules, data folders.
    Init {
        /// The folder; made if missing. A folder with a gridwatch.toml is refused.
        dir: PathBuf,
    },
    /// Print the commented default config or the key reference, or check a config file.
    Config {
        #[command(subcommand)]
        command: gridwatch_gateway::config_cli::ConfigCommand,
    },
    /// Everything in one process: embedded broker, local store, a simulated community.
    Demo {
        /// HTTP listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Port of the embedded MQTT broker; a free one if not given.
        #[arg(long)]
        mqtt_port: Option<u16>,
        /// Folder for the demo's readings, journal and the devices' memory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// How much faster than real time the simulated community lives; the scenario's own
        /// (the tour's: 4) if not given.
        #[arg(long)]
        speed: Option<f64>,
        /// A scenario file to play on a loop instead of the tour.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Run a scenario against a running gateway: the virtual community's devices over its
    /// broker, and a check that the alerts the scenario expects open in time.
    Scenario(ScenarioArgs),
}

/// The arguments of `gridwatch scenario`.
#[derive(clap::Args)]
struct ScenarioArgs {
    /// The scenario file, or the name of a shipped one (tour, trapped-passenger,
    /// blocked-passage, storm, sos-unanswered, electrical-parking-perimeter).
    scenario: String,
    /// The gateway's MQTT broker, host:port.
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt: String,
    /// The gateway's HTTP base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// How much faster than real time simulated time runs; the scenario's own if not given.
    #[arg(long)]
    speed: Option<f64>,
    /// Where the virtual devices keep their sequence numbers between runs (the gateway
    /// refuses a number it has seen); $TMPDIR/gridwatch-sim if not given.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Run the devices of this registry file (the gateway's) instead of the scenario's
    /// generated community; it must have every device the scenario names.
    #[arg(long, conflicts_with = "write_registry")]
    registry: Option<PathBuf>,
    /// Write the registry file the scenario's community needs (start the gateway with it)
    /// and stop.
    #[arg(long)]
    write_registry: Option<PathBuf>,
    /// With --write-registry: each worker's webhook is URL/{worker id} (a worker nobody can
    /// reach is an alert of its own).
    #[arg(long, value_name = "URL")]
    webhook_base: Option<String>,
    /// Only check the scenario file.
    #[arg(long)]
    check: bool,
    /// Close the alerts the run opened once it is over (needs GRIDWATCH_API_TOKEN).
    #[arg(long)]
    close: bool,
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Write the spreadsheet template: an .xlsx workbook, or else a folder of CSV files.
    Template {
        /// registry-template.xlsx, or a folder for CSV files.
        out: PathBuf,
    },
    /// Check the community's sheets and write the registry file from them. Every problem is
    /// listed with its sheet, row and column, and nothing is written unless there are none.
    Import {
        /// An .xlsx workbook, CSV files named community/buildings/devices/workers, or a folder of them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The registry file to write; an existing one is kept as FILE.bak.
        #[arg(long, default_value = "registry.toml")]
        out: PathBuf,
        /// Kind catalogue; the built-in one if not given.
        #[arg(long)]
        catalogue: Option<PathBuf>,
        /// Only check: write nothing.
        #[arg(long)]
        check: bool,
    },
    /// Write a registry file as the sheets import reads: an .xlsx workbook, or a folder of CSVs.
    Export {
        /// The registry file.
        #[arg(default_value = "registry.toml")]
        registry: PathBuf,
        /// registry.xlsx, or a folder for CSV files.
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check a rule file: every problem with its line, column and what to write instead.
    Check {
        /// The rule file.
        file: PathBuf,
        /// Kind catalogue to check against; the built-in one if not given.
        #[arg(long)]
        catalogue: Option<PathBuf>,
    },
    /// Run recorded messages through a rule file and list the alerts it would have opened and
    /// closed, and when.
    Backtest {
        /// The rule file.
        rules: PathBuf,
        /// A journal folder (journal.path), a local store folder (store.local.path) or a
        /// line-protocol file.
        #[arg(long)]
        from: PathBuf,
        /// The registry the messages' devices are in.
        #[arg(long, default_value = "registry.toml")]
        registry: PathBuf,
        /// Kind catalogue; the built-in one if not given.
        #[arg(long)]
        catalogue: Option<PathBuf>,
        /// Also print why each alert opened or ended.
        #[arg(long)]
        why: bool,
    },
}

/// Resolves on Ctrl-C or SIGTERM (what systemd and `kill` send), so both stop cleanly.
async fn ctrl_c() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => if let Err(e) = r {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        },
        () = term => {}
    }
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let path = path.or_else(|| Some(PathBuf::from("gridwatch.toml")).filter(|p| p.exists()));
    Ok(match path {
        Some(p) => Config::load(&p)?,
        None => {
            tracing::info!("no config file: using the defaults");
            Config::default()
        }
    })
}

async fn run(config: Option<PathBuf>, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let mut config = load_config(config)?;
    if let Some(l) = listen {
        config.http.listen = l;
    }
    let catalogue = match &config.catalogue.path {
        Some(p) => Catalogue::load(p)
            .map_err(anyhow::Error::msg)
            .context("catalogue.path")?,
        None => Catalogue::builtin(),
    };
    let registry =
        Registry::load(&config.registry.path, Arc::new(catalogue)).context("registry.path")?;
    let gateway = Gateway::start(config, registry, Secrets::from_env()).await?;
    ctrl_c().await;
    gateway.shutdown().await;
    Ok(())
}

fn catalogue(path: Option<&PathBuf>) -> anyhow::Result<Catalogue> {
    match path {
        Some(p) => Catalogue::load(p)
            .map_err(anyhow::Error::msg)
            .context("--catalogue"),
        None => Ok(Catalogue::builtin()),
    }
}

fn init(dir: &std::path::Path) -> anyhow::Result<()> {
    for path in gridwatch_gateway::init::init(dir)? {
        println!("wrote {}", path.display());
    }
    println!(
        "start it with: gridwatch run --config {}",
        dir.join("gridwatch.toml").display()
    );
    Ok(())
}

fn registry_command(command: RegistryCommand) -> anyhow::Result<()> {
    use gridwatch_gateway::registry::{files, sheets};
    match command {
        RegistryCommand::Template { out } => {
            let (tables, readme) = sheets::template();
            files::write(&out, &tables, Some(&readme))?;
            println!(
                "wrote {}: fill in the sheets (the readme sheet says what each column takes), then\n  gridwatch registry import {} --out registry.toml",
                out.display(),
                out.display()
            );
            Ok(())
        }
        RegistryCommand::Import {
            files: paths,
            out,
            catalogue: c,
            check,
        } => {
            let tables = files::read(&paths)?;
            let imported = match sheets::import(&tables, Arc::new(catalogue(c.as_ref())?)) {
                Ok(imported) => imported,
                Err(problems) => {
                    for problem in &problems {
                        eprintln!("{problem}");
                    }
                    anyhow::bail!(
                        "{} problem(s) in the sheets; nothing was written",
                        problems.len()
                    );
                }
            };
            let r = &imported.registry;
            let staff = r.staff();
            let summary = format!(
                "{} ({}): {} grids, {} devices, {} workers, {} shifts",
                r.community_name,
                r.community,
                r.grids().count(),
                r.devices().count(),
                staff.workers().count(),
                staff.shifts()
            );
            if check {
                println!("{summary}; all good (nothing written: --check)");
                return Ok(());
            }
            let backup = files::install(&out, &imported.text)?;
            println!("wrote {}: {summary}", out.display());
            if let Some(b) = backup {
                println!("the previous file is kept as {}", b.display());
            }
            println!("a running gateway takes the new workers, duty and shifts within registry.watch_secs; restart it for new devices");
            Ok(())
        }
        RegistryCommand::Export { registry, to } => {
            let text = std::fs::read_to_string(&registry)
                .with_context(|| format!("reading {}", registry.display()))?;
            let tables = sheets::export(&text)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{} is not a registry file", registry.display()))?;
            files::write(&to, &tables, None)?;
            println!("wrote {}", to.display());
            Ok(())
        }
    }
}

fn rules_command(command: RulesCommand) -> anyhow::Result<()> {
    use gridwatch_edge_rules::RuleSet;
    use gridwatch_gateway::rules::{self, backtest};
    use std::io::Write;
    // Written without println!, which panics when a pager or `head` closes the pipe.
    let mut stdout = std::io::stdout().lock();
    macro_rules! out {
        ($($arg:tt)*) => { let _ = writeln!(stdout, $($arg)*); };
    }
    match command {
        RulesCommand::Check { file, catalogue: c } => {
            let schema = rules::schema(&catalogue(c.as_ref())?);
            let set = RuleSet::load(&file, &schema)?;
            out!("{}: {} rules, all good", file.display(), set.rules.len());
            for r in &set.rules {
                out!(
                    "  {:<28} {:<8} {}",
                    r.name,
                    r.severity.as_str(),
                    rules::describe(r)
                );
            }
            Ok(())
        }
        RulesCommand::Backtest {
            rules: file,
            from,
            registry,
            catalogue: c,
            why,
        } => {
            let catalogue = Arc::new(catalogue(c.as_ref())?);
            let set = RuleSet::load(&file, &rules::schema(&catalogue))?;
            let offset = set.utc_offset_min;
            let registry = Registry::load(&registry, catalogue).context("--registry")?;
            let recording = backtest::Recording::at(&from)?;
            let report = backtest::run(set, &registry, &recording, |n| {
                eprint!("\r{n} messages   ");
            })?;
            for o in &report.outcomes {
                out!(
                    "{}  {:<9} {:<28} {}",
                    gridwatch_gateway::clock::local_time(o.at_ms, offset),
                    format!("{:?}", o.change).to_lowercase(),
                    o.rule,
                    o.device
                );
                if why {
                    for w in &o.why {
                        out!("      {w}");
                    }
                }
            }
            let opened = report
                .outcomes
                .iter()
                .filter(|o| o.change == gridwatch_edge_rules::Change::Opened)
                .count();
            eprintln!(
                "{} messages, {} alerts opened, {} changes in all; {} records skipped{}",
                report.messages,
                opened,
                report.outcomes.len(),
                report.skipped,
                report
                    .first_skip
                    .map(|s| format!(" (first: {s})"))
                    .unwrap_or_default()
            );
            Ok(())
        }
    }
}

async fn replay(
    from: PathBuf,
    to: String,
    org: String,
    bucket: String,
    chunk_lines: usize,
) -> anyhow::Result<()> {
    gridwatch_gateway::app::install_crypto_provider();
    let cfg = InfluxConfig {
        url: to,
        org,
        bucket,
        ..InfluxConfig::default()
    };
    let store = HttpStore::new(&cfg, Secrets::from_env().tsdb_token).context("--to")?;
    let done = replay::replay(&from, &store, chunk_lines, |done, file| {
        eprint!("\rreplayed {} lines ({})   ", done.lines, file.display());
    })
    .await?;
    eprintln!();
    println!(
        "replayed {} lines from {} files to {}; {} refused as malformed",
        done.lines,
        done.files,
        store.describe(),
        done.refused
    );
    Ok(())
}

async fn demo_command(
    listen: SocketAddr,
    mqtt_port: Option<u16>,
    data_dir: Option<PathBuf>,
    speed: Option<f64>,
    scenario: Option<PathBuf>,
) -> anyhow::Result<()> {
    let scenario = scenario
        .map(|p| Scenario::load(&p))
        .transpose()
        .context("--scenario")?;
    let opts = DemoOptions {
        listen,
        mqtt_port,
        data_dir: data_dir.unwrap_or_else(|| std::env::temp_dir().join("gridwatch-demo")),
        speed,
        scenario,
    };
    demo::run(opts, ctrl_c()).await.map(|_| ())
}

/// How many floors a lift of a registry's community travels (the registry does not say).
const REGISTRY_FLOORS: u16 = 18;

/// Runs `gridwatch scenario`; `Ok(false)` when the run found an expected alert missing.
async fn scenario_command(args: ScenarioArgs) -> anyhow::Result<bool> {
    use gridwatch_simulators::community::{Community, DeviceSpec};
    use gridwatch_simulators::fleet::Broker;
    use gridwatch_simulators::scenario::run::{self, Closer, Progress, RunOptions, Target};
    use gridwatch_simulators::scenario::shipped;

    let name = args.scenario.as_str();
    let path = std::path::Path::new(name);
    let scenario = match shipped(name) {
        Some(s) if !path.exists() => s?,
        _ => Scenario::load(path)?,
    };
    let registry = scenario
        .community
        .registry_toml(args.webhook_base.as_deref())?;
    Registry::parse(&registry)
        .map_err(|p| anyhow::anyhow!("the scenario's community: {}", p.join("; ")))?;
    if let Some(out) = &args.write_registry {
        std::fs::write(out, &registry).with_context(|| format!("writing {}", out.display()))?;
        println!(
            "wrote {}: start the gateway with registry.path = {:?}, then run this scenario again without --write-registry",
            out.display(),
            out.display().to_string()
        );
        if args.webhook_base.is_none() {
            println!("its workers have no webhook: give --webhook-base URL, or add a way to reach them, or the gateway raises worker_unreachable");
        }
        return Ok(true);
    }
    let expectations: usize = scenario.steps.iter().map(|s| s.expect.len()).sum();
    if args.check {
        println!(
            "{}: {} incidents, {expectations} expected alerts, speed {}; all good",
            scenario.name,
            scenario.steps.len(),
            scenario.speed
        );
        return Ok(true);
    }
    let (host, port) = args
        .mqtt
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .context("--mqtt is host:port")?;
    let close = if args.close {
        let token = Secrets::from_env()
            .api_token
            .context("--close needs GRIDWATCH_API_TOKEN")?;
        Some(Closer {
            token,
            by: "gridwatch scenario".into(),
        })
    } else {
        None
    };
    let community = match &args.registry {
        Some(path) => {
            let r = Registry::load(path, Arc::new(Catalogue::builtin())).context("--registry")?;
            let devices = r.devices().map(|d| DeviceSpec {
                id: d.id.to_string(),
                kind: d.kind.to_string(),
                building: d.building.to_string(),
                grid: d.grid.to_string(),
                location: d.location.to_string(),
                tags: d.tags.iter().map(|t| t.to_string()).collect(),
                floors: REGISTRY_FLOORS,
            });
            Some(Community::from_devices(&r.community, devices)?)
        }
        None => None,
    };
    let opts = RunOptions {
        speed: args.speed,
        community,
        state_dir: Some(
            args.state_dir
                .unwrap_or_else(|| std::env::temp_dir().join("gridwatch-sim")),
        ),
        close,
        ..RunOptions::default()
    };
    let target = Target {
        broker: Broker { host, port },
        gateway: args.gateway,
    };
    let outcome = run::run(&scenario, &target, &opts, |p| match p {
        Progress::Began {
            scenario,
            devices,
            speed,
        } => println!(
            "{}: {} — {devices} devices at {speed}× real time",
            scenario.name, scenario.title
        ),
        Progress::Started(step) => println!(
            "  at {}s: {} {}{}",
            step.at_ms / 1000,
            step.device,
            step.incident.action(),
            step.say
                .as_deref()
                .map(|s| format!(" — {s}"))
                .unwrap_or_default()
        ),
        Progress::Ended(_) => {}
        Progress::Decided(e, v) => println!("    {}", run::verdict_line(e, v)),
        Progress::Unexpected(a) => println!(
            "    ❌ unexpected: {} on {} ({})",
            a.rule, a.device.id, a.alert_id
        ),
    })
    .await?;
    println!("{}", outcome.to_string().lines().last().unwrap_or_default());
    Ok(outcome.passed())
}

/// Large buffers (journal reads, store batches, a large rule state) are mapped and unmapped
/// rather than kept in the heap: glibc would otherwise raise this threshold after the first
/// one is freed, and the process would keep every later one's pages.
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator tunable; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

fn main() -> std::process::ExitCode {
    fixed_mmap_threshold();
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(run_command()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_command() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo and a scenario run print what happens themselves; the log adds only trouble.
    let quiet = matches!(cli.command, Command::Demo { .. } | Command::Scenario(_));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // rumqttd reports the gateway's own disconnect at shutdown as an error.
                if quiet {
                    "warn,rumqttd=off"
                } else {
                    "info,rumqttd=warn,rumqttc=warn"
                }
                .into()
            }),
        )
        .init();
    let result = match cli.command {
        Command::Run { config, listen } => run(config, listen).await,
        Command::Replay {
            from,
            to,
            org,
            bucket,
            chunk_lines,
        } => replay(from, to, org, bucket, chunk_lines).await,
        Command::Rules { command } => rules_command(command),
        Command::Registry { command } => registry_command(command),
        Command::Init { dir } => init(&dir),
        Command::Config { command } => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            let code = gridwatch_gateway::config_cli::run(command, &mut out, &mut err);
            return std::process::ExitCode::from(code);
        }
        Command::Demo {
            listen,
            mqtt_port,
            data_dir,
            speed,
            scenario,
        } => demo_command(listen, mqtt_port, data_dir, speed, scenario).await,
        Command::Scenario(args) => match scenario_command(args).await {
            Ok(true) => Ok(()),
            Ok(false) => return std::process::ExitCode::FAILURE,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
