//! The `sim.linearizability` lab on Porcupine's test data (tests/data/porcupine): pasted
//! histories are revealed event by event, and the lab's verdict must match Porcupine's
//! once everything is revealed, and never go back from "not linearizable" on the way
//! (linearizability is prefix-closed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use distlab_core::lab::view::{Panel, View};
use distlab_core::lab::{Lab, create_lab};
use distlab_core::{DistlabError, Duration};
use serde_json::{Value, json};

const ID: &str = "sim.linearizability";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/porcupine")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(data_dir().join(relative)).unwrap()
}

/// `relative path → expected linearizable`, from VERDICTS.txt.
fn verdicts() -> BTreeMap<String, bool> {
    read("VERDICTS.txt")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (path, verdict) = line.split_once(' ').unwrap();
            (path.to_string(), verdict.trim().parse().unwrap())
        })
        .collect()
}

fn pasted(format: &str, text: &str) -> Result<Box<dyn Lab>, DistlabError> {
    create_lab(ID, &json!({"history": {"format": format, "text": text}}))
}

/// The lab's verdict: `Some(true)` linearizable, `Some(false)` not, `None` undecided.
fn verdict(view: &View) -> Option<bool> {
    let Some(Panel::Table { rows, .. }) = view.panels.get(2) else {
        panic!("no parts table")
    };
    let verdicts: Vec<&str> = rows.iter().map(|r| r[2].as_str().unwrap()).collect();
    if verdicts.contains(&"not linearizable") {
        Some(false)
    } else if verdicts.contains(&"undecided") {
        None
    } else {
        Some(true)
    }
}

/// Reveals the whole history one event at a time, checking on the way that a violation,
/// once found, stays; returns the final verdict.
fn reveal_all(name: &str, lab: &mut dyn Lab) -> bool {
    let mut violated = false;
    while lab.step_events(1).unwrap() == 1 {
        let v = lab.view();
        let now = verdict(&v).unwrap_or_else(|| panic!("{name}: undecided at {}", lab.steps()));
        assert!(
            !(violated && now),
            "{name}: linearizable again at {}",
            lab.steps()
        );
        violated = !now;
        let invariant = &v.invariants[0];
        assert_eq!(invariant.ok, now, "{name}");
        assert!(v.invariants[2].ok, "{name}: {}", v.invariants[2].detail);
    }
    !violated
}

#[test]
fn pasted_etcd_000_is_judged_not_linearizable() {
    let mut lab = pasted("etcdLog", &read("jepsen/etcd_000.log")).unwrap();
    lab.step(Duration::from_secs(1_000_000)).unwrap();
    let v = lab.view();
    assert_eq!(verdict(&v), Some(false));
    let linearizable = &v.invariants[0];
    assert!(!linearizable.ok && !linearizable.nodes.is_empty());
    let Some(Panel::Text { body, .. }) = v.panels.get(1) else {
        panic!()
    };
    assert!(body.starts_with("NOT LINEARIZABLE"), "{body}");
    assert!(body.contains("Longest linearizable prefix"), "{body}");
    assert!(body.contains("Jepsen etcd log"), "{body}");
    let Some(Panel::Timeline { bars, lanes, .. }) = v.panels.first() else {
        panic!()
    };
    assert!(bars.iter().any(|b| b.state == "unplaceable"));
    assert!(
        bars.iter()
            .any(|b| b.state == "prefix" && b.order == Some(0))
    );
    assert!(
        bars.iter().any(|b| b.end.is_none()),
        "some operations never returned"
    );
    assert_eq!(lanes.len(), v.nodes.len());
    // Time travel: before anything returned, nothing can be wrong yet.
    lab.seek(3).unwrap();
    assert_eq!(verdict(&lab.view()), Some(true));
}

