//! The lab's unit tests: generated, edited and pasted histories, checked against fresh
//! checks of everything revealed.

use super::spec::{Op, Spec, label};
use super::*;
use crate::lab::view::InvariantStatus;
use crate::lab::{Lab, LabModel, Local, Runner};
use crate::sim::linearizability::{
    CasRegister, CasRegisterInput, KvInput, KvModel, Register, RegisterInput, Response, check,
    replay,
};

fn lab(config: Value) -> Runner<Local<LinearizabilityLab>> {
    Runner::from_json(&config).unwrap()
}

fn run_to_end(l: &mut Runner<Local<LinearizabilityLab>>) {
    l.step(Duration::from_secs(1_000_000_000)).unwrap();
    assert_eq!(l.model().revealed, l.model().events.len());
}

fn invariant(v: &View, name: &str) -> InvariantStatus {
    v.invariants
        .iter()
        .find(|i| i.name == name)
        .cloned()
        .unwrap()
}

fn field_of(e: DistlabError) -> String {
    match e {
        DistlabError::InvalidField { field, .. } => field,
        other => panic!("expected a field error, got {other}"),
    }
}

fn has_violation(l: &Runner<Local<LinearizabilityLab>>) -> bool {
    l.model().violations().next().is_some()
}

/// The revealed history as the checker sees it: pending operations without return
/// and output, with the lab's operation numbers.
fn revealed_history<M: Spec>(lab: &LinearizabilityLab, h: &History<M>) -> (Vec<u32>, Vec<Op<M>>) {
    (0..h.ops.len() as u32)
        .filter(|&op| lab.is_called(op))
        .map(|op| {
            let mut o = h.ops[op as usize].clone();
            if !lab.is_returned(op) {
                o.ret = None;
                o.output = Response::Unknown;
            }
            (op, o)
        })
        .unzip()
}

/// Checks the cached verdict against a fresh check of the whole revealed history, and
/// each violation's prefix independently: it replays, and it is linearizable on its
/// own.
fn audit<M: Spec>(lab: &LinearizabilityLab, h: &History<M>) {
    let (ids, ops) = revealed_history(lab, h);
    let local = |op: &u32| ids.iter().position(|i| i == op).unwrap();
    let fresh = check(&h.model, &ops).unwrap();
    let cached_bad = lab.violations().next().is_some();
    assert_eq!(
        fresh.linearizable,
        !cached_bad,
        "{}",
        lab.verdict_text(Time::MAX)
    );
    for part in lab.violations() {
        let PartVerdict::Violation { prefix, .. } = &part.check.verdict else {
            unreachable!()
        };
        let prefix: Vec<usize> = prefix.iter().map(local).collect();
        replay(&h.model, &ops, &prefix).unwrap();
        let alone: Vec<_> = prefix.iter().map(|&i| ops[i].clone()).collect();
        assert!(check(&h.model, &alone).unwrap().linearizable);
    }
    for part in &lab.parts {
        assert_eq!(part.check.replay_problem, None);
    }
}

fn audit_any(lab: &LinearizabilityLab) {
    match &lab.history {
        AnyHistory::Register(h) => audit(lab, h),
        AnyHistory::CasRegister(h) => audit(lab, h),
        AnyHistory::Kv(h) => audit(lab, h),
        AnyHistory::MultiRegister(h) => audit_multi(lab, h),
    }
}

/// [`audit`] for a multi-register history: the cached verdict against a fresh check of
/// everything revealed.
fn audit_multi(lab: &LinearizabilityLab, h: &multi::MultiHistory) {
    let ops: Vec<multi::TxnOp> = (0..h.ops.len() as u32)
        .filter(|&op| lab.is_called(op))
        .map(|op| {
            let mut o = h.ops[op as usize].clone();
            if !lab.is_returned(op) {
                o.ret = None;
                o.output = Response::Unknown;
            }
            o
        })
        .collect();
    let fresh = check(&h.model, &ops).unwrap();
    assert_eq!(
        fresh.linearizable,
        lab.violations().next().is_none(),
        "{}",
        lab.verdict_text(Time::MAX)
    );
    for part in &lab.parts {
        assert_eq!(part.check.replay_problem, None);
    }
}

