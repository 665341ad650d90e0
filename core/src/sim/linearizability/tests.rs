//! Hand-made histories with known verdicts, and property tests over generated ones.

use proptest::prelude::*;

use super::generate::{random_cas_register_history, random_kv_history};
use super::*;

type RegisterOp = Operation<RegisterInput, RegisterOutput>;
type CasOp = Operation<CasRegisterInput, RegisterOutput>;
type KvOp = Operation<KvInput, KvOutput>;

fn write(client: u64, value: i64, call: u64, ret: Option<u64>) -> RegisterOp {
    Operation {
        client,
        input: RegisterInput::Write { value },
        call,
        output: if ret.is_some() {
            Response::Ok
        } else {
            Response::Unknown
        },
        ret,
    }
}

fn read(client: u64, value: Option<i64>, call: u64, ret: u64) -> RegisterOp {
    Operation {
        client,
        input: RegisterInput::Read,
        call,
        output: Response::Value { value },
        ret: Some(ret),
    }
}

fn cas(client: u64, expected: i64, new: i64, output: RegisterOutput, call: u64, ret: u64) -> CasOp {
    Operation {
        client,
        input: CasRegisterInput::Cas { expected, new },
        call,
        output,
        ret: Some(ret),
    }
}

/// Widens register operations to the compare-and-set register's input type.
fn as_cas(ops: Vec<RegisterOp>) -> Vec<CasOp> {
    ops.into_iter()
        .map(|op| Operation {
            client: op.client,
            input: match op.input {
                RegisterInput::Read => CasRegisterInput::Read,
                RegisterInput::Write { value } => CasRegisterInput::Write { value },
            },
            call: op.call,
            output: op.output,
            ret: op.ret,
        })
        .collect()
}

fn kv(client: u64, input: KvInput, output: KvOutput, call: u64, ret: Option<u64>) -> KvOp {
    Operation {
        client,
        input,
        call,
        output,
        ret,
    }
}

fn get(key: &str) -> KvInput {
    KvInput::Get { key: key.into() }
}

fn value(v: &str) -> KvOutput {
    Response::Value { value: v.into() }
}

/// Asserts the verdict and, for every part, that the witness or the reported prefix
/// replays and that a violation names operations that cannot go next.
fn assert_verdict<M: Model>(model: &M, ops: &[Operation<M::Input, M::Output>], expected: bool) {
    let result = check(model, ops).unwrap();
    assert_eq!(result.linearizable, expected, "{result:#?}");
    assert_reports_are_sound(model, ops, &result);
}

fn assert_reports_are_sound<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    result: &CheckResult,
) {
    for part in &result.partitions {
        match &part.outcome {
            PartitionOutcome::Linearizable { order, omitted } => {
                let mut sorted: Vec<usize> = order.iter().chain(omitted).copied().collect();
                sorted.sort_unstable();
                let mut members = part.ops.clone();
                members.sort_unstable();
                assert_eq!(sorted, members, "witness must hold every operation once");
                assert!(omitted.iter().all(|&i| ops[i].ret.is_none()));
                replay(model, ops, order).unwrap();
            }
            PartitionOutcome::Violation {
                prefix,
                unplaceable,
                ..
            } => {
                replay(model, ops, prefix).unwrap();
                // The unplaceable operations are exactly the pending ones called no later
                // than the earliest pending return.
                let pending: Vec<usize> = part
                    .ops
                    .iter()
                    .copied()
                    .filter(|i| !prefix.contains(i))
                    .collect();
                let deadline = pending
                    .iter()
                    .map(|&i| ops[i].ret_or_infinity())
                    .min()
                    .unwrap();
                let mut candidates: Vec<usize> = pending
                    .into_iter()
                    .filter(|&i| ops[i].call <= deadline)
                    .collect();
                candidates.sort_unstable();
                let mut reported = unplaceable.clone();
                reported.sort_unstable();
                assert!(!reported.is_empty());
                assert_eq!(reported, candidates);
            }
            // Left undecided once another part's violation settled the verdict.
            PartitionOutcome::Undecided => assert!(!result.linearizable),
        }
    }
}