#[test]
fn pasting_into_a_running_lab_replays_and_seeks() {
    let mut lab = create_lab(ID, &Value::Null).unwrap();
    lab.step_events(20).unwrap();
    lab.act(&json!({"type": "paste", "format": "etcdLog", "text": read("jepsen/etcd_000.log")}))
        .unwrap();
    lab.step_events(10_000).unwrap();
    let end = lab.steps();
    assert_eq!(verdict(&lab.view()), Some(false));
    let before = serde_json::to_value(lab.view()).unwrap();
    // Seeking to step 20 lands after the paste recorded there; step 19 is before it.
    lab.seek(19).unwrap();
    assert!(
        serde_json::to_value(lab.view()).unwrap()["panels"][1]["body"]
            .as_str()
            .unwrap()
            .contains("store whose replica lags")
    );
    lab.seek(end).unwrap();
    assert_eq!(serde_json::to_value(lab.view()).unwrap(), before);
}

#[test]
fn the_lab_agrees_with_porcupine_on_every_etcd_history() {
    let verdicts = verdicts();
    let mut checked = 0;
    for entry in std::fs::read_dir(data_dir().join("jepsen")).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("jepsen/{}", path.file_name().unwrap().to_string_lossy());
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(&expected) = verdicts.get(&name) else {
            // etcd_095 is empty: the lab says so rather than show nothing.
            let e = pasted("etcdLog", &text).err().unwrap().to_string();
            assert!(e.contains("no operations found"), "{name}: {e}");
            continue;
        };
        let mut lab = pasted("etcdLog", &text).unwrap();
        assert_eq!(reveal_all(&name, lab.as_mut()), expected, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 102);
}

#[test]
fn the_lab_agrees_with_porcupine_on_the_kv_histories_it_accepts() {
    let verdicts = verdicts();
    for name in [
        "kv/c01-ok.txt",
        "kv/c01-bad.txt",
        "kv/c10-ok.txt",
        "kv/c10-bad.txt",
    ] {
        let mut lab = pasted("kvEdn", &read(name)).unwrap();
        assert_eq!(reveal_all(name, lab.as_mut()), verdicts[name], "{name}");
    }
    // The 50-client histories are too large for the page.
    for name in ["kv/c50-ok.txt", "kv/c50-bad.txt"] {
        let e = pasted("kvEdn", &read(name)).err().unwrap().to_string();
        assert!(
            e.contains("config.history.text") && e.contains("1000"),
            "{e}"
        );
    }
}

