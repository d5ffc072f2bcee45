//! One test per default rule: the situation it is for opens it, with a message that names the
//! place and the readings, and the everyday situation next to it does not.

use gridwatch_edge_rules::{Change, Engine, Msg, Transition, Val};

use super::{engine, load, messages};
use crate::config::RulesConfig;
use crate::registry::Registry;

const MIN: u64 = 60_000;
/// 2026-11-27 10:00 in Beijing.
const T0: u64 = 1_795_708_800_000 + 10 * 60 * MIN;

fn registry() -> Registry {
    Registry::parse(
        r#"
[community]
id = "yg"
name = "阳光社区"
[[buildings]]
id = "b1"
name = "1号楼"
[[grids]]
id = "g1"
name = "第一网格"
[[devices]]
id = "lift-1"
kind = "elevator"
building = "b1"
grid = "g1"
location = "1单元客梯"
[[devices]]
id = "mh-1"
kind = "manhole"
building = "b1"
grid = "g1"
location = "东门"
[[devices]]
id = "fp-1"
kind = "fire_passage"
building = "b1"
grid = "g1"
location = "3层走廊"
[[devices]]
id = "eb-1"
kind = "electrical"
building = "b1"
grid = "g1"
location = "1单元配电箱"
[[devices]]
id = "gate-1"
kind = "parking"
building = "b1"
grid = "g1"
location = "北门"
[[devices]]
id = "fence-1"
kind = "perimeter"
building = "b1"
grid = "g1"
location = "西侧围墙"
[[devices]]
id = "sos-101"
kind = "sos"
building = "b1"
grid = "g1"
location = "101室"
tags = ["living_alone"]
[[devices]]
id = "sos-102"
kind = "sos"
building = "b1"
grid = "g1"
location = "102室"
"#,
    )
    .expect("the test registry is valid")
}

struct Case {
    registry: Registry,
    engine: Engine,
    seq: u64,
    out: Vec<Transition>,
}

impl Case {
    fn new() -> Self {
        let registry = registry();
        let rules =
            load(&RulesConfig::default(), registry.catalogue()).expect("the built-in rules load");
        let engine = engine(rules, &registry, T0);
        Self {
            registry,
            engine,
            seq: 0,
            out: Vec::new(),
        }
    }

    fn send(
        &mut self,
        device: &str,
        at: u64,
        event: Option<&str>,
        data: &[(&str, Val)],
    ) -> &mut Self {
        self.seq += 1;
        self.engine.observe(
            &Msg {
                device,
                seq: self.seq,
                at_ms: at,
                event,
                data,
            },
            &mut self.out,
        );
        self
    }

    fn tick(&mut self, at: u64) -> &mut Self {
        self.engine.tick(at, &mut self.out);
        self
    }

    fn opened(&self, rule: &str) -> Vec<&Transition> {
        self.out
            .iter()
            .filter(|t| t.change == Change::Opened && self.engine.rules()[t.rule].name == rule)
            .collect()
    }

    /// The one alert `rule` opened, with its Chinese and English texts.
    fn one(&self, rule: &str) -> (String, String) {
        let opened = self.opened(rule);
        assert_eq!(opened.len(), 1, "{rule}: {:?}", self.out);
        let t = opened[0];
        let r = &self.engine.rules()[t.rule];
        let device = self.registry.device(&t.device).expect("registered");
        let m = messages(r, device, &t.values, t.opened_ms, 480);
        assert!(
            !m.zh_cn.contains('?') && !m.en.contains('?'),
            "{rule}: a field is missing: {m:?}"
        );
        assert!(m.zh_cn.contains("1号楼"), "{}", m.zh_cn);
        (m.zh_cn, m.en)
    }
}

fn n(v: f64) -> Val {
    Val::Num(v)
}

fn b(v: bool) -> Val {
    Val::Bool(v)
}