#[test]
fn empty_history_is_linearizable() {
    let result = check(&Register::default(), &[]).unwrap();
    assert!(result.linearizable);
    assert_eq!(result.verdict, Verdict::Linearizable);
    let no_steps = CheckOptions {
        max_steps: Some(0),
        ..CheckOptions::default()
    };
    assert!(
        check_with(&Register::default(), &[], &no_steps)
            .unwrap()
            .linearizable
    );
    assert!(check_with(&KvModel, &[], &no_steps).unwrap().linearizable);
}

#[test]
fn sequential_write_then_read_is_linearizable() {
    let ops = vec![write(0, 1, 0, Some(10)), read(1, Some(1), 20, 30)];
    assert_verdict(&Register::default(), &ops, true);
}

#[test]
fn stale_read_after_write_returned_is_not_linearizable() {
    let ops = vec![
        write(0, 1, 0, Some(10)),
        read(1, Some(1), 20, 30),
        read(2, None, 40, 50),
    ];
    assert_verdict(&Register::default(), &ops, false);
    let result = check(&Register::default(), &ops).unwrap();
    let Some(PartitionOutcome::Violation {
        prefix,
        unplaceable,
        state,
    }) = result.partitions.first().map(|p| &p.outcome)
    else {
        panic!("expected a violation: {result:?}");
    };
    assert_eq!(prefix, &vec![0, 1]);
    assert_eq!(unplaceable, &vec![2]);
    assert_eq!(state, "1");
}

#[test]
fn concurrent_overlapping_reads_may_see_either_value() {
    // The write overlaps both reads; one sees the old value, one the new.
    let ops = vec![
        write(0, 1, 0, Some(100)),
        read(1, Some(1), 10, 20),
        read(2, None, 30, 40),
    ];
    // read→1 finished before read→nil began, so nil cannot follow 1: not linearizable.
    assert_verdict(&Register::default(), &ops, false);
    let ops = vec![
        write(0, 1, 0, Some(100)),
        read(1, None, 10, 20),
        read(2, Some(1), 30, 40),
        read(3, Some(1), 35, 120),
    ];
    assert_verdict(&Register::default(), &ops, true);
}

#[test]
fn touching_intervals_are_concurrent() {
    // The read is called at the instant the write returns: the intervals are closed, so
    // they overlap and the read may still see the old value.
    let ops = vec![write(0, 1, 0, Some(10)), read(1, None, 10, 20)];
    assert_verdict(&Register::default(), &ops, true);
    let ops = vec![write(0, 1, 0, Some(10)), read(1, None, 11, 20)];
    assert_verdict(&Register::default(), &ops, false);
}

#[test]
fn indeterminate_write_can_explain_a_later_read() {
    let ops = vec![
        write(0, 1, 0, Some(10)),
        write(1, 2, 20, None),
        read(2, Some(2), 1_000, 1_010),
    ];
    assert_verdict(&Register::default(), &ops, true);
    let result = check(&Register::default(), &ops).unwrap();
    assert_eq!(
        result.partitions[0].outcome,
        PartitionOutcome::Linearizable {
            order: vec![0, 1, 2],
            omitted: vec![],
        }
    );
}

#[test]
fn indeterminate_write_may_never_have_happened() {
    let ops = vec![
        write(0, 1, 0, Some(10)),
        write(1, 2, 20, None),
        read(2, Some(1), 1_000, 1_010),
        read(2, Some(1), 2_000, 2_010),
    ];
    assert_verdict(&Register::default(), &ops, true);
    let result = check(&Register::default(), &ops).unwrap();
    assert_eq!(
        result.partitions[0].outcome,
        PartitionOutcome::Linearizable {
            order: vec![0, 2, 3],
            omitted: vec![1],
        }
    );
}