#[test]
fn a_malformed_line_is_named() {
    let mut text = read("jepsen/etcd_000.log");
    text.push_str("INFO  jepsen.util - 2\t:invoke\t:frobnicate\t1\n");
    let e = pasted("etcdLog", &text).err().unwrap().to_string();
    assert!(
        e.contains("config.history.text") && e.contains("line 171"),
        "{e}"
    );
    let mut lab = create_lab(ID, &Value::Null).unwrap();
    // The text is read as EDN first, so the unclosed map on line 2 is found before the
    // missing fields of line 1.
    for (text, place) in [
        ("{:process 0, :type :ok}\n{", "line 2, column 1"),
        ("{:process 0, :type :ok}\n", "line 1, column 1"),
        (
            "{:process 0, :type :ok, :f :get, :key 1, :value [}",
            "line 1, column 50",
        ),
    ] {
        let e = lab
            .act(&json!({"type": "paste", "format": "kvEdn", "text": text}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("action.text") && e.contains(place), "{e}");
    }
}

/// A history of tests/data/edn, written by hand from Knossos' format.
fn edn_history(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/edn")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// The Knossos-format histories pasted as EDN, with the initial value and nil-read
/// meaning each needs, reach the verdict reasoned out in each file's comments; the
/// verdict panel names the format.
#[test]
fn pasted_knossos_histories_get_the_verdicts_reasoned_by_hand() {
    for (file, initial, nil_read, expected) in [
        ("cas-info-ok.edn", None, "absent", true),
        ("cas-failed-write-bad.edn", None, "absent", false),
        ("stale-read-bad.edn", None, "absent", false),
        ("nil-read.edn", None, "absent", false),
        ("nil-read.edn", None, "unknown", true),
        ("initial-value.edn", None, "absent", false),
        ("initial-value.edn", Some(0), "absent", true),
    ] {
        let config = json!({
            "history": {"format": "edn", "text": edn_history(file)},
            "initialValue": initial,
            "nilRead": nil_read,
        });
        let name = format!("{file} (initial {initial:?}, nil {nil_read})");
        let mut lab = create_lab(ID, &config).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reveal_all(&name, lab.as_mut()), expected, "{name}");
        let v = lab.view();
        let Some(Panel::Text { body, .. }) = v.panels.get(1) else {
            panic!("{name}: no verdict panel")
        };
        assert!(body.contains("EDN register history"), "{name}: {body}");
    }
    // Pasting into a running lab keeps the lab's register settings.
    let mut lab = create_lab(ID, &json!({"nilRead": "unknown"})).unwrap();
    lab.act(&json!({"type": "paste", "format": "edn", "text": edn_history("nil-read.edn")}))
        .unwrap();
    lab.step(Duration::from_secs(1_000_000)).unwrap();
    assert_eq!(verdict(&lab.view()), Some(true));
}

#[test]
fn a_bad_edn_paste_names_line_and_column() {
    let text = "{:process 0, :type :invoke, :f :write, :value 1}\n\
                {:process 1, :type :invoke, :f :write, :value one}";
    let e = pasted("edn", text).err().unwrap().to_string();
    assert!(
        e.contains("config.history.text")
            && e.contains("line 2, column 47")
            && e.contains("integer"),
        "{e}"
    );
    // A multi-register history is refused with the format that reads it.
    let txn = "{:process 0, :type :invoke, :f :txn, :value [[:write :x 1]]}";
    let e = pasted("edn", txn).err().unwrap().to_string();
    assert!(e.contains("multiRegisterEdn"), "{e}");
    // Nothing in it.
    let e = pasted("edn", "; only a comment\n")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no operations found"), "{e}");
}

/// The verdict panel's text.
fn verdict_text(view: &View) -> String {
    let Some(Panel::Text { body, .. }) = view.panels.get(1) else {
        panic!("no verdict panel")
    };
    body.clone()
}

/// Knossos multi-register histories (transactions over several registers) pasted as
/// `multiRegisterEdn` reach the verdicts reasoned out in each file's comments, with the
/// initial value and nil-read meaning each needs; a violation names the read that tore.
#[test]
fn pasted_multi_register_histories_get_the_verdicts_reasoned_by_hand() {
    for (file, initial, nil_read, expected) in [
        ("multi-register-ok.edn", None, "absent", true),
        ("multi-register-ok.edn", None, "unknown", true),
        ("multi-register-torn-read-bad.edn", Some(0), "absent", false),
        (
            "multi-register-torn-read-bad.edn",
            Some(0),
            "unknown",
            false,
        ),
        ("multi-register-torn-read-bad.edn", None, "unknown", false),
        ("multi-register-nil-read.edn", None, "absent", false),
        ("multi-register-nil-read.edn", None, "unknown", true),
    ] {
        let config = json!({
            "history": {"format": "multiRegisterEdn", "text": edn_history(file)},
            "initialValue": initial,
            "nilRead": nil_read,
        });
        let name = format!("{file} (initial {initial:?}, nil {nil_read})");
        let mut lab = create_lab(ID, &config).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reveal_all(&name, lab.as_mut()), expected, "{name}");
        let body = verdict_text(&lab.view());
        assert!(
            body.contains("A multi-register history pasted as a Knossos EDN multi-register"),
            "{name}: {body}"
        );
        if file == "multi-register-torn-read-bad.edn" && initial == Some(0) {
            assert!(
                body.contains("its read of y returns 0, but y holds 1"),
                "{name}: {body}"
            );
            let v = lab.view();
            assert!(
                v.invariants[0]
                    .detail
                    .starts_with("registers cannot be linearized"),
                "{name}: {}",
                v.invariants[0].detail
            );
        }
    }
}

