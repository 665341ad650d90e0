//! Every registered lab: catalog membership, seek equals a fresh run, determinism, and a
//! fuzz-style drive with random configs and actions that must never panic.

use distlab_core::lab::Lab;
use distlab_core::lab::catalog::{CATALOG_MD, CATALOG_ROWS};
use distlab_core::registry::{registered, replay_lab};
use distlab_core::rng::SimRng;
use distlab_core::{Duration, catalog, create_lab};
use serde_json::{Value, json};
use std::collections::BTreeSet;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

fn lab_ids() -> Vec<&'static str> {
    registered().into_iter().map(|(id, _)| id).collect()
}

#[distlab_tests::test]
fn catalog_ids_are_unique_and_every_lab_is_in_it() {
    let mut seen = BTreeSet::new();
    for row in CATALOG_ROWS {
        assert!(
            seen.insert(row.id),
            "{} appears twice in the catalog",
            row.id
        );
        assert!(
            row.id.starts_with(&format!("{}.", row.section)),
            "{} is not in section {}",
            row.id,
            row.section
        );
    }
    let mut labs = BTreeSet::new();
    for id in lab_ids() {
        assert!(seen.contains(id), "lab {id} is not a catalog id");
        assert!(labs.insert(id), "lab {id} is registered twice");
    }
    let implemented: Vec<_> = catalog()
        .into_iter()
        .filter(|e| e.implemented)
        .map(|e| e.id)
        .collect();
    assert_eq!(implemented.len(), labs.len());
}

// Native only: it reads shared/CATALOG.md, and a browser has no file system.
#[test]
fn catalog_data_matches_catalog_md_when_present() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/CATALOG.md");
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("skipping: {path} not present");
        return;
    };
    let ids_in_md: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter(|id| {
            id.contains('.')
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        })
        .collect();
    // Ids the project adds to CATALOG.md's, each for an issue that asks for a lab the
    // catalog has no id for (issue 19's service-mesh lab).
    const PROJECT_IDS: &[&str] = &["resilience.mesh"];
    let ids_in_core: BTreeSet<&str> = CATALOG_ROWS
        .iter()
        .map(|r| r.id)
        .filter(|id| !PROJECT_IDS.contains(id))
        .collect();
    assert_eq!(ids_in_md, ids_in_core);

    // The data file core parses (core/src/lab/catalog.md) has CATALOG.md's table lines, in
    // order, except that a blank `what` cell may be filled in.
    fn table_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.starts_with('|')).collect()
    }
    fn cells(line: &str) -> Vec<&str> {
        line.split('|').map(str::trim).collect()
    }
    let project_row = |l: &&str| {
        PROJECT_IDS
            .iter()
            .any(|id| l.starts_with(&format!("| {id} ")))
    };
    let data: Vec<&str> = table_lines(CATALOG_MD)
        .into_iter()
        .filter(|l| !project_row(l))
        .collect();
    let md = table_lines(&text);
    for (i, (m, d)) in md.iter().zip(&data).enumerate() {
        let (mc, dc) = (cells(m), cells(d));
        let filled = mc.len() == 5
            && dc.len() == 5
            && mc[2].is_empty()
            && (0..5).all(|c| c == 2 || mc[c] == dc[c]);
        assert!(
            m == d || filled,
            "table line {} of CATALOG.md differs in core/src/lab/catalog.md:\n  {m}\n  {d}",
            i + 1
        );
    }
    assert_eq!(
        md.len(),
        data.len(),
        "CATALOG.md and core/src/lab/catalog.md have different row counts"
    );
}

#[distlab_tests::test]
fn unknown_and_planned_ids_are_clear_errors() {
    let e = create_lab("no.such-lab", &Value::Null)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unknown lab"), "{e}");
    let e = create_lab("scenario.dual-write", &Value::Null)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not implemented yet"), "{e}");
}

fn fingerprint(lab: &dyn Lab) -> (Value, Value) {
    let trace = lab.trace();
    (
        serde_json::to_value(lab.view()).unwrap(),
        trace.get("hash").cloned().unwrap_or(Value::Null),
    )
}