#[test]
fn a_lagging_replica_yields_violations_whose_prefixes_replay() {
    for model in ["register", "casRegister", "kv"] {
        let mut found = 0;
        for seed in 0..20 {
            let mut l = lab(json!({"seed": seed, "model": model, "store": {
                "type": "laggingReplica", "staleReadProbability": 0.3,
                "lostWriteProbability": 0.05, "lagTicks": 10}}));
            // Audit at every step: the verdict is cached, never stale.
            while l.step_events(1).unwrap() == 1 {
                audit_any(l.model());
            }
            if has_violation(&l) {
                found += 1;
                let v = l.view();
                let i = invariant(&v, LINEARIZABLE);
                assert!(!i.ok && !i.nodes.is_empty(), "{i:?}");
                assert!(invariant(&v, CORRECT_STORE).ok);
                assert!(invariant(&v, REPLAYS).ok);
                let text = l.model().verdict_text(l.now());
                assert!(text.contains("Longest linearizable prefix"), "{text}");
                assert!(text.contains("none fits"), "{text}");
            }
        }
        assert!(found >= 10, "{model}: only {found} of 20 seeds went wrong");
    }
}

#[test]
fn a_correct_store_is_always_linearizable() {
    for model in ["register", "casRegister", "kv"] {
        for seed in 0..60 {
            let mut l = lab(json!({"seed": seed, "model": model, "clients": 6,
                "operations": 80, "timeoutProbability": 0.1, "store": {"type": "correct"}}));
            while l.step_events(7).unwrap() > 0 {
                let v = l.view();
                let i = invariant(&v, CORRECT_STORE);
                assert!(
                    i.ok && !i.detail.contains("not applicable"),
                    "{model} {seed}"
                );
            }
            let m = l.model();
            assert!(
                m.parts
                    .iter()
                    .all(|p| matches!(p.check.verdict, PartVerdict::Linearizable { .. }))
            );
            audit_any(m);
        }
    }
}

#[test]
fn the_correct_store_invariant_can_fail() {
    // The invariant is a real check: a history it covers that the checker rejects (here
    // faked by flipping the store the lab believes it has) is reported.
    let mut l = lab(Value::Null);
    run_to_end(&mut l);
    let mut m = l.model().clone();
    assert!(m.violations().next().is_some());
    let Source::Generated(mut g) = m.source else {
        panic!()
    };
    g.store = StoreKind::Correct;
    m.source = Source::Generated(g);
    let i = invariant(&m.view(), CORRECT_STORE);
    assert!(!i.ok && i.detail.contains("wrong"), "{i:?}");
}

/// A returned read of the revealed history, and its value.
fn a_read(l: &Runner<Local<LinearizabilityLab>>) -> (u32, Option<i64>) {
    let AnyHistory::Register(h) = &l.model().history else {
        panic!()
    };
    h.ops
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, op)| match (&op.input, &op.output) {
            (RegisterInput::Read, Response::Value { value }) if value.is_some() => {
                Some((i as u32, *value))
            }
            _ => None,
        })
        .unwrap()
}

#[test]
fn an_edit_that_breaks_linearizability_is_caught_and_undoing_it_restores() {
    let mut l = lab(json!({"store": {"type": "correct"}, "seed": 5}));
    run_to_end(&mut l);
    assert!(!has_violation(&l));
    let checks = l.model().checks;
    let (read, value) = a_read(&l);
    l.act(&json!({"type": "editOutput", "op": read,
                  "output": {"result": "value", "value": 999_999}}))
        .unwrap();
    assert!(has_violation(&l));
    assert_eq!(l.model().checks, checks + 1, "one part re-checked");
    let v = l.view();
    assert!(!invariant(&v, LINEARIZABLE).ok);
    assert!(
        invariant(&v, CORRECT_STORE)
            .detail
            .contains("not applicable")
    );
    let text = l.model().verdict_text(l.now());
    assert!(text.contains("no operation ever writes 999999"), "{text}");
    assert!(text.contains("edited 1 time"), "{text}");
    audit_any(l.model());
    l.act(&json!({"type": "editOutput", "op": read,
                  "output": {"result": "value", "value": value}}))
        .unwrap();
    assert!(!has_violation(&l));
    assert!(invariant(&l.view(), LINEARIZABLE).ok);
    audit_any(l.model());
}

