//! `gridwatch-bench`: whole-pipeline benchmarks against a real Mosquitto and a real
//! VictoriaMetrics, each figure measured side by side with its baseline in the same run.
//!
//! - `throughput`: N QoS 1 readings wait at the broker for an offline persistent session; first a
//!   bare rumqttc subscriber drains them (it only counts), then the gateway (release binary, with
//!   decode, journal fsync, rules and the store) does. Reports both rates and their ratio.
//! - `latency`: while telemetry flows at a fixed rate, an SOS from a different button every 50 ms;
//!   publish-to-webhook-received p50, p99 and maximum.
//! - `memory`: the gateway's resident set with 1,000, 10,000 and 100,000 registered devices, each
//!   of which has sent readings.
//!
//! - `load`: the simulator's load mode (`gridwatch-sim load`: N virtual devices, each a firmware
//!   node, over pooled connections) against Mosquitto and the gateway for a while; the achieved
//!   rate against the target, what the gateway took, and the CPU of simulator, broker and gateway.
//!
//! Run with `scripts/bench [throughput|latency|memory|all|load]` (release build); `all` is the
//! first three.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use gridwatch_e2e::payload::{now_ms, sos_pressed, telemetry};
use gridwatch_e2e::{get_text, metric_sum, GatewayProcess, Mosquitto, VictoriaMetrics};
use gridwatch_firmware::wire::Value;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Throughput,
    Latency,
    Memory,
    All,
    Load,
}

#[derive(Parser)]
#[command(about = "Gridwatch whole-pipeline benchmarks against real servers")]
struct Args {
    /// Which benchmark.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// Readings per throughput run.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Point the gateway at a store that is down, so readings stay in the journal: shows what the
    /// store's own CPU use costs the gateway on a shared machine.
    #[arg(long)]
    no_store: bool,
    /// Throughput runs; the median ratio is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Mosquitto's max_inflight_messages for every client (0 = unlimited).
    #[arg(long, default_value_t = 20)]
    inflight: u32,
    /// Telemetry rate during the latency run, readings per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of the latency run.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Largest registry of the memory run.
    #[arg(long, default_value_t = 100_000)]
    max_devices: usize,
    /// Simulated devices of the load run.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Messages per second of each simulated device in the load run.
    #[arg(long, default_value_t = 1.0)]
    device_rate: f64,
    /// Seconds of the load run.
    #[arg(long, default_value_t = 60)]
    load_seconds: u64,
}

/// A registry with `telemetry` manhole covers and `sos` buttons; workers get `hook` as webhook.
fn registry(telemetry: usize, sos: usize, hook: &str) -> String {
    let mut r = format!(
        "[community]\nid = \"bench\"\nname = \"基准社区\"\n\n[[buildings]]\nid = \"b1\"\nname = \"1号楼\"\n\n\
         [[grids]]\nid = \"g1\"\nname = \"第一网格\"\n\n[[workers]]\nid = \"w1\"\nname = \"值班员\"\nwebhook = \"{hook}\"\n\n\
         [[duty]]\ngrid = \"g1\"\nworker = \"w1\"\n"
    );
    for i in 0..telemetry {
        r.push_str(&format!(
            "\n[[devices]]\nid = \"mh-{i}\"\nkind = \"manhole\"\nbuilding = \"b1\"\ngrid = \"g1\"\nlocation = \"井{i}\"\n"
        ));
    }
    for i in 0..sos {
        r.push_str(&format!(
            "\n[[devices]]\nid = \"sos-{i}\"\nkind = \"sos\"\nbuilding = \"b1\"\ngrid = \"g1\"\nlocation = \"{i}室\"\n"
        ));
    }
    r
}

/// One reading of about 90 bytes, as a manhole node sends it.
fn reading(seq: u64) -> Vec<u8> {
    let readings = [
        ("tilt_deg", Value::Number((seq % 90) as f64 / 10.0)),
        // Normal water, moving within 5 cm: the benchmarks measure the everyday load, and the
        // default `water_rising` rule opens on 10 cm within 5 minutes.
        ("water_cm", Value::Number(10.0 + (seq % 50) as f64 / 10.0)),
        ("battery_v", Value::Number(3.61)),
    ];
    telemetry("manhole", now_ms(), seq, &readings)
}