fn lift(floor: f64, moving: bool, speed: f64, door_open: bool) -> Vec<(&'static str, Val)> {
    vec![
        ("floor", n(floor)),
        ("moving", b(moving)),
        ("speed_mps", n(speed)),
        ("door_open", b(door_open)),
        ("in_door_zone", b(!moving)),
        ("battery_v", n(12.0)),
    ]
}

fn manhole(tilt: f64, open: bool, water: f64, gas: f64) -> Vec<(&'static str, Val)> {
    vec![
        ("tilt_deg", n(tilt)),
        ("cover_open", b(open)),
        ("water_cm", n(water)),
        ("gas_ppm", n(gas)),
        ("battery_v", n(3.6)),
    ]
}

fn passage(width: f64, obstructed: bool, door: bool, smoke: bool) -> Vec<(&'static str, Val)> {
    vec![
        ("clear_width_cm", n(width)),
        ("obstructed", b(obstructed)),
        ("fire_door_open", b(door)),
        ("smoke", b(smoke)),
        ("battery_v", n(3.6)),
    ]
}

#[test]
fn the_built_in_rules_cover_every_default_case() {
    let c = Case::new();
    let names: Vec<&str> = c.engine.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "sos_pressed",
            "trapped_passenger",
            "door_open_while_moving",
            "overspeed",
            "elevator_repeated_stops",
            "emergency_call",
            "over_travel",
            "power_loss",
            "door_cycling",
            "ebike_detected",
            "cover_displaced",
            "water_overflow",
            "water_rising",
            "gas_high",
            "passage_blocked",
            "fire_door_open",
            "fire_door_held_open",
            "smoke",
            "arc_fault",
            "residual_current_high",
            "cable_temp_high",
            "overcurrent",
            "electrical_power_loss",
            "fire_lane_blocked",
            "intrusion",
            "no_activity",
            "tamper",
            "device_offline",
            "low_battery",
        ]
    );
}

#[test]
fn sos_pressed() {
    let mut c = Case::new();
    c.send("sos-101", T0, Some("sos_pressed"), &[]);
    let (zh, en) = c.one("sos_pressed");
    assert!(zh.contains("101室") && en.contains("SOS"), "{zh} / {en}");
    c.send("sos-101", T0 + 1000, Some("sos_cancelled"), &[]);
    assert!(
        c.out.iter().any(|t| t.change == Change::Cleared),
        "a cancel clears, a person closes"
    );
}

#[test]
fn trapped_passenger() {
    let mut c = Case::new();
    c.send(
        "lift-1",
        T0,
        Some("trapped_passenger"),
        &lift(7.0, false, 0.0, false),
    );
    let (zh, _) = c.one("trapped_passenger");
    assert!(zh.contains("困人") && zh.contains("7层"), "{zh}");
}

#[test]
fn door_open_while_moving() {
    let mut c = Case::new();
    c.send("lift-1", T0, None, &lift(3.0, false, 0.0, true));
    assert!(
        c.opened("door_open_while_moving").is_empty(),
        "open at a floor is normal"
    );
    c.send("lift-1", T0 + 1000, None, &lift(3.4, true, 0.5, true));
    let (zh, _) = c.one("door_open_while_moving");
    assert!(zh.contains("开门走梯"), "{zh}");
}

#[test]
fn overspeed() {
    let mut c = Case::new();
    c.send("lift-1", T0, None, &lift(5.0, true, 1.75, false));
    assert!(c.opened("overspeed").is_empty(), "rated speed is fine");
    c.send("lift-1", T0 + 1000, None, &lift(6.0, true, 2.2, false));
    let (zh, en) = c.one("overspeed");
    assert!(zh.contains("2.2") && en.contains("2.2 m/s"), "{zh} / {en}");
}

#[test]
fn elevator_repeated_stops() {
    let mut c = Case::new();
    for i in 0..3 {
        c.send(
            "lift-1",
            T0 + i * 3 * MIN,
            Some("stopped_outside_door_zone"),
            &lift(2.5, false, 0.0, false),
        );
    }
    c.one("elevator_repeated_stops");
}