#[test]
fn dropping_the_write_a_read_saw_breaks_it_and_a_timeout_explains_it() {
    let mut l = lab(json!({"store": {"type": "correct"}, "seed": 5, "timeoutProbability": 0}));
    run_to_end(&mut l);
    let (_, value) = a_read(&l);
    let AnyHistory::Register(h) = &l.model().history else {
        panic!()
    };
    let write = h
        .ops
        .iter()
        .position(|op| {
            op.input
                == RegisterInput::Write {
                    value: value.unwrap(),
                }
        })
        .unwrap() as u32;
    let mut dropped = l.model().clone();
    dropped
        .act(&LinearizabilityLabAction::DropOperation { op: write })
        .unwrap();
    assert!(dropped.violations().next().is_some());
    assert!(!dropped.is_called(write));
    // A write whose response was lost may still have taken effect.
    l.act(&json!({"type": "markTimedOut", "op": write}))
        .unwrap();
    assert!(!has_violation(&l));
    assert!(!l.model().is_returned(write));
    let bar = match &l.view().panels[0] {
        Panel::Timeline { bars, .. } => bars
            .iter()
            .find(|b| b.label.starts_with(&format!("#{write} ")))
            .cloned()
            .unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(bar.end, None);
    assert_eq!(bar.state, "linearized");
    // Moving the write after the read that saw it breaks real time.
    let (read, _) = a_read(&l);
    let ret = l.model().history.get().ret(read).unwrap();
    l.act(&json!({"type": "editInterval", "op": write, "call": ret + 1, "ret": ret + 2}))
        .unwrap();
    assert!(has_violation(&l));
    audit_any(l.model());
}

#[test]
fn each_step_reveals_one_event_and_only_returns_re_check() {
    let mut l = lab(json!({"store": {"type": "correct"}, "seed": 9}));
    let total = l.model().events.len();
    let mut last_bars = 0;
    for k in 1..=total {
        assert_eq!(l.step_events(1).unwrap(), 1);
        let m = l.model();
        assert_eq!(m.revealed, k);
        assert_eq!(l.steps(), k as u64);
        assert_eq!(m.checks as usize, m.returned, "one check per return");
        let Panel::Timeline { bars, .. } = &l.view().panels[0] else {
            panic!()
        };
        assert!(bars.len() == last_bars || bars.len() == last_bars + 1);
        assert_eq!(bars.len(), m.called);
        assert_eq!(
            bars.iter().filter(|b| b.end.is_none()).count(),
            m.called - m.returned
        );
        last_bars = bars.len();
    }
    assert_eq!(l.step_events(1).unwrap(), 0);
    // Events at equal times: calls first, so closed intervals overlap.
    let events = &l.model().events;
    assert!(events.windows(2).all(|w| w[0] < w[1]));
    // Time: one tick is 100 ms.
    let last = events.last().unwrap().time;
    assert_eq!(l.now(), Time::from_millis(last * 100));
    // Seeking back shows the shorter history again.
    l.seek(10).unwrap();
    assert_eq!(l.model().revealed, 10);
}

#[test]
fn a_violated_part_is_re_checked_only_when_its_report_changes() {
    let mut l = lab(json!({"model": "kv", "seed": 3, "keys": 3}));
    // The audit at every step shows the cached reports stay true.
    while l.step_events(1).unwrap() == 1 {
        audit_any(l.model());
    }
    let m = l.model();
    assert!(m.violations().next().is_some());
    assert!(
        (m.checks as usize) < m.returned,
        "returns the bad part's report does not name need no check"
    );
    let Panel::Table { rows, .. } = &l.view().panels[2] else {
        panic!()
    };
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().any(|r| r[2] == json!("not linearizable")));
    assert!(rows.iter().any(|r| r[2] == json!("linearizable")));
}

