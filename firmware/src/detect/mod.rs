//! Detectors: pure state machines that turn a node's samples into the events it sends.
//!
//! Every detector is fed samples with the time they were taken (`now_ms`, monotonic) and returns
//! the events to publish, most urgent first; none reads a clock, allocates or does I/O. An event
//! is raised once per occurrence and again only after its condition cleared (or, for presses and
//! edges, after a hold-off). Event names are spelled exactly as in the gateway's kind catalogue
//! (`gateway/kinds.toml`); a test here checks that they are listed under the right kind.
//!
//! | module | for | events |
//! |---|---|---|
//! | [`timing`] | the shared primitives: debounce, dwell, accumulate, hysteresis, hold-off, count window | |
//! | [`elevator`] | a lift monitor on the car | `trapped_passenger`, `door_open_while_moving`, `overspeed`, `emergency_call`, `over_travel`, `power_loss`, `stopped_outside_door_zone`, `door_cycling`, `ebike_detected` |
//! | [`manhole`] | a battery node under a manhole cover, with its reporting [`manhole::Schedule`] | `gas_high`, `cover_displaced`, `water_overflow`, `low_battery` |
//! | [`fire_passage`] | an evacuation passage and its fire door | `smoke_detected`, `passage_blocked`, `fire_door_open_too_long`, `fire_door_held_open` |
//! | [`sos`] | the one-tap help button of an elderly resident, with its LED | `sos_pressed`, `sos_cancelled` |
//! | [`electrical`] | electrical fire monitoring (GB 14287) in a distribution box | `arc_fault`, `residual_current_high`, `cable_temp_high`, `overcurrent`, `power_loss` |
//! | [`parking`] | a parking space ([`parking::Space`]: occupied, since when) and the gate ([`parking::Gate`]: vehicles in and out, the fire lane) | `fire_lane_blocked` |
//! | [`perimeter`] | one perimeter zone: a fence or door contact and an infrared beam, armed by the hour | `intrusion` |
//! | [`battery`] | low battery, for any node on a battery | `low_battery` |
//!
//! Every default, from each config's `Default` (the field-tested values), with its source.
//! "Issue 4" is the sensor-node firmware issue, which reports the field trials; "gateway" is the
//! matching rule in `gateway/rules.toml`, kept equal so node and gateway agree.
//!
//! | setting | default | source |
//! |---|---|---|
//! | `ElevatorConfig::rated_speed_mps` | 1.75 m/s | a common residential rating; gateway `overspeed` |
//! | `ElevatorConfig::overspeed_factor` | 1.15 | GB 7588: governor tripping speed ≥ 115 % of rated |
//! | `ElevatorConfig::overspeed_hold_ms` | 500 ms | choice: one noisy speed estimate is no overspeed |
//! | `ElevatorConfig::door_open_while_moving_ms` | 30 s, summed until the door closes | issue 4 (re-levelling moves the car with the door open) |
//! | `ElevatorConfig::trapped_after_ms` | 60 s | choice: after the controller's own rescue, 15 s after the next |
//! | `ElevatorConfig::stopped_outside_door_zone_ms` | 45 s | issue 4 |
//! | `ElevatorConfig::door_cycles_max` / `door_cycle_window_ms` | more than 5 in 60 s | choice: an obstructed door reopens every 6–10 s |
//! | `ElevatorConfig::button_debounce_ms` | 100 ms | contact bounce |
//! | `ElevatorConfig::power_loss_debounce_ms` | 2 s | choice: rides through motor-start brown-outs |
//! | `ElevatorConfig::repeat_hold_off_ms` | 60 s | choice: repeated alarm presses, a camera box re-finding an e-bike |
//! | `ManholeConfig::tilt_on_deg` / `tilt_off_deg` | 10° / 5° | issue 4; gateway `cover_displaced` opens and clears at the same |
//! | `ManholeConfig::displaced_hold_ms` | 2 s | issue 4: a passing vehicle rocks a cover for less |
//! | `ManholeConfig::water_on_cm` / `water_off_cm` | 80 cm / 60 cm | gateway `water_overflow`; set per well |
//! | `ManholeConfig::water_hold_ms` | 10 s | choice: waves, false ultrasonic echoes |
//! | `ManholeConfig::gas_on_ppm` / `gas_off_ppm` | 5 000 / 2 500 ppm | 10 % of methane's LEL; gateway `gas_high` |
//! | `ManholeConfig::gas_hold_ms` | 2 s | choice: one sensor spike is no gas |
//! | `ScheduleConfig::heartbeat_every_ms` | 30 min | the manhole kind's `report_every_secs` (1 800 s): offline noticed in 90 min |
//! | `FirePassageConfig::min_clear_width_cm` / `clear_again_cm` | 110 cm / 120 cm | GB 50016-2014 §5.5.30 / gateway `passage_blocked` clear |
//! | `FirePassageConfig::blocked_after_ms` | 30 s | issue 4: people walking through are no blockage |
//! | `FirePassageConfig::door_open_too_long_ms` | 10 s | issue 4 |
//! | `FirePassageConfig::door_held_open_ms` | 60 s | issue 4 (a fault: wedged, or a broken closer) |
//! | `FirePassageConfig::smoke_debounce_ms` | 2 s | choice: a glitch of the detector's output line |
//! | `SosConfig::debounce_ms` | 50 ms | contact bounce (5–20 ms) |
//! | `SosConfig::cancel_window_ms` | 10 s | issue 4 |
//! | `SosConfig::hold_off_ms` | 30 s | choice: a failing contact must not flood |
//! | `SosConfig::sent_led_ms` / `help_coming_led_ms` | 10 min / 30 min | choice: the gateway's escalation / on-site times |
//! | `ElectricalConfig::arc_half_cycles` | 14 fault-arc half-cycles within 1 s (settable 10–14) | GB 14287.4-2014 §5.4: an alarm at 14 or more in 1 s, none at 9 or fewer |
//! | `ElectricalConfig::arc_rearm_ms` | 60 s without a half-cycle | choice: an arcing connection arcs again every few seconds |
//! | `ElectricalConfig::residual_current_alarm_ma` / `residual_current_clear_ma` | 300 mA / 240 mA | GB 50116-2013 §9.2.3 (300–500 mA at the distribution box; GB 14287.2 allows 20–1 000 mA) / choice: 80 % |
//! | `ElectricalConfig::residual_current_hold_ms` | 2 s | choice: a switching spike lasts milliseconds; GB 14287.2 allows up to 30 s |
//! | `ElectricalConfig::cable_temp_alarm_c` / `cable_temp_clear_c` | 70 °C / 65 °C | the rated conductor temperature of PVC-insulated cable (GB/T 5023); GB 14287.3 allows 55–140 °C |
//! | `ElectricalConfig::cable_temp_hold_ms` | 5 s | choice: a probe's noise; GB 14287.3 allows up to 40 s |
//! | `ElectricalConfig::rated_current_a` / `overload_clear_a` | 32 A / 30 A | a common household distribution breaker / choice: about 95 % |
//! | `ElectricalConfig::overcurrent_after_ms` | 60 s | choice: inrush is over in seconds; a breaker carries 1.13 × rated for an hour (GB/T 10963.1) |
//! | `ElectricalConfig::power_loss_below_v` / `power_loss_hold_ms` | 110 V (half of 220 V) / 2 s | GB/T 156 nominal voltage / choice, as the lift's power loss |
//! | `SpaceConfig::occupied_below_cm` / `free_above_cm` | 150 cm / 170 cm | a ceiling sensor 2.2–2.8 m up (JGJ 100-2015: at least 2.2 m clear for small cars): a car's roof or bonnet is 0.7–1.6 m below it; set per site |
//! | `SpaceConfig::debounce_ms` | 5 s, arriving and leaving | choice: a person walking under the sensor is gone sooner |
//! | `GateConfig::fire_lane_debounce_ms` | 5 s | choice: a vehicle driving along the lane, a camera's zone output flickering |
//! | `GateConfig::fire_lane_blocked_after_ms` | 300 s from arrival | choice: a delivery or a drop-off stops for less; Fire Protection Law art. 28 forbids occupying a fire lane |
//! | `PerimeterConfig::armed` / `utc_offset_min` | 22:00–06:00 local / UTC+8 | the night of GB 3096-2008 (22:00 to 6:00) / China Standard Time |
//! | `PerimeterConfig::beam_debounce_ms` | 50 ms | GB 10408.4-2000: a beam detector alarms at an interruption over 40 ms; a bird or a leaf is shorter, a running person longer |
//! | `PerimeterConfig::contact_debounce_ms` | 50 ms | contact bounce (5–20 ms) |
//! | `PerimeterConfig::hold_off_ms` | 60 s | choice: one alarm per crossing, not one per beam break |
//! | `BatteryConfig::low_below_v` / `recovered_above_v` | 3.3 V / 3.5 V | gateway `low_battery` |
//! | `BatteryConfig::hold_ms` | 60 s | choice: longer than a transmission's sag |
//!
//! The node loop owns the clock and the radio: it reads its sensors into a sample, calls the
//! detector's `step(now_ms, &sample)`, publishes each returned event at once (QoS 1, on the
//! `event` topic) and telemetry when its schedule says so.