/// The transactions' labels, an edit of a transaction's answer (which repairs the torn
/// read), and a paste into a running lab.
#[test]
fn a_multi_register_history_is_labelled_edited_and_pasted() {
    let text = edn_history("multi-register-torn-read-bad.edn");
    let mut lab = create_lab(
        ID,
        &json!({"history": {"format": "multiRegisterEdn", "text": text}, "initialValue": 0}),
    )
    .unwrap();
    lab.step(Duration::from_secs(1_000_000)).unwrap();
    let v = lab.view();
    assert_eq!(verdict(&v), Some(false));
    let ops = serde_json::to_string(&v.panels).unwrap();
    assert!(
        ops.contains("x:w(1) y:w(1)") && ops.contains("x:r→1 y:r→0"),
        "{ops}"
    );
    // The answer is edited as the `:ok` value; it must list the same micro-operations.
    let edit = |value: &str| {
        json!({"type": "editOutput", "op": 1,
        "output": {"result": "value", "value": value}})
    };
    let e = lab
        .act(&edit("[[:read :x 1] [:write :y 1]]"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("output.value") && e.contains("same reads and writes"),
        "{e}"
    );
    let e = lab
        .act(&edit("[[:read :x 1] [:read :y"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("output.value") && e.contains("line 1, column"),
        "{e}"
    );
    let e = lab
        .act(&json!({"type": "editOutput", "op": 1, "output": {"result": "ok"}}))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("values it read"), "{e}");
    lab.act(&edit("[[:read :x 1] [:read :y 1]]")).unwrap();
    assert_eq!(verdict(&lab.view()), Some(true));
    // Pasting into a running lab keeps its register settings: nil reads are unknown.
    let mut lab = create_lab(ID, &json!({"nilRead": "unknown"})).unwrap();
    lab.step_events(10).unwrap();
    lab.act(&json!({"type": "paste", "format": "multiRegisterEdn",
        "text": edn_history("multi-register-nil-read.edn")}))
        .unwrap();
    lab.step(Duration::from_secs(1_000_000)).unwrap();
    assert_eq!(verdict(&lab.view()), Some(true));
}

#[test]
fn a_bad_multi_register_paste_names_line_and_column() {
    let cases = [
        // A micro-operation that is not [f k v].
        (
            "{:process 0, :type :invoke, :f :txn, :value [[:write :x 1]]}\n\
             {:process 1, :type :invoke, :f :txn, :value [[:read :x nil] :oops]}",
            "line 2, column 61",
            "[f k v]",
        ),
        // A function that is neither read nor write.
        (
            "{:process 0, :type :invoke, :f :txn, :value [[:append :x 1]]}",
            "line 1, column 47",
            ":read or :write",
        ),
        // A value that is not an integer.
        (
            "{:process 0, :type :invoke, :f :txn, :value [[:write :x \"one\"]]}",
            "line 1, column 57",
            "integer",
        ),
        // An :ok whose micro-operations differ from the invocation's.
        (
            "{:process 0, :type :invoke, :f :txn, :value [[:read :x nil]]}\n\
             {:process 0, :type :ok, :f :txn, :value [[:read :y 1]]}",
            "line 2, column 1",
            "differ",
        ),
        // A plain register history is not a multi-register one.
        (
            "{:process 0, :type :invoke, :f :write, :value 3}",
            "line 1, column 47",
            "vector of [:read k v]",
        ),
    ];
    for (text, place, problem) in cases {
        let e = pasted("multiRegisterEdn", text).err().unwrap().to_string();
        assert!(
            e.contains("config.history.text") && e.contains(place) && e.contains(problem),
            "{text}: {e}"
        );
    }
    let e = pasted("multiRegisterEdn", "; nothing\n")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("no operations found") && e.contains(":f :txn"),
        "{e}"
    );
}