/// Drives a lab with a deterministic mix of steps and example actions.
fn drive(lab: &mut dyn Lab, rng: &mut SimRng, rounds: usize) {
    let examples = lab
        .example_actions()
        .as_array()
        .cloned()
        .unwrap_or_default();
    for _ in 0..rounds {
        match rng.below(3) {
            0 => {
                lab.step(Duration::from_micros(rng.below(200_000))).unwrap();
            }
            1 => {
                lab.step_events(rng.below(500)).unwrap();
            }
            _ => {
                if let Some(a) = examples.get(rng.below(examples.len() as u64 + 1) as usize) {
                    let _ = lab.act(a);
                }
            }
        }
    }
}

#[distlab_tests::test(each = lab_ids())]
fn seek_equals_the_run_that_got_there(id: &'static str) {
    for seed in 0..4u64 {
        let mut rng = SimRng::new(seed);
        let mut lab = create_lab(id, &Value::Null).unwrap();
        let examples = lab
            .example_actions()
            .as_array()
            .cloned()
            .unwrap_or_default();
        // Step by events only, so the clock is always where the last event left it.
        // A fingerprint (the whole view and trace as JSON) is the costly part, so one
        // is kept at about a quarter of the stops: the 12 seeks below pick among them,
        // and the suite stays within Chrome's 30 s per-test budget in a debug build.
        // A step already kept is always re-taken: seek(k) restores the state after
        // every action taken at step k, and a lab that has run out of events takes
        // several actions at one step.
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..150 {
            if rng.chance(0.2)
                && let Some(a) = examples.get(rng.below(examples.len() as u64) as usize)
            {
                let _ = lab.act(a);
            }
            if rng.chance(0.25) || seen.contains_key(&lab.steps()) {
                seen.insert(lab.steps(), fingerprint(lab.as_ref()));
            }
            lab.step_events(1 + rng.below(40)).unwrap();
        }
        seen.insert(lab.steps(), fingerprint(lab.as_ref()));
        let steps: Vec<u64> = seen.keys().copied().collect();
        for _ in 0..12 {
            let k = steps[rng.below(steps.len() as u64) as usize];
            assert_eq!(lab.seek(k).unwrap(), k);
            let got = fingerprint(lab.as_ref());
            let want = &seen[&k];
            let diff: Vec<String> = got
                .0
                .as_object()
                .unwrap()
                .iter()
                .filter(|(key, v)| want.0.get(key.as_str()) != Some(v))
                .map(|(key, v)| format!("{key}: {v} vs {}", want.0[key.as_str()]))
                .collect();
            assert!(
                got == *want,
                "{id} seed {seed}: seek({k}) differs from the run: {diff:?}, hash {} vs {}",
                got.1,
                want.1
            );
        }
    }
}

#[distlab_tests::test(each = lab_ids())]
fn a_recorded_action_script_replays_to_the_same_state(id: &'static str) {
    let mut lab = create_lab(id, &Value::Null).unwrap();
    drive(lab.as_mut(), &mut SimRng::new(3), 60);
    lab.step_events(0).unwrap();
    let replayed = replay_lab(id, &lab.config(), &lab.actions()).unwrap();
    assert_eq!(
        replayed.steps(),
        lab.actions()
            .as_array()
            .unwrap()
            .last()
            .map_or(0, |a| a["step"].as_u64().unwrap())
    );
    let mut original = create_lab(id, &Value::Null).unwrap();
    drive(original.as_mut(), &mut SimRng::new(3), 60);
    let mut replayed = replayed;
    let target = original.steps();
    replayed.seek(target).unwrap();
    original.seek(target).unwrap();
    assert_eq!(
        fingerprint(replayed.as_ref()),
        fingerprint(original.as_ref()),
        "{id}"
    );
}

#[distlab_tests::test(each = lab_ids())]
fn same_config_and_actions_give_the_same_view(id: &'static str) {
    let mut a = create_lab(id, &Value::Null).unwrap();
    let mut b = create_lab(id, &Value::Null).unwrap();
    drive(a.as_mut(), &mut SimRng::new(7), 60);
    drive(b.as_mut(), &mut SimRng::new(7), 60);
    assert_eq!(fingerprint(a.as_ref()), fingerprint(b.as_ref()), "{id}");
}