#[test]
fn timed_out_writes_do_not_multiply_the_search() {
    // Twenty writes time out early and never take effect; then a long sequential run of
    // writes and reads. Each timed-out write could be linearized harmlessly just before
    // any later write, so without the dominance rule the search would try every subset.
    let mut ops: Vec<RegisterOp> = (0..20)
        .map(|i| write(100 + i, 1_000 + i as i64, i, None))
        .collect();
    for i in 0..60u64 {
        let t = 100 + 10 * i;
        ops.push(write(0, i as i64, t, Some(t + 2)));
        ops.push(read(1, Some(i as i64), t + 4, t + 6));
    }
    let result = check(&Register::default(), &ops).unwrap();
    assert!(result.linearizable);
    assert!(result.steps < 1_000, "{} steps", result.steps);
    assert_reports_are_sound(&Register::default(), &ops, &result);
}

#[test]
fn indeterminate_write_cannot_be_undone() {
    // Once a read saw 2, the timed-out write of 2 happened, and a later read cannot see 1.
    let ops = vec![
        write(0, 1, 0, Some(10)),
        write(1, 2, 20, None),
        read(2, Some(2), 1_000, 1_010),
        read(2, Some(1), 2_000, 2_010),
    ];
    assert_verdict(&Register::default(), &ops, false);
}

#[test]
fn failed_cas_means_the_comparison_did_not_match() {
    let mut ops = as_cas(vec![write(0, 1, 0, Some(10))]);
    ops.push(cas(1, 3, 2, Response::Failed, 20, 30));
    ops.extend(as_cas(vec![read(2, Some(1), 40, 50)]));
    assert_verdict(&CasRegister::default(), &ops, true);

    // A failed cas whose comparison must have matched is a violation...
    let mut ops = as_cas(vec![write(0, 1, 0, Some(10))]);
    ops.push(cas(1, 1, 2, Response::Failed, 20, 30));
    assert_verdict(&CasRegister::default(), &ops, false);

    // ...and it changed nothing: a later read of its new value is too.
    let mut ops = as_cas(vec![write(0, 1, 0, Some(10))]);
    ops.push(cas(1, 3, 2, Response::Failed, 20, 30));
    ops.extend(as_cas(vec![read(2, Some(2), 40, 50)]));
    assert_verdict(&CasRegister::default(), &ops, false);

    // A successful cas needs a match, and a cas against nil never matches.
    let mut ops = as_cas(vec![write(0, 1, 0, Some(10))]);
    ops.push(cas(1, 1, 2, Response::Ok, 20, 30));
    ops.extend(as_cas(vec![read(2, Some(2), 40, 50)]));
    assert_verdict(&CasRegister::default(), &ops, true);
    let ops = vec![cas(1, 0, 2, Response::Ok, 20, 30)];
    assert_verdict(&CasRegister::default(), &ops, false);
}

#[test]
fn unknown_cas_may_or_may_not_have_applied() {
    let mut ops = as_cas(vec![write(0, 1, 0, Some(10))]);
    ops.push(Operation {
        client: 1,
        input: CasRegisterInput::Cas {
            expected: 1,
            new: 5,
        },
        call: 20,
        output: Response::Unknown,
        ret: None,
    });
    let mut applied = ops.clone();
    applied.extend(as_cas(vec![read(2, Some(5), 40, 50)]));
    assert_verdict(&CasRegister::default(), &applied, true);
    let mut not_applied = ops;
    not_applied.extend(as_cas(vec![read(2, Some(1), 40, 50)]));
    assert_verdict(&CasRegister::default(), &not_applied, true);
}