pub mod battery;
pub mod electrical;
pub mod elevator;
pub mod fire_passage;
pub mod manhole;
pub mod parking;
pub mod perimeter;
pub mod sos;
pub mod timing;

/// An event a detector raises.
pub trait Event: Copy + core::fmt::Debug + PartialEq + 'static {
    /// Every event of the detector, in the order one step returns them (most urgent first).
    const ALL: &'static [Self];

    /// The event's name as the gateway's kind catalogue spells it (`gateway/kinds.toml`).
    fn name(&self) -> &'static str;
}

/// Adds `event` to a step's events.
///
/// Each detector's buffer has room for every one of its events (tested below) and a step raises
/// each at most once, so the push cannot fail.
fn raise<E: Event, const N: usize>(events: &mut heapless::Vec<E, N>, event: E) {
    let pushed = events.push(event);
    debug_assert!(pushed.is_ok(), "{event:?} does not fit the step's events");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::battery::BatteryEvent;
    use super::electrical::{ElectricalEvent, ElectricalEvents};
    use super::elevator::{ElevatorEvent, ElevatorEvents};
    use super::fire_passage::{FirePassageEvent, FirePassageEvents};
    use super::manhole::{ManholeEvent, ManholeEvents};
    use super::parking::ParkingEvent;
    use super::perimeter::PerimeterEvent;
    use super::sos::SosEvent;
    use super::Event;

    /// The catalogue the gateway builds in; the detectors must speak its names.
    const CATALOGUE: &str = include_str!("../../../gateway/kinds.toml");

    /// The names the catalogue lists for `kind` in `list` (`"readings"` or `"events"`).
    pub(crate) fn catalogue(kind: &str, list: &str) -> Vec<&'static str> {
        let block = CATALOGUE
            .split("[[kinds]]")
            .find(|b| b.lines().any(|l| l == format!("name = \"{kind}\"")))
            .unwrap_or_else(|| panic!("kind {kind} is not in the catalogue"));
        let entries = block
            .split_once(&format!("\n{list} = ["))
            .map_or("", |(_, rest)| rest);
        entries
            .lines()
            .take_while(|l| l.trim() != "]")
            .filter_map(|l| l.trim().strip_prefix("{ name = \""))
            .filter_map(|l| l.split('"').next())
            .collect()
    }

    /// The event names the catalogue lists for `kind`.
    fn catalogue_events(kind: &str) -> Vec<&'static str> {
        catalogue(kind, "events")
    }

    fn names<E: Event>() -> Vec<&'static str> {
        E::ALL.iter().map(Event::name).collect()
    }

    fn assert_listed(kind: &str, names: &[&str]) {
        let listed = catalogue_events(kind);
        for name in names {
            assert!(crate::wire::is_name(name), "{name} breaks the name grammar");
            assert!(listed.contains(name), "{kind}: {name} is not in kinds.toml");
        }
    }

    #[test]
    fn every_event_is_listed_under_its_kind_in_the_gateway_catalogue() {
        assert_listed("elevator", &names::<ElevatorEvent>());
        assert_listed("manhole", &names::<ManholeEvent>());
        assert_listed("fire_passage", &names::<FirePassageEvent>());
        assert_listed("sos", &names::<SosEvent>());
        assert_listed("electrical", &names::<ElectricalEvent>());
        assert_listed("parking", &names::<ParkingEvent>());
        assert_listed("perimeter", &names::<PerimeterEvent>());
        for kind in [
            "elevator",
            "manhole",
            "fire_passage",
            "sos",
            "parking",
            "electrical",
        ] {
            assert_listed(kind, &names::<BatteryEvent>());
        }
    }

    #[test]
    fn the_catalogue_reader_finds_the_events_and_readings_it_should() {
        assert_eq!(
            catalogue_events("sos"),
            ["sos_pressed", "sos_cancelled", "low_battery", "tamper"]
        );
        assert_eq!(
            catalogue("sos", "readings"),
            ["battery_v", "last_motion_ts"]
        );
    }

    #[test]
    fn event_names_are_distinct_within_each_detector() {
        for mut n in [
            names::<ElevatorEvent>(),
            names::<ManholeEvent>(),
            names::<FirePassageEvent>(),
            names::<SosEvent>(),
            names::<ElectricalEvent>(),
        ] {
            let len = n.len();
            n.sort_unstable();
            n.dedup();
            assert_eq!(n.len(), len, "{n:?}");
        }
    }

    #[test]
    fn each_step_buffer_has_room_for_every_event_of_its_detector() {
        assert_eq!(ElevatorEvents::new().capacity(), ElevatorEvent::ALL.len());
        assert_eq!(ManholeEvents::new().capacity(), ManholeEvent::ALL.len());
        assert_eq!(
            FirePassageEvents::new().capacity(),
            FirePassageEvent::ALL.len()
        );
        assert_eq!(
            ElectricalEvents::new().capacity(),
            ElectricalEvent::ALL.len()
        );
    }
}