#[test]
fn pasted_examples_are_judged() {
    let mut etcd = lab(json!({"history": {"format": "etcdLog", "text": EXAMPLE_ETCD_LOG}}));
    run_to_end(&mut etcd);
    assert!(has_violation(&etcd));
    let text = etcd.model().verdict_text(etcd.now());
    assert!(
        text.contains("cas(1,2)✓") && text.contains("etcd log"),
        "{text}"
    );
    audit_any(etcd.model());
    let mut kv = lab(json!({"history": {"format": "kvEdn", "text": EXAMPLE_KV_EDN}}));
    run_to_end(&mut kv);
    assert!(!has_violation(&kv));
    assert_eq!(kv.model().parts.len(), 2);
    // Pasting into a running lab starts over at the current time.
    let mut l = lab(Value::Null);
    l.step_events(25).unwrap();
    let now = l.now();
    l.act(&json!({"type": "paste", "format": "etcdLog", "text": EXAMPLE_ETCD_LOG}))
        .unwrap();
    assert_eq!(l.model().revealed, 0);
    assert_eq!(l.model().origin, now);
    assert_eq!(
        l.model().history.get().model_name(),
        "A compare-and-set register"
    );
    run_to_end(&mut l);
    assert!(has_violation(&l));
}

#[test]
fn labels_read_like_operations() {
    let cas = CasRegisterInput::Cas {
        expected: 1,
        new: 2,
    };
    assert_eq!(label::<CasRegister>(&cas, &Response::Ok, true), "cas(1,2)✓");
    assert_eq!(
        label::<CasRegister>(&cas, &Response::Failed, true),
        "cas(1,2)✗"
    );
    assert_eq!(
        label::<CasRegister>(&cas, &Response::Failed, false),
        "cas(1,2)?"
    );
    let read = RegisterInput::Read;
    let three = Response::Value { value: Some(3) };
    assert_eq!(label::<Register>(&read, &three, true), "r→3");
    assert_eq!(label::<Register>(&read, &three, false), "r→?");
    let nil = Response::Value { value: None };
    assert_eq!(label::<Register>(&read, &nil, true), "r→nil");
    let write = RegisterInput::Write { value: 3 };
    assert_eq!(label::<Register>(&write, &Response::Ok, true), "w(3)");
    let get = KvInput::Get { key: "k0".into() };
    let empty = Response::Value {
        value: String::new(),
    };
    assert_eq!(label::<KvModel>(&get, &empty, true), "k0:r→''");
}