/// Publishes `n` readings at QoS 1 round-robin over `devices`, as fast as the broker takes them.
/// Publishes `n` readings round-robin over `devices`, each device's sequence numbers starting
/// above `after` (the gateway refuses a number it has seen: each batch must carry new ones).
async fn publish(port: u16, n: u64, devices: usize, after: u64) -> anyhow::Result<Duration> {
    let mut opts = MqttOptions::new("bench-publisher", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_inflight(200);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let acked = Arc::new(AtomicU64::new(0));
    let counter = acked.clone();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("publisher: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    let start = Instant::now();
    for seq in 0..n {
        let device = seq as usize % devices;
        client
            .publish(
                format!("gw/v1/bench/mh-{device}/telemetry"),
                QoS::AtLeastOnce,
                false,
                reading(after + seq / devices as u64 + 1),
            )
            .await?;
    }
    while acked.load(Ordering::Relaxed) < n {
        if start.elapsed() > Duration::from_secs(600) {
            bail!(
                "publisher: only {} of {n} acknowledged",
                acked.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    poller.abort();
    Ok(start.elapsed())
}

/// A bare rumqttc subscriber with a persistent session: subscribe once, then later drain.
fn bare_options(port: u16) -> MqttOptions {
    let mut opts = MqttOptions::new("bench-bare", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_max_packet_size(1 << 20, 1 << 20);
    opts
}

async fn bare_subscribe_once(port: u16) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(bare_options(port), 1000);
    client
        .subscribe("gw/v1/+/+/telemetry", QoS::AtLeastOnce)
        .await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    client.disconnect().await?;
    while eventloop.poll().await.is_ok() {}
    Ok(())
}

/// Drains `n` queued messages; the time from connecting to the last one.
async fn bare_drain(port: u16, n: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let (_client, mut eventloop) = AsyncClient::new(bare_options(port), 1000);
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(_)))) => got += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("bare subscriber: {e} after {got} messages"),
            Err(_) => bail!("bare subscriber stalled after {got} of {n} messages"),
        }
    }
    Ok(start.elapsed())
}

/// The benchmarks' gateway: the per-device rate limit is lifted, as they send far faster than
/// any sensor to measure the pipeline.
fn gateway_config(mqtt_port: u16, store_url: &str, dir: &std::path::Path) -> String {
    format!(
        "[mqtt]\nport = {mqtt_port}\nclient_id = \"bench-gateway\"\n[store]\nbackend = \"influx\"\n\
         dead_letter_path = \"{}\"\n[store.influx]\nurl = \"{store_url}\"\n[journal]\npath = \"{}\"\n\
         [notify]\nretry_min_ms = 50\n\
         [ingest]\ndevice_rate_per_min = 100000000\ndevice_burst = 100000000\n",
        dir.join("dead-letter").display(),
        dir.join("journal").display()
    )
}