#[test]
fn emergency_call() {
    let mut c = Case::new();
    c.send(
        "lift-1",
        T0,
        Some("emergency_call"),
        &lift(4.0, false, 0.0, false),
    );
    let (zh, en) = c.one("emergency_call");
    assert!(
        zh.contains("紧急呼叫") && en.contains("Emergency call"),
        "{zh} / {en}"
    );
    assert!(c.engine.rules()[c.opened("emergency_call")[0].rule].needs_person);
}

#[test]
fn over_travel() {
    let mut c = Case::new();
    c.send(
        "lift-1",
        T0,
        Some("over_travel"),
        &lift(18.0, false, 0.0, false),
    );
    let (zh, _) = c.one("over_travel");
    assert!(zh.contains("冲顶或蹲底"), "{zh}");
}

#[test]
fn power_loss() {
    let mut c = Case::new();
    c.send(
        "lift-1",
        T0,
        Some("power_loss"),
        &lift(9.0, false, 0.0, false),
    );
    let (zh, _) = c.one("power_loss");
    assert!(zh.contains("停电"), "{zh}");
}

#[test]
fn door_cycling() {
    let mut c = Case::new();
    c.send(
        "lift-1",
        T0,
        Some("door_cycling"),
        &lift(1.0, false, 0.0, true),
    );
    let (zh, en) = c.one("door_cycling");
    assert!(
        zh.contains("反复开关") && en.contains("keeps opening"),
        "{zh} / {en}"
    );
}

#[test]
fn ebike_detected() {
    let mut c = Case::new();
    c.send("lift-1", T0, None, &lift(1.0, false, 0.0, true));
    assert!(c.opened("ebike_detected").is_empty());
    c.send(
        "lift-1",
        T0 + 1000,
        Some("ebike_detected"),
        &lift(1.0, false, 0.0, true),
    );
    let (zh, _) = c.one("ebike_detected");
    assert!(zh.contains("电动车"), "{zh}");
}

#[test]
fn cover_displaced() {
    let mut c = Case::new();
    c.send("mh-1", T0, None, &manhole(20.0, false, 10.0, 0.0));
    assert!(
        c.opened("cover_displaced").is_empty(),
        "a knock for less than 10 s is not enough"
    );
    c.send("mh-1", T0 + 11_000, None, &manhole(21.0, false, 10.0, 0.0));
    // It opened when the tilt had held 10 s, with the reading known then.
    let (zh, _) = c.one("cover_displaced");
    assert!(zh.contains("20°"), "{zh}");
}

#[test]
fn a_manhole_nodes_cover_displaced_event_opens_cover_displaced_through_its_readings() {
    let mut c = Case::new();
    // A sleeping node sends the event with its readings, then nothing for 30 minutes.
    c.send(
        "mh-1",
        T0,
        Some("cover_displaced"),
        &manhole(12.5, false, 10.0, 0.0),
    );
    c.tick(T0 + 9_000);
    assert!(c.opened("cover_displaced").is_empty());
    c.tick(T0 + 10_000);
    let (zh, _) = c.one("cover_displaced");
    assert!(zh.contains("12.5°"), "{zh}");
}

#[test]
fn water_overflow() {
    let mut c = Case::new();
    c.send("mh-1", T0, None, &manhole(0.0, false, 85.0, 0.0));
    c.tick(T0 + MIN);
    let (zh, _) = c.one("water_overflow");
    assert!(zh.contains("85厘米"), "{zh}");
}

#[test]
fn water_rising() {
    let mut c = Case::new();
    c.send("mh-1", T0, None, &manhole(0.0, false, 20.0, 0.0));
    c.send("mh-1", T0 + 4 * MIN, None, &manhole(0.0, false, 31.0, 0.0));
    let (zh, _) = c.one("water_rising");
    assert!(zh.contains("31厘米"), "{zh}");
}