#[test]
fn kv_keys_are_checked_separately() {
    let put = |key: &str, v: &str| KvInput::Put {
        key: key.into(),
        value: v.into(),
    };
    let append = |key: &str, v: &str| KvInput::Append {
        key: key.into(),
        value: v.into(),
    };
    let ops = vec![
        kv(0, put("a", "x"), Response::Ok, 0, Some(10)),
        kv(1, append("b", "1"), Response::Ok, 0, Some(10)),
        kv(0, append("a", "y"), Response::Ok, 20, Some(30)),
        kv(1, get("b"), value("1"), 20, Some(30)),
        kv(2, get("a"), value("x"), 40, Some(50)),
        kv(3, get("c"), value(""), 40, Some(50)),
    ];
    let every_part = CheckOptions {
        check_every_part: true,
        ..CheckOptions::default()
    };
    let result = check_with(&KvModel, &ops, &every_part).unwrap();
    assert!(!result.linearizable);
    assert_eq!(result.partitions.len(), 3);
    let violated: Vec<&Vec<usize>> = result.violations().map(|p| &p.ops).collect();
    assert_eq!(violated, vec![&vec![0, 2, 4]]);
    assert_reports_are_sound(&KvModel, &ops, &result);

    // By default the first violation settles it; the parts after it are left undecided.
    let result = check(&KvModel, &ops).unwrap();
    assert_eq!(result.verdict, Verdict::NotLinearizable);
    let outcomes: Vec<&PartitionOutcome> = result.partitions.iter().map(|p| &p.outcome).collect();
    assert!(matches!(outcomes[0], PartitionOutcome::Violation { .. }));
    assert_eq!(outcomes[1..], [&PartitionOutcome::Undecided; 2]);
}

#[test]
fn ret_before_call_is_an_error_naming_the_operation() {
    let ops = vec![write(0, 1, 0, Some(10)), write(1, 2, 30, Some(20))];
    let err = check(&Register::default(), &ops).unwrap_err().to_string();
    assert!(err.contains("ops[1].ret"), "{err}");
}

/// A model whose partition function is broken in the ways the checker must reject.
struct BadPartition(Vec<Vec<usize>>);

impl Model for BadPartition {
    type State = ();
    type Input = ();
    type Output = ();
    fn init(&self) {}
    fn step(&self, _: &(), _: &(), _: &()) -> Option<()> {
        Some(())
    }
    fn partition(&self, _: &[Operation<(), ()>]) -> Vec<Vec<usize>> {
        self.0.clone()
    }
}