/// Random JSON of every shape, biased towards the awkward values.
fn random_json(rng: &mut SimRng, depth: u32) -> Value {
    match rng.below(if depth == 0 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.chance(0.5)),
        2 => [
            json!(0),
            json!(-1),
            json!(1),
            json!(2),
            json!(3),
            json!(63),
            json!(64),
            json!(1_000_000_000_000i64),
            json!(u64::MAX),
        ][rng.below(9) as usize]
            .clone(),
        3 => json!([0.5, -0.5, 1e300, -1e300, 1e-300, 0.0][rng.below(6) as usize]),
        4 => json!(["", "x", "crash", "partition", "NaN", "Infinity"][rng.below(6) as usize]),
        5 => json!(rng.next_u64() % 100),
        6 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "type",
                "node",
                "groups",
                "probability",
                "latency",
                "from",
                "to",
                "ms",
                "seed",
                "nodes",
                "network",
            ];
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                m.insert(
                    keys[rng.below(keys.len() as u64) as usize].to_string(),
                    random_json(rng, depth - 1),
                );
            }
            Value::Object(m)
        }
    }
}

/// Replaces one random leaf of `v` with random JSON.
fn mutate(v: &mut Value, rng: &mut SimRng) {
    match v {
        Value::Object(m) if !m.is_empty() && rng.chance(0.8) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.below(keys.len() as u64) as usize];
            if let Some(child) = m.get_mut(k) {
                mutate(child, rng);
            }
        }
        Value::Array(a) if !a.is_empty() && rng.chance(0.8) => {
            let i = rng.below(a.len() as u64) as usize;
            mutate(&mut a[i], rng);
        }
        _ => *v = random_json(rng, 2),
    }
}

#[distlab_tests::test(each = lab_ids())]
fn random_configs_and_actions_never_panic(id: &'static str) {
    let default_config = create_lab(id, &Value::Null).unwrap().config();
    let mut rng = SimRng::new(99);
    let mut errors = 0;
    for round in 0..300 {
        let mut config = default_config.clone();
        mutate(&mut config, &mut rng);
        let config = if round % 3 == 0 {
            default_config.clone()
        } else {
            config
        };
        let Ok(mut lab) = create_lab(id, &config) else {
            errors += 1;
            continue;
        };
        let examples = lab
            .example_actions()
            .as_array()
            .cloned()
            .unwrap_or_default();
        for _ in 0..20 {
            match rng.below(7) {
                0 => {
                    let _ = lab.step(Duration::from_micros(rng.below(50_000)));
                }
                1 => {
                    let _ = lab.step_events(rng.below(200));
                }
                2 => {
                    let _ = lab.seek(rng.below(lab.steps() + 10));
                }
                3 => {
                    let _ = lab.act(&random_json(&mut rng, 3));
                }
                6 => {
                    // Later actions for the run to take, possibly broken.
                    let mut more = json!([{
                        "step": lab.steps() + rng.below(50),
                        "atUs": lab.now().0 + rng.below(100_000),
                        "action": examples
                            .get(rng.below(examples.len().max(1) as u64) as usize)
                            .cloned()
                            .unwrap_or(Value::Null),
                    }]);
                    if rng.chance(0.5) {
                        mutate(&mut more, &mut rng);
                    }
                    let _ = lab.extend_actions(&more);
                    let _ = lab.trace_from(rng.below(1_000), rng.below(100) as usize);
                }
                _ => {
                    let mut a = examples
                        .get(rng.below(examples.len().max(1) as u64) as usize)
                        .cloned()
                        .unwrap_or(Value::Null);
                    if rng.chance(0.5) {
                        mutate(&mut a, &mut rng);
                    }
                    if lab.act(&a).is_err() {
                        errors += 1;
                    }
                }
            }
            let _ = serde_json::to_string(&lab.view()).unwrap();
        }
        let _ = lab.trace();
        let _ = lab.config_schema();
        let _ = lab.action_schema();
        // A step to the end of time stops at the per-call event limit: up to 200,000
        // events, which in a debug build in the browser is seconds. Every tenth config
        // takes one, so the suite stays far from Chrome's 30-second limit per test.
        if round % 10 == 0 {
            let _ = lab.step(Duration::from_secs(u64::MAX / 2_000_000));
        }
    }
    assert!(errors > 0, "{id}: the fuzz never produced a bad input");
}