#[test]
fn gas_high() {
    let mut c = Case::new();
    c.send("mh-1", T0, None, &manhole(0.0, false, 0.0, 800.0));
    assert!(c.opened("gas_high").is_empty());
    c.send("mh-1", T0 + 1000, None, &manhole(0.0, false, 0.0, 6000.0));
    let (zh, _) = c.one("gas_high");
    assert!(zh.contains("6000ppm"), "{zh}");
}

#[test]
fn passage_blocked() {
    let mut c = Case::new();
    c.send("fp-1", T0, None, &passage(80.0, true, false, false));
    c.tick(T0 + 4 * MIN);
    assert!(
        c.opened("passage_blocked").is_empty(),
        "a delivery passing through is not a blockage"
    );
    c.tick(T0 + 5 * MIN);
    let (zh, _) = c.one("passage_blocked");
    assert!(zh.contains("80厘米"), "{zh}");
}

#[test]
fn fire_door_open() {
    let mut c = Case::new();
    c.send("fp-1", T0, None, &passage(150.0, false, true, false));
    c.tick(T0 + 10 * MIN);
    c.one("fire_door_open");
}

#[test]
fn fire_door_held_open() {
    let mut c = Case::new();
    c.send(
        "fp-1",
        T0,
        Some("fire_door_open_too_long"),
        &passage(150.0, false, true, false),
    );
    assert!(
        c.opened("fire_door_held_open").is_empty(),
        "ten seconds open is a warning the node keeps, not a fault"
    );
    c.send(
        "fp-1",
        T0 + MIN,
        Some("fire_door_held_open"),
        &passage(150.0, false, true, false),
    );
    let (zh, _) = c.one("fire_door_held_open");
    assert!(zh.contains("被撑开"), "{zh}");
}

fn electrical(rcm: f64, temp: f64, volts: f64, amps: f64) -> Vec<(&'static str, Val)> {
    vec![
        ("residual_current_ma", n(rcm)),
        ("cable_temp_c", n(temp)),
        ("voltage_v", n(volts)),
        ("current_a", n(amps)),
        ("overload", b(amps > 32.0)),
    ]
}

#[test]
fn arc_fault() {
    let mut c = Case::new();
    c.send("eb-1", T0, None, &electrical(12.0, 35.0, 221.0, 10.0));
    assert!(c.opened("arc_fault").is_empty());
    c.send(
        "eb-1",
        T0 + 1000,
        Some("arc_fault"),
        &electrical(12.0, 35.0, 221.0, 10.0),
    );
    let (zh, en) = c.one("arc_fault");
    assert!(
        zh.contains("故障电弧") && en.contains("Arc fault"),
        "{zh} / {en}"
    );
    assert!(c.engine.rules()[c.opened("arc_fault")[0].rule].needs_person);
}

#[test]
fn residual_current_high() {
    let mut c = Case::new();
    c.send("eb-1", T0, None, &electrical(120.0, 35.0, 221.0, 10.0));
    assert!(
        c.opened("residual_current_high").is_empty(),
        "the node judges against its own setting"
    );
    c.send(
        "eb-1",
        T0 + 1000,
        Some("residual_current_high"),
        &electrical(420.0, 35.0, 221.0, 10.0),
    );
    let (zh, en) = c.one("residual_current_high");
    assert!(
        zh.contains("420毫安") && en.contains("420 mA"),
        "{zh} / {en}"
    );
}

#[test]
fn cable_temp_high() {
    let mut c = Case::new();
    c.send(
        "eb-1",
        T0,
        Some("cable_temp_high"),
        &electrical(12.0, 78.5, 221.0, 30.0),
    );
    let (zh, _) = c.one("cable_temp_high");
    assert!(zh.contains("78.5℃"), "{zh}");
}

#[test]
fn overcurrent() {
    let mut c = Case::new();
    c.send(
        "eb-1",
        T0,
        Some("overcurrent"),
        &electrical(12.0, 50.0, 219.0, 41.0),
    );
    let (zh, en) = c.one("overcurrent");
    assert!(zh.contains("41安") && en.contains("41 A"), "{zh} / {en}");
}

