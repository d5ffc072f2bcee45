//! The scenario file format: what a file reads into, and every mistake named with its line.

use super::*;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, "t", "t.toml")
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn every_shipped_scenario_parses_and_every_folder_file_is_shipped() {
    for (name, _) in SHIPPED {
        let s = shipped(name).unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.steps.is_empty(), "{name}");
        assert!(s.steps.iter().any(|st| !st.expect.is_empty()), "{name}");
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    assert_eq!(files, names);
}

#[test]
fn a_scenario_reads_into_steps_with_their_expectations() {
    let s = parse(
        r#"
[scenario]
title = "困人"
speed = 4

[[incident]]
at = "1m30s"
device = "elev-b1-1"
action = "stuck"
passenger = false
for = "2m"
clock = "real"
say = "停梯"

[[incident.expect]]
rule = "trapped_passenger"
state = "escalated"
within = "3m"
clock = "real"

[[incident.expect]]
rule = "tamper"
device = "*"
absent = true
within = "5m"
"#,
    )
    .unwrap();
    assert_eq!((s.title.as_str(), s.speed, s.strict), ("困人", 4.0, false));
    let step = &s.steps[0];
    assert_eq!(
        (step.at_ms, step.device.as_str(), step.line),
        (90_000, "elev-b1-1", 6)
    );
    assert_eq!(step.incident.action(), "stuck");
    assert_eq!(
        step.lasts,
        Some(Span {
            ms: 120_000,
            clock: Clock::Real
        })
    );
    assert_eq!(step.lasts.unwrap().sim_ms(4.0), 480_000);
    assert_eq!(step.say.as_deref(), Some("停梯"));
    let [first, second] = &step.expect[..] else {
        panic!("{:?}", step.expect)
    };
    assert_eq!(first.device.as_deref(), Some("elev-b1-1"));
    assert_eq!(first.want, Some(Want::Escalated));
    assert_eq!(first.line, 15);
    assert_eq!(
        first.to_string(),
        "trapped_passenger on elev-b1-1, escalated, within 3m real time"
    );
    assert_eq!(
        (second.device.clone(), second.absent, second.line),
        (None, true, 21)
    );
    assert_eq!(second.within.real_ms(4.0), 75_000);
}