/// Polls the gateway's metrics until `metric` reaches `n`; returns when it first moved and when
/// it got there.
async fn watch_metric(
    url: &str,
    metric: &str,
    n: f64,
    limit: Duration,
) -> anyhow::Result<(Instant, Instant)> {
    let begin = Instant::now();
    let mut first = None;
    loop {
        // The gateway may still be starting: no answer yet counts as zero.
        let m = get_text(&format!("{url}/metrics"))
            .await
            .unwrap_or_default();
        let v = metric_sum(&m, metric);
        let now = Instant::now();
        if v > 0.0 && first.is_none() {
            first = Some(now);
        }
        if v >= n {
            return Ok((first.unwrap_or(now), now));
        }
        if begin.elapsed() > limit {
            bail!("{metric} reached only {v} of {n}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn throughput(args: &Args) -> anyhow::Result<()> {
    let n = args.messages;
    let devices = 1000;
    println!(
        "## throughput: {n} QoS 1 readings of ~90 B waiting at the broker, drained by each subscriber in turn; \
         Mosquitto max_inflight_messages {}; {} runs",
        args.inflight, args.runs
    );
    let mosquitto = Mosquitto::start_tuned(args.inflight, 0)?;
    let vm = VictoriaMetrics::start()?;
    bare_subscribe_once(mosquitto.port).await?;
    let dir = tempfile::tempdir()?;
    let store = if args.no_store {
        "http://127.0.0.1:9".to_owned()
    } else {
        vm.url()
    };
    let config = gateway_config(mosquitto.port, &store, dir.path());
    let reg = registry(devices, 0, "http://127.0.0.1:9/none");
    // The first start leaves the gateway's persistent session at the broker.
    let mut gw = GatewayProcess::start_with(&config, &reg, dir.path()).await?;
    gw.stop()?;

    let mut ratios = Vec::new();
    for run in 1..=args.runs {
        // The gateway's session queues the bare subscriber's batch too (both are subscribed), so
        // every batch carries numbers no earlier one had: else the gateway would spend the run
        // refusing the last run's as replays.
        let per_device = n / devices as u64 + 1;
        let run = run as u64;
        publish(mosquitto.port, n, devices, (2 * run - 1) * per_device).await?;
        let bare = bare_drain(mosquitto.port, n).await?;
        let bare_rate = n as f64 / bare.as_secs_f64();

        publish(mosquitto.port, n, devices, 2 * run * per_device).await?;
        // Timed from the process start, so the gateway's own start-up counts against it.
        let first = Instant::now();
        gw.respawn()?;
        let limit = Duration::from_secs(600);
        let (_, journaled) =
            watch_metric(&gw.url, "gridwatch_journal_records_total", n as f64, limit).await?;
        let (_, stored) = if args.no_store {
            (journaled, journaled)
        } else {
            watch_metric(
                &gw.url,
                "gridwatch_tsdb_lines_written_total",
                n as f64,
                limit,
            )
            .await?
        };
        let gw_rate = n as f64 / journaled.duration_since(first).as_secs_f64();
        let m = gw.metrics().await?;
        let commits = metric_sum(&m, "gridwatch_journal_commits_total");
        gw.stop()?;
        let ratio = gw_rate / bare_rate;
        ratios.push(ratio);
        let store = if args.no_store {
            "store down: readings kept in the journal".to_owned()
        } else {
            format!(
                "all in VictoriaMetrics after {:.2} s",
                stored.duration_since(first).as_secs_f64()
            )
        };
        println!(
            "run {run}: bare rumqttc subscriber {bare_rate:.0} msg/s; gateway {gw_rate:.0} msg/s \
             ({commits} fsyncs, {:.0} messages each; {store}); ratio {ratio:.2}",
            n as f64 / commits.max(1.0),
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ratio gateway / bare subscriber: {:.2}",
        ratios[ratios.len() / 2]
    );
    Ok(())
}

async fn latency(args: &Args) -> anyhow::Result<()> {
    println!(
        "## SOS latency: publish → webhook received, telemetry at {} readings/s for {} s",
        args.rate, args.seconds
    );
    let mosquitto = Mosquitto::start_tuned(args.inflight, 0)?;
    let vm = VictoriaMetrics::start()?;
    let received: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let at = Instant::now();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                    if let Some(id) = v["data"]["device"]["id"].as_str() {
                        sink.lock().expect("not poisoned").insert(id.to_owned(), at);
                    }
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook: SocketAddr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let samples = (args.seconds * 20) as usize;
    let dir = tempfile::tempdir()?;
    let config = gateway_config(mosquitto.port, &vm.url(), dir.path());
    let reg = registry(1000, samples, &format!("http://{hook}/hook"));
    let gw = GatewayProcess::start_with(&config, &reg, dir.path()).await?;

    // Telemetry at a steady rate, in slices of 10 ms.
    let port = mosquitto.port;
    let (rate, seconds) = (args.rate, args.seconds);
    let load = tokio::spawn(async move {
        let mut opts = MqttOptions::new("bench-load", "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30))
            .set_inflight(500);
        let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
        tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
        let per_tick = (rate / 100).max(1);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut seq = 0u64;
        let end = Instant::now() + Duration::from_secs(seconds + 1);
        while Instant::now() < end {
            tick.tick().await;
            for _ in 0..per_tick {
                seq += 1;
                let topic = format!("gw/v1/bench/mh-{}/telemetry", seq % 1000);
                let _ = client.try_publish(topic, QoS::AtLeastOnce, false, reading(seq / 1000 + 1));
            }
        }
    });

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut opts = MqttOptions::new("bench-sos", "127.0.0.1", mosquitto.port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for i in 0..samples {
        tick.tick().await;
        let id = format!("sos-{i}");
        sent.insert(id.clone(), Instant::now());
        client
            .publish(
                format!("gw/v1/bench/{id}/event"),
                QoS::AtLeastOnce,
                false,
                sos_pressed(1),
            )
            .await?;
    }
    load.await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = received.lock().expect("not poisoned").clone();
    let mut lat: Vec<f64> = sent
        .iter()
        .filter_map(|(id, at)| Some(got.get(id)?.duration_since(*at).as_secs_f64() * 1000.0))
        .collect();
    lat.sort_by(f64::total_cmp);
    if lat.len() < samples {
        println!("warning: {} of {samples} SOS webhooks arrived", lat.len());
    }
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    let m = gw.metrics().await?;
    println!(
        "{} SOS: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; telemetry the gateway took meanwhile: {:.0} readings/s, dropped: {}",
        lat.len(),
        pct(0.50),
        pct(0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        metric_sum(&m, "gridwatch_messages_accepted_total{channel=\"telemetry\"") / (args.seconds + 1) as f64,
        metric_sum(&m, "gridwatch_messages_dropped_total").abs()
    );
    Ok(())
}

fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} not in /proc/{pid}/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("a number")?
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

async fn memory(args: &Args) -> anyhow::Result<()> {
    println!(
        "## memory: resident set of the gateway with registered devices that all sent readings"
    );
    let mosquitto = Mosquitto::start_tuned(args.inflight, 0)?;
    let vm = VictoriaMetrics::start()?;
    let mut sizes = vec![1_000, 10_000, 100_000];
    sizes.retain(|d| *d <= args.max_devices);
    for devices in sizes {
        let dir = tempfile::tempdir()?;
        let config = gateway_config(mosquitto.port, &vm.url(), dir.path());
        let reg = registry(devices, 0, "http://127.0.0.1:9/none");
        let gw = GatewayProcess::start_with(&config, &reg, dir.path()).await?;
        let (idle, _) = rss_kib(gw.pid())?;
        let n = 2 * devices as u64;
        publish(mosquitto.port, n, devices, 0).await?;
        watch_metric(
            &gw.url,
            "gridwatch_tsdb_lines_written_total",
            n as f64,
            Duration::from_secs(600),
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rss, peak) = rss_kib(gw.pid())?;
        println!(
            "{devices:>7} devices: RSS {:.1} MiB after {n} readings (idle {:.1} MiB, peak {:.1} MiB)",
            rss as f64 / 1024.0,
            idle as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
    Ok(())
}

/// The share of one core that `cpu` is over `window`, in percent.
fn core_share(cpu: Option<Duration>, window: Duration) -> String {
    cpu.map_or("?".to_owned(), |c| {
        format!(
            "{:.1} s, {:.0}% of one core",
            c.as_secs_f64(),
            100.0 * c.as_secs_f64() / window.as_secs_f64()
        )
    })
}

async fn load(args: &Args) -> anyhow::Result<()> {
    use gridwatch_simulators::load::report::{process_cpu, Label};
    use gridwatch_simulators::load::{self as sim, pool::Broker, registry, Group, Plan, Steady};
    if !(args.device_rate > 0.0 && args.device_rate.is_finite()) {
        bail!("--device-rate must be a positive number");
    }
    println!(
        "## load: {} simulated devices (gridwatch-sim load), {} msg/s each, QoS 1, {} s, against \
         Mosquitto and the gateway{}",
        args.devices,
        args.device_rate,
        args.load_seconds,
        if args.no_store { " (store down)" } else { "" }
    );
    let mosquitto = Mosquitto::start_tuned(args.inflight, 0)?;
    let vm = VictoriaMetrics::start()?;
    let dir = tempfile::tempdir()?;
    let store = if args.no_store {
        "http://127.0.0.1:9".to_owned()
    } else {
        vm.url()
    };
    let community = "sim";
    let specs = registry::healthy(args.devices, &[]);
    let config = gateway_config(mosquitto.port, &store, dir.path());
    let gw = GatewayProcess::start_with(
        &config,
        &registry::registry_toml(community, &specs),
        dir.path(),
    )
    .await?;
    let wall = now_ms();
    let group = Group {
        devices: sim::devices(community, &specs, None, Some(wall), wall)?,
        period: Duration::from_secs_f64(1.0 / args.device_rate),
        vanish_at: None,
        behaviour: Box::new(Steady(Label::Telemetry)),
    };
    let plan = Plan {
        broker: Broker {
            host: "127.0.0.1".into(),
            port: mosquitto.port,
            username: None,
            password: None,
        },
        community: community.into(),
        qos: QoS::AtLeastOnce,
        duration: Duration::from_secs(args.load_seconds),
        connections: args.devices.div_ceil(1000),
        client_prefix: "bench-sim".into(),
        drain: Duration::from_secs(30),
        progress: true,
    };
    let (gw_cpu, broker_cpu) = (
        process_cpu(Some(gw.pid())),
        process_cpu(Some(mosquitto.pid())),
    );
    let start = Instant::now();
    let summary = sim::run(&plan, vec![group]).await;
    let sent = summary.total.sent as f64;
    let (_, caught_up) = watch_metric(
        &gw.url,
        "gridwatch_messages_received_total",
        sent,
        Duration::from_secs(300),
    )
    .await?;
    let window = caught_up.duration_since(start);
    let used = |before: Option<Duration>, pid: u32| {
        before
            .zip(process_cpu(Some(pid)))
            .map(|(a, b)| b.saturating_sub(a))
    };
    let (gw_cpu, broker_cpu) = (used(gw_cpu, gw.pid()), used(broker_cpu, mosquitto.pid()));
    let m = gw.metrics().await?;
    let (rss, _) = rss_kib(gw.pid())?;
    let accepted = metric_sum(&m, "gridwatch_messages_accepted_total");
    let stored = if args.no_store {
        "store down: readings kept in the journal".to_owned()
    } else {
        let limit = Duration::from_secs(300);
        let (_, at) = watch_metric(
            &gw.url,
            "gridwatch_tsdb_lines_written_total",
            accepted,
            limit,
        )
        .await?;
        format!(
            "all in VictoriaMetrics {:.1} s after the start",
            at.duration_since(start).as_secs_f64()
        )
    };
    print!("{summary}");
    println!(
        "gateway: received {:.0}, accepted {:.0}, rejected {:.0}, dropped {:.0} ({:.3} of what the \
         simulator sent); all received {:.1} s after the start; {stored}; RSS {:.1} MiB",
        metric_sum(&m, "gridwatch_messages_received_total"),
        accepted,
        // A sum over no samples is -0.
        metric_sum(&m, "gridwatch_messages_rejected_total").abs(),
        metric_sum(&m, "gridwatch_messages_dropped_total").abs(),
        accepted / sent.max(1.0),
        window.as_secs_f64(),
        rss as f64 / 1024.0
    );
    println!(
        "cpu until then: simulator {} (over its {:.0} s run); gateway {}; mosquitto {}",
        core_share(summary.cpu, summary.window),
        summary.window.as_secs_f64(),
        core_share(gw_cpu, window),
        core_share(broker_cpu, window)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    gridwatch_gateway::app::install_crypto_provider();
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")?
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("?")
            .trim()
    );
    if matches!(args.which, Which::Throughput | Which::All) {
        throughput(&args).await?;
    }
    if matches!(args.which, Which::Latency | Which::All) {
        latency(&args).await?;
    }
    if matches!(args.which, Which::Memory | Which::All) {
        memory(&args).await?;
    }
    if args.which == Which::Load {
        load(&args).await?;
    }
    Ok(())
}