#[test]
fn electrical_power_loss() {
    let mut c = Case::new();
    c.send(
        "eb-1",
        T0,
        Some("power_loss"),
        &electrical(0.0, 30.0, 0.0, 0.0),
    );
    let (zh, _) = c.one("electrical_power_loss");
    assert!(zh.contains("配电箱断电"), "{zh}");
    assert!(
        c.opened("power_loss").is_empty(),
        "the lift's rule is not the distribution box's"
    );
}

#[test]
fn fire_lane_blocked() {
    let mut c = Case::new();
    let lane = |dwell: f64| {
        vec![
            ("fire_lane_occupied", b(true)),
            ("fire_lane_dwell_s", n(dwell)),
            ("vehicles_in", n(120.0)),
            ("vehicles_out", n(98.0)),
        ]
    };
    c.send("gate-1", T0, None, &lane(60.0));
    assert!(c.opened("fire_lane_blocked").is_empty(), "a short stop");
    c.send(
        "gate-1",
        T0 + 4 * MIN,
        Some("fire_lane_blocked"),
        &lane(300.0),
    );
    let (zh, en) = c.one("fire_lane_blocked");
    assert!(zh.contains("300秒") && en.contains("300 s"), "{zh} / {en}");
}

#[test]
fn intrusion() {
    let mut c = Case::new();
    let zone = |beam: bool| {
        vec![
            ("zone", n(3.0)),
            ("armed", b(true)),
            ("beam_broken", b(beam)),
            ("contact_open", b(false)),
            ("battery_v", n(3.6)),
        ]
    };
    c.send("fence-1", T0, None, &zone(false));
    assert!(c.opened("intrusion").is_empty());
    c.send("fence-1", T0 + 1000, Some("intrusion"), &zone(true));
    let (zh, en) = c.one("intrusion");
    assert!(zh.contains("防区3") && en.contains("zone 3"), "{zh} / {en}");
    assert!(c.engine.rules()[c.opened("intrusion")[0].rule].needs_person);
}

#[test]
fn tamper() {
    let mut c = Case::new();
    c.send("mh-1", T0, Some("tamper"), &manhole(0.0, false, 10.0, 0.0));
    c.send("sos-102", T0, Some("tamper"), &[]);
    let opened: Vec<&str> = c.opened("tamper").iter().map(|t| &*t.device).collect();
    assert_eq!(opened, ["mh-1", "sos-102"]);
}

/// Catalogue events that a rule watches through the readings the event carries (or, for a
/// cancel, clears), so a second rule on the event itself would page twice for one incident.
const WATCHED_THROUGH_READINGS: &[(&str, &str, &str)] = &[
    (
        "elevator",
        "door_open_while_moving",
        "door_open_while_moving",
    ),
    ("elevator", "overspeed", "overspeed"),
    (
        "elevator",
        "stopped_outside_door_zone",
        "elevator_repeated_stops",
    ),
    ("manhole", "cover_displaced", "cover_displaced"),
    ("manhole", "water_overflow", "water_overflow"),
    ("manhole", "gas_high", "gas_high"),
    ("fire_passage", "passage_blocked", "passage_blocked"),
    ("fire_passage", "fire_door_open_too_long", "fire_door_open"),
    ("fire_passage", "smoke_detected", "smoke"),
    ("sos", "sos_cancelled", "sos_pressed"),
];

#[test]
fn every_catalogue_event_has_a_rule() {
    use gridwatch_edge_rules::rule::Trigger;
    let c = Case::new();
    let rules = c.engine.rules();
    for kind in c.registry.catalogue().kinds() {
        for event in &kind.events {
            let selects = |r: &gridwatch_edge_rules::Rule| {
                r.select.kinds.is_empty() || r.select.kinds.contains(&kind.name)
            };
            let on_event = rules.iter().any(|r| {
                selects(r)
                    && matches!(&r.trigger, Trigger::Event { event: e, .. } if *e == event.name)
            });
            let through = WATCHED_THROUGH_READINGS
                .iter()
                .find(|(k, e, _)| *k == kind.name && *e == event.name)
                .map(|(_, _, rule)| *rule);
            let by_reading = event.name == "low_battery"
                || through.is_some_and(|name| rules.iter().any(|r| r.name == name && selects(r)));
            assert!(
                on_event || by_reading,
                "{}: event {} has no rule",
                kind.name,
                event.name
            );
        }
    }
}