#[test]
fn mistakes_are_named_with_their_line() {
    let cases = [
        ("[scenario]\nspeed = \"fast\"\n", "t.toml:2: invalid type: string \"fast\", expected f64"),
        ("[scenario]\nspeed = 0\n", "t.toml:2: `speed` is 0: give 0.01 to 100"),
        ("[secnario]\n", "t.toml:1: unknown field `secnario`, expected one of `scenario`, `community`, `incident`"),
        ("[community]\nbuildings = 2\nfloors = 1\n", "t.toml:1: community: floors is 1: a building has 2 to 99 floors"),
        ("[community]\nbildings = 2\n", "t.toml:2: unknown field `bildings`, expected one of `id`, `name`, `buildings`, `floors`, `elevators_per_building`, `manholes`, `fire_passages`, `sos_homes`, `distribution_boxes`, `parking_spaces`, `perimeter_zones`, `buildings_per_grid`"),
        (
            "[[incident]]\nat = \"10s\"\ndevice = \"elev-b9-1\"\naction = \"stuck\"\n",
            "t.toml:3: there is no device \"elev-b9-1\" in the community; it has elev-b1-1, elev-b2-1, mh-1, mh-2, fp-b1-1, fp-b2-1, sos-b1-0301, sos-b2-0301, sos-b1-0401, eb-b1-1, eb-b2-1, park-001, park-002, park-003, park-004, park-gate, pz-1, pz-2",
        ),
        (
            "[[incident]]\nat = \"10 s\"\ndevice = \"mh-1\"\naction = \"storm\"\n",
            "t.toml:2: `at`: `10 s` is not a duration; write a number with a unit: s, m, h or d, e.g. \"30s\", \"5m\", \"1h30m\"",
        ),
        ("[[incident]]\ndevice = \"mh-1\"\naction = \"storm\"\n", "t.toml:1: incident 1 has no `at`"),
        (
            "[[incident]]\nat = \"1s\"\ndevice = \"mh-1\"\naction = \"flood\"\n",
            "t.toml:4: incident 1 (mh-1): a manhole has no action `flood`; it has knocked_aside, storm, gas, battery and cut_off",
        ),
        (
            "[[incident]]\nat = \"1s\"\ndevice = \"mh-1\"\naction = \"storm\"\n\nwater = 90\n",
            "t.toml:6: incident 1 (mh-1): action `storm`: unknown field `water`, expected `water_cm` or `rise`",
        ),
        (
            "[[incident]]\nat = \"1s\"\ndevice = \"sos-b1-0301\"\naction = \"press\"\nclock = \"wall\"\n",
            "t.toml:5: `clock` is \"simulated\" or \"real\", not \"wall\"",
        ),
        (
            "[[incident]]\nat = \"1s\"\ndevice = \"sos-b1-0301\"\naction = \"press\"\n\n[[incident.expect]]\nrule = \"sos_pressed\"\n\n[[incident.expect]]\nrule = \"sos_pressed\"\nwithin = \"1m\"\nstate = \"escalating\"\n",
            "t.toml:6: [[incident.expect]]: missing field `within`",
        ),
        (
            "[[incident]]\nat = \"1s\"\ndevice = \"sos-b1-0301\"\naction = \"press\"\n\n[[incident.expect]]\nrule = \"sos_pressed\"\nwithin = \"1m\"\n\n[[incident.expect]]\nrule = \"sos_pressed\"\nwithin = \"1m\"\nstate = \"escalating\"\n",
            "t.toml:10: `state` \"escalating\" is not one of firing, acknowledged, on_site, resolved, closed or escalated",
        ),
        (
            "[[incident]]\nat = \"1s\"\ndevice = \"sos-b1-0301\"\naction = \"press\"\n[[incident.expect]]\nrule = \"SOS\"\nwithin = \"1m\"\n",
            "t.toml:5: `rule` \"SOS\" is not a rule name ([a-z0-9_])",
        ),
        (
            "[[incident]]\nat = \"1s\"\ndevice = \"sos-b1-0301\"\naction = \"cut_off\"\nfor = 3\n",
            "t.toml:5: `for` must be a string, not integer",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(error(text), want, "{text}");
    }
}

#[test]
fn every_kind_can_be_cut_off() {
    for device in ["elev-b1-1", "mh-1", "fp-b1-1", "sos-b1-0301"] {
        let text =
            format!("[[incident]]\nat = \"1s\"\ndevice = \"{device}\"\naction = \"cut_off\"\n");
        assert_eq!(parse(&text).unwrap().steps[0].incident.action(), "cut_off");
    }
    assert!(error(
        "[[incident]]\nat = \"1s\"\ndevice = \"mh-1\"\naction = \"cut_off\"\nwires = 2\n"
    )
    .ends_with("`cut_off` takes no `wires`"));
}

#[test]
fn a_missing_file_says_so() {
    let err = Scenario::load(Path::new("/nonexistent/x.toml")).unwrap_err();
    assert_eq!(err.line, 0);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/x.toml: cannot read it"),
        "{err}"
    );
}

#[test]
fn a_scenario_checked_in_another_community_names_what_is_missing_there() {
    let s = shipped("trapped-passenger").unwrap().unwrap();
    let mut other = crate::community::CommunitySpec {
        id: "yg".into(),
        ..Default::default()
    }
    .generate()
    .unwrap();
    assert_eq!(s.check_in(&other), Ok(()));
    other.devices.retain(|d| d.id != "elev-b1-1");
    let err = s.check_in(&other).unwrap_err().to_string();
    assert!(
        err.ends_with(
            "trapped-passenger.toml:12: there is no device \"elev-b1-1\" in community yg"
        ),
        "{err}"
    );
    let mut swapped = crate::community::CommunitySpec::default()
        .generate()
        .unwrap();
    swapped
        .devices
        .iter_mut()
        .find(|d| d.id == "elev-b1-1")
        .unwrap()
        .kind = "manhole".into();
    assert!(s
        .check_in(&swapped)
        .unwrap_err()
        .message
        .contains("is a manhole"));
}