#[test]
fn malformed_partitions_are_errors() {
    let ops = vec![
        Operation {
            client: 0,
            input: (),
            call: 0,
            output: (),
            ret: Some(1),
        };
        2
    ];
    for (parts, needle) in [
        (vec![vec![0, 1, 2]], "names operation 2"),
        (vec![vec![0, 1], vec![1]], "already in a part"),
        (vec![vec![1]], "operation 0 is in no part"),
    ] {
        let err = check(&BadPartition(parts), &ops).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    assert!(check(&BadPartition(vec![vec![1], vec![0]]), &ops).is_ok());
}

#[test]
fn budget_leaves_hard_parts_undecided_but_keeps_found_violations() {
    let ops = random_kv_history(3, 300, 1, 6).unwrap();
    let budget = |max_steps| CheckOptions {
        max_steps: Some(max_steps),
        ..CheckOptions::default()
    };
    let result = check_with(&KvModel, &ops, &budget(10)).unwrap();
    assert_eq!(result.verdict, Verdict::Undecided);
    assert!(!result.linearizable);
    assert_eq!(result.steps, 10);
    assert!(check(&KvModel, &ops).unwrap().linearizable);

    let ops = vec![write(0, 1, 0, Some(10)), read(1, Some(2), 20, 30)];
    let result = check_with(&Register::default(), &ops, &budget(100)).unwrap();
    assert_eq!(result.verdict, Verdict::NotLinearizable);
}

#[test]
fn replay_rejects_real_time_and_model_violations() {
    let ops = vec![write(0, 1, 0, Some(10)), read(1, Some(1), 20, 30)];
    assert_eq!(
        replay(&Register::default(), &ops, &[0, 1]).unwrap(),
        Some(1)
    );
    let writes = vec![write(0, 1, 0, Some(10)), write(1, 2, 20, Some(30))];
    let err = replay(&Register::default(), &writes, &[1, 0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("order[1]") && err.contains("before"), "{err}");
    let err = replay(&Register::default(), &ops, &[1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("order[0]") && err.contains("rejects"), "{err}");
    let err = replay(&Register::default(), &ops, &[7])
        .unwrap_err()
        .to_string();
    assert!(err.contains("order[0]"), "{err}");
}

#[test]
fn descriptions_read_like_calls() {
    assert_eq!(
        CasRegister::default().describe(
            &CasRegisterInput::Cas {
                expected: 1,
                new: 2
            },
            &Response::Failed
        ),
        "cas(1, 2) -> fail"
    );
    assert_eq!(
        Register::default().describe(&RegisterInput::Read, &Response::Value { value: None }),
        "read() -> nil"
    );
    assert_eq!(KvModel.describe(&get("k"), &value("v")), "get('k') -> 'v'");
}

#[test]
fn result_serialises_for_the_page() {
    let ops = vec![write(0, 1, 0, Some(10)), read(1, Some(2), 20, 30)];
    let json = serde_json::to_value(check(&Register::default(), &ops).unwrap()).unwrap();
    assert_eq!(json["linearizable"], false);
    assert_eq!(json["verdict"], "notLinearizable");
    assert_eq!(json["partitions"][0]["outcome"]["kind"], "violation");
    assert_eq!(json["partitions"][0]["outcome"]["prefix"][0], 0);
    assert_eq!(json["partitions"][0]["outcome"]["unplaceable"][0], 1);
    let op = serde_json::to_value(&ops[1]).unwrap();
    assert_eq!(op["input"]["op"], "read");
    assert_eq!(op["output"]["result"], "value");
    let linearizable = check(&Register::default(), &ops[..1]).unwrap();
    let json = serde_json::to_value(linearizable).unwrap();
    assert_eq!(json["verdict"], "linearizable");
    assert_eq!(json["partitions"][0]["outcome"]["kind"], "linearizable");
    let cas = CasRegisterInput::Cas {
        expected: 1,
        new: 2,
    };
    assert_eq!(serde_json::to_value(&cas).unwrap()["op"], "cas");
    assert_eq!(
        serde_json::to_value(Response::<i64>::Failed).unwrap()["result"],
        "failed"
    );
}

#[test]
fn generators_validate_sizes_and_repeat_with_the_seed() {
    assert!(random_kv_history(1, 10, 0, 1).is_err());
    assert!(random_kv_history(1, 10, 1, 0).is_err());
    assert!(random_cas_register_history(1, 10, 0).is_err());
    assert!(random_cas_register_history(1, usize::MAX, 1).is_err());
    assert!(random_kv_history(1, 10, usize::MAX, 1).is_err());
    assert!(random_kv_history(1, 10, 1, usize::MAX).is_err());
    assert_eq!(
        random_kv_history(9, 50, 3, 4).unwrap(),
        random_kv_history(9, 50, 3, 4).unwrap()
    );
}

/// Makes one determinate get answer a value no operation ever wrote.
fn corrupt_a_get(ops: &mut [KvOp], pick: usize) -> bool {
    let gets: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op.output, Response::Value { .. }))
        .map(|(i, _)| i)
        .collect();
    let Some(&target) = gets.get(pick % gets.len().max(1)) else {
        return false;
    };
    if let Some(op) = ops.get_mut(target) {
        op.output = value("never written");
    }
    true
}

/// Makes one determinate get answer what an earlier get of the same key answered: a read
/// that may or may not be stale, so the verdict depends on the intervals.
fn make_a_get_repeat_an_earlier_one(ops: &mut [KvOp], pick: usize) -> bool {
    let pairs: Vec<(usize, usize)> = (0..ops.len())
        .flat_map(|later| (0..later).map(move |earlier| (earlier, later)))
        .filter(|&(earlier, later)| {
            let (a, b) = (&ops[earlier], &ops[later]);
            a.input.key() == b.input.key()
                && matches!(a.input, KvInput::Get { .. })
                && matches!(b.input, KvInput::Get { .. })
                && matches!(a.output, Response::Value { .. })
                && matches!(b.output, Response::Value { .. })
                && a.output != b.output
        })
        .collect();
    let Some(&(earlier, later)) = pairs.get(pick % pairs.len().max(1)) else {
        return false;
    };
    ops[later].output = ops[earlier].output.clone();
    true
}

// Sizes: deciding linearizability is exponential in the concurrency of one part, and the
// key-value model, whose appends go unobserved until the next read, is the hardest here;
// on one key, four clients and 150 operations the worst of 3000 seeds takes a fraction of a
// second, while seven clients and 300 operations has seeds that take minutes. Registers
// have few states and stay cheap at larger sizes.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_kv_histories_are_linearizable(
        seed in any::<u64>(),
        len in 0usize..150,
        keys in 1usize..5,
        clients in 1usize..5,
    ) {
        let ops = random_kv_history(seed, len, keys, clients).unwrap();
        let result = check(&KvModel, &ops).unwrap();
        prop_assert!(result.linearizable, "seed {seed}: {result:?}");
        assert_reports_are_sound(&KvModel, &ops, &result);
    }

    /// The whole store, checked as one part with the search's partial-order reduction
    /// over independent keys, agrees with the per-key check, on linearizable histories and
    /// on ones with a possibly stale read.
    #[test]
    fn whole_store_agrees_with_per_key_parts(
        seed in any::<u64>(),
        len in 0usize..120,
        keys in 1usize..5,
        clients in 1usize..5,
        pick in any::<usize>(),
        stale in any::<bool>(),
    ) {
        let mut ops = random_kv_history(seed, len, keys, clients).unwrap();
        if stale {
            make_a_get_repeat_an_earlier_one(&mut ops, pick);
        }
        let per_key = check(&KvModel, &ops).unwrap();
        let whole = check(&KvStoreModel, &ops).unwrap();
        prop_assert_eq!(whole.linearizable, per_key.linearizable, "seed {}", seed);
        prop_assert_eq!(whole.partitions.len(), 1);
        assert_reports_are_sound(&KvStoreModel, &ops, &whole);
    }

    #[test]
    fn generated_register_histories_are_linearizable(
        seed in any::<u64>(),
        len in 0usize..200,
        clients in 1usize..6,
    ) {
        let ops = random_cas_register_history(seed, len, clients).unwrap();
        let result = check(&CasRegister::default(), &ops).unwrap();
        prop_assert!(result.linearizable, "seed {seed}: {result:?}");
        assert_reports_are_sound(&CasRegister::default(), &ops, &result);
    }

    #[test]
    fn a_read_of_a_never_written_value_is_caught(
        seed in any::<u64>(),
        len in 1usize..100,
        keys in 1usize..5,
        clients in 1usize..5,
        pick in any::<usize>(),
    ) {
        let mut ops = random_kv_history(seed, len, keys, clients).unwrap();
        prop_assume!(corrupt_a_get(&mut ops, pick));
        let result = check(&KvModel, &ops).unwrap();
        prop_assert!(!result.linearizable, "seed {seed}");
        prop_assert_eq!(result.violations().count(), 1);
        assert_reports_are_sound(&KvModel, &ops, &result);
    }

    #[test]
    fn a_register_read_of_a_never_written_value_is_caught(
        seed in any::<u64>(),
        len in 1usize..200,
        clients in 1usize..6,
        pick in any::<usize>(),
    ) {
        let mut ops = random_cas_register_history(seed, len, clients).unwrap();
        let reads: Vec<usize> = ops
            .iter()
            .enumerate()
            .filter(|(_, op)| matches!(op.output, Response::Value { .. }))
            .map(|(i, _)| i)
            .collect();
        prop_assume!(!reads.is_empty());
        if let Some(op) = reads.get(pick % reads.len()).and_then(|&i| ops.get_mut(i)) {
            op.output = Response::Value { value: Some(99) };
        }
        let result = check(&CasRegister::default(), &ops).unwrap();
        prop_assert!(!result.linearizable, "seed {seed}");
        assert_reports_are_sound(&CasRegister::default(), &ops, &result);
    }
}