#[test]
fn smoke() {
    let mut c = Case::new();
    c.send("fp-1", T0, None, &passage(150.0, false, false, true));
    let (zh, _) = c.one("smoke");
    assert!(zh.contains("119"), "{zh}");
}

#[test]
fn no_activity() {
    let mut c = Case::new();
    let motion = |ts: f64| vec![("last_motion_ts", n(ts)), ("battery_v", n(3.6))];
    c.send("sos-101", T0, None, &motion(1.0));
    c.send("sos-102", T0, None, &motion(1.0));
    // Both keep reporting, but nothing moves at home.
    for i in 1..=5 {
        c.send("sos-101", T0 + i * 50 * MIN, None, &motion(1.0));
        c.send("sos-102", T0 + i * 50 * MIN, None, &motion(1.0));
        c.tick(T0 + i * 50 * MIN);
    }
    let (zh, _) = c.one("no_activity");
    assert!(zh.contains("101室") && zh.contains("独居"), "{zh}");
}

#[test]
fn device_offline() {
    let mut c = Case::new();
    for d in ["lift-1", "mh-1", "fp-1", "sos-101", "sos-102"] {
        c.send(d, T0, None, &[("battery_v", n(3.6))]);
    }
    // The lift reports every minute: offline after 3 silent minutes. The manhole sleeps and
    // sends a heartbeat every 30 minutes: offline only after 90.
    c.send("mh-1", T0 + 60 * MIN, None, &[("battery_v", n(3.6))]);
    c.send("fp-1", T0 + 60 * MIN, None, &[("battery_v", n(3.6))]);
    c.send("sos-101", T0 + 60 * MIN, None, &[("battery_v", n(3.6))]);
    c.send("sos-102", T0 + 60 * MIN, None, &[("battery_v", n(3.6))]);
    for d in ["eb-1", "gate-1", "fence-1"] {
        c.send(d, T0 + 60 * MIN, None, &[]);
    }
    c.tick(T0 + 62 * MIN);
    let (zh, en) = c.one("device_offline");
    assert!(zh.contains("lift-1") && en.contains("offline"), "{zh}");
    let offline = |c: &Case| -> Vec<String> {
        c.opened("device_offline")
            .iter()
            .map(|t| t.device.to_string())
            .collect()
    };
    c.tick(T0 + 149 * MIN);
    assert!(
        !offline(&c).contains(&"mh-1".to_string()),
        "a manhole 89 minutes quiet is still online"
    );
    c.tick(T0 + 150 * MIN);
    assert!(offline(&c).contains(&"mh-1".to_string()));
}

#[test]
fn low_battery() {
    let mut c = Case::new();
    c.send("sos-102", T0, None, &[("battery_v", n(3.1))]);
    c.tick(T0 + 10 * MIN);
    let (zh, _) = c.one("low_battery");
    assert!(zh.contains("3.1伏"), "{zh}");
}

#[test]
fn a_catalogue_without_the_built_in_kinds_keeps_the_rules_that_fit() {
    let catalogue = crate::catalogue::Catalogue::parse(
        r#"
[[kinds]]
name = "air_quality"
label = { zh-CN = "空气质量", en = "Air quality" }
report_every_secs = 60
readings = [{ name = "pm25_ugm3", type = "number", unit = "µg/m³", min = 0, max = 1000, label = { zh-CN = "PM2.5", en = "PM2.5" } }]
"#,
    )
    .expect("the catalogue parses");
    let rules = load(&RulesConfig::default(), &catalogue).expect("the built-in rules load");
    let names: Vec<&str> = rules.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["device_offline"]);
}