/// A `step(dt)` that ends exactly on an event's time, followed by an action: the replay
/// must move the clock there too (a metric sample may fall due), or the views differ.
#[distlab_tests::test(each = lab_ids())]
fn replay_reproduces_actions_taken_after_whole_steps(id: &'static str) {
    let mut lab = create_lab(id, &Value::Null).unwrap();
    let examples = lab
        .example_actions()
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut rng = SimRng::new(11);
    for round in 0..30u64 {
        lab.step(Duration::from_millis(50 * (1 + round % 3)))
            .unwrap();
        if let Some(a) = examples.get(rng.below(examples.len().max(1) as u64) as usize) {
            let _ = lab.act(a);
        }
    }
    let want = fingerprint(lab.as_ref());
    let replayed = replay_lab(id, &lab.config(), &lab.actions()).unwrap();
    if lab.actions().as_array().is_some_and(|a| !a.is_empty()) {
        let last = &lab.actions().as_array().unwrap().last().unwrap().clone();
        if last["step"].as_u64() == Some(lab.steps()) {
            let got = fingerprint(replayed.as_ref());
            let diff: Vec<String> = got
                .0
                .as_object()
                .unwrap()
                .iter()
                .filter(|(key, v)| want.0.get(key.as_str()) != Some(v))
                .map(|(key, v)| {
                    if let (Some(a), Some(b)) = (v.as_array(), want.0[key.as_str()].as_array()) {
                        let d: Vec<String> = a
                            .iter()
                            .zip(b)
                            .filter(|(x, y)| x != y)
                            .map(|(x, y)| format!("{} {} vs {}", x["name"], x["y"], y["y"]))
                            .collect();
                        return format!("{key}: {d:?}");
                    }
                    format!("{key}: {v} vs {}", want.0[key.as_str()])
                })
                .collect();
            assert!(
                got == want,
                "{id}: replay differs: {diff:?} hash {} vs {}",
                got.1,
                want.1
            );
        }
    }
}

/// `view_fields_of` is `view()` with the other nodes' fields emptied, whether a lab builds
/// only the wanted fields (as `sim.network` does for the page's big clusters) or strips
/// them afterwards (the default).
#[distlab_tests::test(each = lab_ids())]
fn fields_of_some_nodes_is_the_view_with_the_others_emptied(id: &'static str) {
    use distlab_core::lab::FieldsOf;
    let mut rng = SimRng::new(11);
    let mut lab = create_lab(id, &Value::Null).unwrap();
    for _ in 0..4 {
        drive(lab.as_mut(), &mut rng, 6);
        let full = lab.view();
        assert_eq!(lab.view_fields_of(&FieldsOf::All), full, "{id}: all fields");
        let ids: Vec<_> = full.nodes.iter().map(|n| n.id).collect();
        let wanted: BTreeSet<_> = ids.iter().copied().filter(|_| rng.chance(0.3)).collect();
        let fields = FieldsOf::Only(wanted);
        let mut want = full.clone();
        fields.strip(&mut want);
        assert_eq!(lab.view_fields_of(&fields), want, "{id}: {fields:?}");
        assert_eq!(
            lab.view_fields_of(&FieldsOf::Only(BTreeSet::new()))
                .nodes
                .iter()
                .filter(|n| !n.fields.is_empty())
                .count(),
            0,
            "{id}: no node's fields"
        );
    }
}

/// Found in consensus.raft: a pause, a resume between whole steps, then more time. The
/// replay matched right after the resume but drifted apart later: events that do not count
/// as steps (messages parked at the paused node) were still queued when the replay applied
/// the resume. Every pair of consecutive example actions (crash then restart, pause then
/// resume...) goes through the same sequence here.
#[distlab_tests::test(each = lab_ids())]
fn a_replay_keeps_matching_after_its_last_action(id: &'static str) {
    let examples = create_lab(id, &Value::Null)
        .unwrap()
        .example_actions()
        .as_array()
        .cloned()
        .unwrap_or_default();
    for pair in examples.windows(2) {
        let mut lab = create_lab(id, &Value::Null).unwrap();
        lab.step(Duration::from_millis(1_500)).unwrap();
        let _ = lab.act(&pair[0]);
        lab.step(Duration::from_millis(100)).unwrap();
        let _ = lab.act(&pair[1]);
        lab.step(Duration::from_millis(150)).unwrap();
        let mut replayed = replay_lab(id, &lab.config(), &lab.actions()).unwrap();
        let at = lab.now();
        while replayed.now() < at {
            replayed.step(at - replayed.now()).unwrap();
        }
        assert_eq!(replayed.steps(), lab.steps(), "{id}: steps after {pair:?}");
        assert!(
            fingerprint(replayed.as_ref()) == fingerprint(lab.as_ref()),
            "{id}: the replay drifted after {pair:?}"
        );
    }
}

