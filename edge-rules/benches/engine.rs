//! Rule engine benchmarks.
//!
//! - `evaluate/N`: one manhole message through N rules that all select the device; the
//!   throughput is rule evaluations per second.
//! - `unrelated/N`: one message through the 10 rules that select its device while N more rules
//!   select other kinds and buildings; the cost should not move with N (DESIGN.md's budget).
//! - `condition/ours` against `condition/cel`: the same condition in our language and in CEL
//!   (the `cel` crate), values bound per message as the gateway would; the baseline that decided
//!   the language (README, "Alert rules").
//!
//! `cargo bench -p gridwatch-edge-rules --bench engine`; figures in BENCHMARKS.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gridwatch_edge_rules::expr::Expr;
use gridwatch_edge_rules::{DeviceInfo, Engine, KindSchema, Msg, RuleSet, Schema, Type, Val};

fn schema() -> Schema {
    let mut kinds = BTreeMap::new();
    for kind in ["manhole", "elevator", "sos"] {
        kinds.insert(
            kind.to_string(),
            KindSchema {
                readings: [
                    ("water_cm", Type::Number),
                    ("tilt_deg", Type::Number),
                    ("gas_ppm", Type::Number),
                    ("cover_open", Type::Bool),
                    ("battery_v", Type::Number),
                ]
                .into_iter()
                .map(|(n, t)| (n.to_string(), t))
                .collect(),
                events: ["cover_displaced".to_string()].into_iter().collect(),
            },
        );
    }
    Schema { kinds }
}

/// `matching` rules for manholes in building b1, and `others` for other kinds or buildings.
fn rules(matching: usize, others: usize) -> String {
    let mut text = String::new();
    let shapes = [
        (
            "water_cm >= {i} and not cover_open",
            "for = \"1m\"\nclear = \"water_cm < 1\"",
        ),
        ("tilt_deg > {i} / 10 or cover_open", ""),
        ("gas_ppm * 1.5 >= {i} + 100", "for = \"30s\""),
        ("battery_v < 3.3 and water_cm > {i}", ""),
    ];
    for i in 0..matching + others {
        let (when, extra) = shapes[i % shapes.len()];
        let select = if i < matching {
            "kind = \"manhole\"\nbuilding = \"b1\"".to_string()
        } else if i % 2 == 0 {
            "kind = \"elevator\"".to_string()
        } else {
            format!("kind = \"manhole\"\nbuilding = \"b{}\"", 2 + i % 50)
        };
        text.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\nseverity = \"major\"\n{select}\nwhen = \"{}\"\n{extra}\nmessage = {{ zh-CN = \"x\", en = \"x\" }}\n\n",
            when.replace("{i}", &(i % 200).to_string())
        ));
    }
    text
}

fn engine(matching: usize, others: usize) -> Engine {
    let set = RuleSet::parse(&rules(matching, others), &schema()).expect("bench rules load");
    let devices = (0..100).map(|d| DeviceInfo {
        id: format!("mh-{d}").into(),
        kind: "manhole".into(),
        community: "c".into(),
        building: "b1".into(),
        grid: "g1".into(),
        tags: Vec::<Arc<str>>::new(),
        report_every_ms: 300_000,
    });
    Engine::new(set, devices, 0)
}

const DATA: [(&str, Val); 5] = [
    ("tilt_deg", Val::Num(1.5)),
    ("cover_open", Val::Bool(false)),
    ("water_cm", Val::Num(12.5)),
    ("gas_ppm", Val::Num(40.0)),
    ("battery_v", Val::Num(3.61)),
];

fn run(c: &mut Criterion, group: &str, sizes: &[(usize, usize)], label: fn(usize, usize) -> usize) {
    let mut g = c.benchmark_group(group);
    for &(matching, others) in sizes {
        let mut e = engine(matching, others);
        let mut out = Vec::new();
        let mut seq = 0u64;
        g.throughput(Throughput::Elements(matching as u64));
        g.bench_function(BenchmarkId::from_parameter(label(matching, others)), |b| {
            b.iter(|| {
                seq += 1;
                out.clear();
                let device = ["mh-1", "mh-2", "mh-3"][(seq % 3) as usize];
                e.observe(
                    &Msg {
                        device,
                        seq,
                        at_ms: seq * 1000,
                        event: None,
                        data: &DATA,
                    },
                    &mut out,
                );
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn evaluate(c: &mut Criterion) {
    run(c, "evaluate", &[(10, 0), (100, 0), (1000, 0)], |m, _| m);
}

fn unrelated(c: &mut Criterion) {
    run(
        c,
        "unrelated",
        &[(10, 0), (10, 100), (10, 1000), (10, 10_000)],
        |_, o| o,
    );
}

fn condition(c: &mut Criterion) {
    let ours = Expr::parse("water_cm >= 80 and not cover_open", &|n| match n {
        "water_cm" => Ok(Type::Number),
        "cover_open" => Ok(Type::Bool),
        _ => Err(String::new()),
    })
    .expect("parses");
    let program = cel::Program::compile("water_cm >= 80.0 && !cover_open").expect("CEL parses");
    let root = cel::Context::default();
    let mut g = c.benchmark_group("condition");
    let mut level = 0.0;
    g.bench_function("ours", |b| {
        b.iter(|| {
            level = (level + 1.0) % 100.0;
            // The values come from the message, as in the engine.
            let values = [Val::Num(black_box(level)), Val::Bool(false)];
            black_box(ours.eval(&values))
        })
    });
    g.bench_function("cel", |b| {
        b.iter(|| {
            level = (level + 1.0) % 100.0;
            let mut ctx = root.new_inner_scope();
            ctx.add_variable_from_value("water_cm", black_box(level));
            ctx.add_variable_from_value("cover_open", false);
            black_box(program.execute(&ctx).ok())
        })
    });
    g.finish();
}

criterion_group!(benches, evaluate, unrelated, condition);
criterion_main!(benches);