#[test]
fn bad_configs_and_actions_name_the_field_and_change_nothing() {
    let config_cases = [
        (json!({"clients": 0}), "config.clients"),
        (json!({"operations": 301}), "config.operations"),
        (json!({"keys": 17}), "config.keys"),
        (
            json!({"timeoutProbability": 0.9}),
            "config.timeoutProbability",
        ),
        (
            json!({"timeoutProbability": -0.1}),
            "config.timeoutProbability",
        ),
        (json!({"tickMs": 0}), "config.tickMs"),
        (json!({"tickMs": 1e300}), "config.tickMs"),
        (json!({"maxCheckerSteps": 0}), "config.maxCheckerSteps"),
        (
            json!({"store": {"type": "laggingReplica", "staleReadProbability": 2,
                   "lostWriteProbability": 0, "lagTicks": 3}}),
            "config.store.staleReadProbability",
        ),
        (
            json!({"store": {"type": "laggingReplica", "staleReadProbability": 0,
                   "lostWriteProbability": 0, "lagTicks": 0}}),
            "config.store.lagTicks",
        ),
        (
            json!({"history": {"format": "etcdLog", "text": ""}}),
            "config.history.text",
        ),
        (json!({"model": "queue"}), "config.model"),
    ];
    for (config, field) in config_cases {
        let e = Runner::<Local<LinearizabilityLab>>::from_json(&config)
            .err()
            .unwrap();
        assert_eq!(field_of(e), field, "{config}");
    }
    let e =
        Runner::<Local<LinearizabilityLab>>::from_json(&json!({"history": {"format": "etcdLog",
                "text": "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - x"}}))
        .err()
        .unwrap();
    assert!(e.to_string().contains("config.history.text"), "{e}");
    assert!(e.to_string().contains("line 2"), "{e}");
    let mut l = lab(Value::Null);
    l.step_events(30).unwrap();
    let before = (serde_json::to_value(l.view()).unwrap(), l.trace());
    let action_cases = [
        (
            json!({"type": "editOutput", "op": 40, "output": {"result": "ok"}}),
            "action.op",
        ),
        (
            json!({"type": "editOutput", "op": 2, "output": {"result": "ok"}}),
            "action.output.result",
        ),
        (
            json!({"type": "editOutput", "op": 2, "output": {"result": "value", "value": "x"}}),
            "action.output.value",
        ),
        (
            json!({"type": "editInterval", "op": 2, "call": 5, "ret": 4}),
            "action.ret",
        ),
        (
            json!({"type": "editInterval", "op": 2, "call": u64::MAX, "ret": u64::MAX}),
            "action.call",
        ),
        (json!({"type": "markTimedOut", "op": -1}), "action.op"),
        (
            json!({"type": "paste", "format": "kvEdn", "text": "{:process x}"}),
            "action.text",
        ),
        (
            json!({"type": "paste", "format": "etcdLog", "text": "hello"}),
            "action.text",
        ),
        (
            json!({"type": "regenerate", "seed": 1, "store": {"type": "laggingReplica",
                   "staleReadProbability": 0, "lostWriteProbability": 0, "lagTicks": 1e9}}),
            "action.store.lagTicks",
        ),
        (json!({"type": "editOutputs", "op": 1}), "action.type"),
    ];
    for (action, field) in action_cases {
        let e = l.act(&action).unwrap_err();
        assert_eq!(field_of(e), field, "{action}");
    }
    assert_eq!((serde_json::to_value(l.view()).unwrap(), l.trace()), before);
    l.act(&json!({"type": "dropOperation", "op": 0})).unwrap();
    let e = l
        .act(&json!({"type": "dropOperation", "op": 0}))
        .unwrap_err();
    assert!(e.to_string().contains("was dropped"), "{e}");
    // The key-value store reads strings: null is not one.
    let mut kv = lab(json!({"model": "kv"}));
    run_to_end(&mut kv);
    let AnyHistory::Kv(h) = &kv.model().history else {
        panic!()
    };
    let get = h
        .ops
        .iter()
        .position(|o| matches!(o.input, KvInput::Get { .. }))
        .unwrap();
    let e = kv
        .act(
            &json!({"type": "editOutput", "op": get, "output": {"result": "value", "value": null}}),
        )
        .unwrap_err();
    assert_eq!(field_of(e), "action.output.value");
    kv.act(&json!({"type": "editOutput", "op": get, "output": {"result": "value", "value": 7}}))
        .unwrap();
}

#[test]
fn oversized_pastes_are_refused() {
    let line = "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\n";
    let e = AnyHistory::parse(
        HistoryFormat::EtcdLog,
        &line.repeat(MAX_PASTED_OPERATIONS + 1),
        RegisterSetup::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("more than the 1000"), "{e}");
    let e = AnyHistory::parse(
        HistoryFormat::EtcdLog,
        &" ".repeat(MAX_PASTED_BYTES + 1),
        RegisterSetup::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("bytes"), "{e}");
}

#[test]
fn a_tiny_budget_leaves_parts_undecided_and_backs_off() {
    let mut l = lab(
        json!({"store": {"type": "correct"}, "maxCheckerSteps": 1, "clients": 8,
                           "operations": 200}),
    );
    run_to_end(&mut l);
    let v = l.view();
    assert!(invariant(&v, LINEARIZABLE).ok);
    let m = l.model();
    let text = m.verdict_text(l.now());
    assert!(
        text.starts_with("UNDECIDED") && text.contains("twice as many"),
        "{text}"
    );
    // Undecided checks happen when the returns double: a handful, not one per return.
    assert!(m.returned > 190 && m.checks < 12, "{} checks", m.checks);
    // An edit re-checks at once.
    let checks = m.checks;
    l.act(&json!({"type": "markTimedOut", "op": 3})).unwrap();
    assert_eq!(l.model().checks, checks + 1);
}