/// A reader that holds the trace up to `events` and asks only for what came after (as the
/// page's trace worker does) ends up with the same events as one that reads it whole.
#[distlab_tests::test]
fn the_trace_read_in_pieces_is_the_whole_trace() {
    let mut numbered_labs = BTreeSet::new();
    for id in lab_ids() {
        let mut lab = create_lab(id, &Value::Null).unwrap();
        let mut held: Vec<Value> = Vec::new();
        let mut have = 0u64;
        let mut numbered = false;
        for round in 0..5u64 {
            lab.step(Duration::from_millis(40 * (round + 1))).unwrap();
            let piece = lab.trace_from(have, usize::MAX);
            let events = piece["events"].as_u64().unwrap();
            match piece["first"].as_u64() {
                Some(first) => {
                    numbered = true;
                    assert_eq!(first, have, "{id}: the piece starts where the reader is");
                    held.extend(piece["trace"].as_array().unwrap().iter().cloned());
                }
                // Not numbered: the whole trace each time.
                None => held = piece["trace"].as_array().unwrap().clone(),
            }
            have = events;
            assert_eq!(piece["hash"], lab.trace()["hash"], "{id}");
        }
        let whole = lab.trace_from(0, usize::MAX);
        assert_eq!(&held, whole["trace"].as_array().unwrap(), "{id}");
        if numbered {
            numbered_labs.insert(id);
            assert_eq!(whole["first"], 0, "{id}");
            assert_eq!(held.len() as u64, have, "{id}: every event numbered");
            // `trace()` is the newest part of it.
            let tail = lab.trace()["trace"].as_array().unwrap().clone();
            assert!(held.ends_with(&tail), "{id}");
            let newest = lab.trace_from(0, 3);
            assert_eq!(newest["first"], have - 3, "{id}");
            assert_eq!(
                newest["trace"].as_array().unwrap()[..],
                held[held.len() - 3..]
            );
        }
    }
}

/// A replica that got the first actions of a run by replay and the rest by
/// `extend_actions` (as the page's trace worker follows the page) reaches the same state;
/// actions from before its present are refused and change nothing.
#[distlab_tests::test(each = lab_ids())]
fn a_replica_extended_with_later_actions_follows_the_run(id: &'static str) {
    let mut lab = create_lab(id, &Value::Null).unwrap();
    drive(lab.as_mut(), &mut SimRng::new(8), 40);
    let all = lab.actions().as_array().cloned().unwrap_or_default();
    let (first, rest) = all.split_at(all.len() / 2);
    let mut replica = replay_lab(id, &lab.config(), &json!(first)).unwrap();
    let here = replica.steps();
    if let Some(next) = rest.first() {
        // Stepped past the next action, the replica cannot take it any more.
        let past = next["step"].as_u64().unwrap() + 1;
        if replica.seek(past).unwrap() == past {
            let e = replica
                .extend_actions(&json!(rest))
                .unwrap_err()
                .to_string();
            assert!(e.contains("actions[0]"), "{id}: {e}");
        }
        replica.seek(here).unwrap();
    }
    replica.extend_actions(&json!(rest)).unwrap();
    // Both seek to the end (the original's clock may have moved past its last event).
    let end = lab.steps();
    lab.seek(end).unwrap();
    replica.seek(end).unwrap();
    assert_eq!(replica.actions(), lab.actions(), "{id}");
    assert!(
        fingerprint(replica.as_ref()) == fingerprint(lab.as_ref()),
        "{id}: the extended replica differs"
    );
}

/// An added action that turns out not to apply when the run reaches it is an error there,
/// and goes (with any after it): the run then goes on without it.
#[distlab_tests::test]
fn an_added_action_that_cannot_apply_is_dropped_with_an_error() {
    let mut lab = create_lab("sim.network", &Value::Null).unwrap();
    lab.step(Duration::from_millis(100)).unwrap();
    let at = lab.steps() + 5;
    lab.extend_actions(&json!([
        {"step": at, "atUs": 0, "action": {"type": "crash", "node": 99}},
        {"step": at + 1, "atUs": 0, "action": {"type": "crash", "node": 1}},
    ]))
    .unwrap();
    let e = lab
        .step(Duration::from_millis(100))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("step {at}")), "{e}");
    assert_eq!(lab.steps(), at);
    lab.step(Duration::from_millis(100)).unwrap();
    assert!(lab.steps() > at);
    assert_eq!(lab.actions(), json!([]));
}