#[test]
fn examples_apply_and_schemas_name_the_knobs() {
    let l = lab(Value::Null);
    let schema = l.config_schema().to_string();
    assert!(schema.contains("staleReadProbability") && schema.contains("maxCheckerSteps"));
    let actions = l.action_schema().to_string();
    assert!(actions.contains("editOutput") && actions.contains("markTimedOut"));
    for a in l.example_actions().as_array().unwrap() {
        let mut fresh = lab(Value::Null);
        fresh.step_events(40).unwrap();
        fresh.act(a).unwrap_or_else(|e| panic!("{a}: {e}"));
        run_to_end(&mut fresh);
        audit_any(fresh.model());
    }
    assert_eq!(
        serde_json::to_value(LinearizabilityLabAction::Regenerate {
            seed: 7,
            model: None,
            store: None
        })
        .unwrap(),
        json!({"type": "regenerate", "seed": 7})
    );
}

#[test]
fn the_view_shows_the_history_and_the_verdict() {
    let mut l = lab(Value::Null);
    run_to_end(&mut l);
    let v = l.view();
    let Panel::Timeline { lanes, bars, .. } = &v.panels[0] else {
        panic!()
    };
    assert!(lanes.len() >= 4);
    let states: std::collections::BTreeSet<&str> = bars.iter().map(|b| b.state.as_str()).collect();
    assert!(
        states.contains("prefix") && states.contains("unplaceable"),
        "{states:?}"
    );
    assert!(
        bars.iter()
            .filter(|b| b.state == "prefix")
            .all(|b| b.order.is_some())
    );
    assert_eq!(v.nodes.len(), lanes.len());
    assert_eq!(v.metrics.len(), 3);
    assert!(v.metrics[1].y.last().copied().unwrap() > 0.0);
    let trace = l.trace();
    assert_eq!(trace["events"], json!(l.model().events.len()));
    assert_eq!(trace["complete"], json!(true));
    assert_eq!(trace["trace"][0]["event"], json!("call"));
}

#[test]
fn random_edits_keep_the_cached_verdict_true() {
    use crate::rng::SimRng;
    let (mut applied, mut violated) = (0, 0);
    for seed in 0..12 {
        let mut rng = SimRng::new(seed);
        let model = ["register", "casRegister", "kv"][seed as usize % 3];
        let mut l = lab(json!({"seed": seed, "model": model, "operations": 30,
                               "timeoutProbability": 0.05}));
        for _ in 0..60 {
            let op = rng.below(30);
            let action = match rng.below(7) {
                0 => json!({"type": "editOutput", "op": op, "output": {"result": "unknown"}}),
                1 => json!({"type": "editOutput", "op": op,
                            "output": {"result": "value", "value": rng.below(12)}}),
                2 => json!({"type": "editOutput", "op": op, "output": {"result": "ok"}}),
                3 => {
                    let call = rng.below(60);
                    json!({"type": "editInterval", "op": op, "call": call,
                           "ret": call + rng.below(8)})
                }
                4 => json!({"type": "markTimedOut", "op": op}),
                5 if rng.chance(0.3) => json!({"type": "dropOperation", "op": op}),
                _ => {
                    l.step_events(1 + rng.below(6)).unwrap();
                    audit_any(l.model());
                    continue;
                }
            };
            // Edits that do not fit the operation are refused; the rest re-check.
            if l.act(&action).is_ok() {
                applied += 1;
                violated += usize::from(has_violation(&l));
            }
            audit_any(l.model());
        }
    }
    assert!(
        applied > 200 && violated > 20,
        "{applied} edits, {violated} violated"
    );
}

#[test]
fn pasted_texts_are_marked_as_plain_text_in_the_schemas() {
    // Forms render a string with `contentMediaType` as a text area that keeps newlines:
    // a Jepsen history is one operation a line.
    let l = lab(Value::Null);
    let config = l.config_schema();
    let pasted = &config["$defs"]["PastedHistory"]["properties"]["text"];
    assert_eq!(pasted["contentMediaType"], "text/plain", "{config}");
    let actions = l.action_schema();
    let paste = actions["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["properties"]["type"]["const"] == "paste")
        .unwrap_or_else(|| panic!("no paste action in {actions}"));
    assert_eq!(
        paste["properties"]["text"]["contentMediaType"],
        "text/plain"
    );
    // Other strings are not.
    assert!(
        paste["properties"]["format"]
            .get("contentMediaType")
            .is_none()
    );
}
