//! Histories in Knossos' EDN format (written here from its documented format, not copied
//! from Knossos), with verdicts reasoned out by hand in the comments; and malformed ones,
//! whose errors must name the line and column.

use super::jepsen::{
    is_multi_register_history, parse_edn_multi_register_history, parse_edn_register_history,
};
use super::*;

fn register_verdict(model: &CasRegister, text: &str) -> bool {
    let ops = parse_edn_register_history(text).unwrap();
    let result = check(model, &ops).unwrap();
    for part in &result.partitions {
        if let PartitionOutcome::Linearizable { order, .. } = &part.outcome {
            replay(model, &ops, order).unwrap();
        }
    }
    result.linearizable
}

fn multi_verdict(model: &MultiRegister, text: &str) -> bool {
    let ops = parse_edn_multi_register_history(text).unwrap();
    let result = check(model, &ops).unwrap();
    for part in &result.partitions {
        if let PartitionOutcome::Linearizable { order, .. } = &part.outcome {
            replay(model, &ops, order).unwrap();
        }
    }
    result.linearizable
}

/// A read overlapping a write may see it; a read after it must.
const READ_SEES_OVERLAPPING_WRITE: &str = "\
{:process 0, :type :invoke, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :ok, :f :read, :value 1}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 2, :type :ok, :f :read, :value 1}
";

/// Write 2 returned before the read was called, and nothing wrote 1 again: the read of 1
/// is stale.
const STALE_READ: &str = "\
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :invoke, :f :write, :value 2}
{:process 1, :type :ok, :f :write, :value 2}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 2, :type :ok, :f :read, :value 1}
";

#[test]
fn register_histories_have_the_verdicts_reasoned_by_hand() {
    let model = CasRegister::default();
    assert!(register_verdict(&model, READ_SEES_OVERLAPPING_WRITE));
    assert!(!register_verdict(&model, STALE_READ));
    // The same as one vector of maps, spread over lines, with a nemesis event between.
    let as_vector = format!(
        "[{}\n {{:process :nemesis, :type :info, :f :start, :value nil}}]",
        STALE_READ.replace('\n', "\n ")
    );
    assert!(!register_verdict(&model, &as_vector));
}

#[test]
fn fail_is_dropped_and_info_is_indeterminate() {
    let history = |read: i64| {
        format!(
            "{{:process 0, :type :invoke, :f :write, :value 0}}
             {{:process 0, :type :ok, :f :write, :value 0}}
             {{:process 1, :type :invoke, :f :cas, :value [0 5]}}
             {{:process 1, :type :info, :f :cas, :value [0 5]}}
             {{:process 2, :type :invoke, :f :cas, :value [0 8]}}
             {{:process 2, :type :fail, :f :cas, :value [0 8]}}
             {{:process 3, :type :invoke, :f :read, :value nil}}
             {{:process 3, :type :ok, :f :read, :value {read}}}"
        )
    };
    let model = CasRegister::default();
    // 5: the indeterminate cas took effect (it never returned, so it may have at any
    // point after its call).
    assert!(register_verdict(&model, &history(5)));
    // 0: it never did.
    assert!(register_verdict(&model, &history(0)));
    // 8: only the failed cas writes 8, and a failed operation did not happen.
    assert!(!register_verdict(&model, &history(8)));
    let ops = parse_edn_register_history(&history(5)).unwrap();
    assert_eq!(ops.len(), 3);
    assert_eq!(ops[1].ret, None);
    assert_eq!(ops[1].output, Response::Unknown);
}

#[test]
fn the_initial_value_is_a_parameter() {
    // A read of 0 before any write: only a register that starts at 0 explains it.
    let text = "\
{:process 0, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :read, :value 0}
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
";
    assert!(!register_verdict(&CasRegister::default(), text));
    assert!(register_verdict(
        &CasRegister::new(Some(0), NilRead::Absent),
        text
    ));
    assert!(!register_verdict(
        &CasRegister::new(Some(7), NilRead::Absent),
        text
    ));
    let plain: Vec<Operation<RegisterInput, RegisterOutput>> = parse_edn_register_history(text)
        .unwrap()
        .into_iter()
        .map(|op| Operation {
            client: op.client,
            input: match op.input {
                CasRegisterInput::Write { value } => RegisterInput::Write { value },
                _ => RegisterInput::Read,
            },
            call: op.call,
            output: op.output,
            ret: op.ret,
        })
        .collect();
    assert!(
        check(&Register::new(Some(0), NilRead::Absent), &plain)
            .unwrap()
            .linearizable
    );
    assert!(!check(&Register::default(), &plain).unwrap().linearizable);
}

#[test]
fn what_a_nil_read_means_is_a_choice() {
    // Write 3 returned, then a read answers nil.
    let text = "\
{:process 0, :type :invoke, :f :write, :value 3}
{:process 0, :type :ok, :f :write, :value 3}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value nil}
";
    // Nil as a value: the register holds 3, so nil is a violation.
    assert!(!register_verdict(&CasRegister::default(), text));
    // Nil as "not learned" (Knossos): anything goes.
    assert!(register_verdict(
        &CasRegister::new(None, NilRead::Unknown),
        text
    ));
    // Before any write, nil as a value is exactly the initial nil.
    let first = "\
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value nil}
";
    assert!(register_verdict(&CasRegister::default(), first));
    assert!(!register_verdict(
        &CasRegister::new(Some(0), NilRead::Absent),
        first
    ));
}

/// Process 1 reads x and y while process 2 writes both in one transaction: it must see
/// both writes or neither.
fn torn_read(x: i64, y: i64) -> String {
    format!(
        "{{:process 0, :type :invoke, :f :txn, :value [[:write :x 1] [:write :y 1]]}}
         {{:process 0, :type :ok, :f :txn, :value [[:write :x 1] [:write :y 1]]}}
         {{:process 1, :type :invoke, :f :txn, :value [[:read :x nil] [:read :y nil]]}}
         {{:process 2, :type :invoke, :f :txn, :value [[:write :x 2] [:write :y 2]]}}
         {{:process 2, :type :ok, :f :txn, :value [[:write :x 2] [:write :y 2]]}}
         {{:process 1, :type :ok, :f :txn, :value [[:read :x {x}] [:read :y {y}]]}}"
    )
}

#[test]
fn multi_register_transactions_are_atomic() {
    let model = MultiRegister::default();
    assert!(multi_verdict(&model, &torn_read(1, 1)));
    assert!(multi_verdict(&model, &torn_read(2, 2)));
    // x 2 and y 1 at once never existed. Split by key, each read alone would pass: this
    // is why a multi-register history is checked whole.
    assert!(!multi_verdict(&model, &torn_read(2, 1)));
    assert!(!multi_verdict(&model, &torn_read(1, 2)));
    assert!(is_multi_register_history(&torn_read(1, 1)));
    assert!(!is_multi_register_history(STALE_READ));
}

#[test]
fn multi_register_reads_see_their_own_writes_and_initial_values() {
    let txn = |read: i64| {
        format!(
            "{{:process 0, :type :invoke, :f :txn, :value [[:write :x 5] [:read :x nil] [:read :y nil]]}}
             {{:process 0, :type :ok, :f :txn, :value [[:write :x 5] [:read :x {read}] [:read :y 9]]}}"
        )
    };
    // y was never written: only a multi-register starting with y at 9 explains the read.
    let start = MultiRegister::new(&[("y", 9)], NilRead::Absent);
    assert!(multi_verdict(&start, &txn(5)));
    assert!(!multi_verdict(&start, &txn(4)));
    assert!(!multi_verdict(&MultiRegister::default(), &txn(5)));
    // The map form: a read of {x 5, y 9} after the write.
    let maps = "\
{:process 0, :type :invoke, :f :write, :value {:x 5}}
{:process 0, :type :ok, :f :write, :value {:x 5}}
{:process 1, :type :invoke, :f :read, :value {:x nil, :y nil}}
{:process 1, :type :ok, :f :read, :value {:x 5, :y nil}}
";
    assert!(multi_verdict(&MultiRegister::default(), maps));
    assert!(!multi_verdict(&start, maps));
    assert!(multi_verdict(
        &MultiRegister::new(&[("y", 9)], NilRead::Unknown),
        maps
    ));
}

/// The error's text, which must name `line` and `column`.
fn error_at(
    result: crate::error::Result<impl std::fmt::Debug>,
    line: usize,
    column: usize,
) -> String {
    let message = result.unwrap_err().to_string();
    let place = format!("line {line}, column {column}");
    assert!(message.contains(&place), "{message} does not name {place}");
    message
}

#[test]
fn bad_input_names_line_and_column() {
    let good = "{:process 0, :type :invoke, :f :write, :value 1}\n";
    // A string where a write's value must be an integer: the value's own position.
    let text = format!("{good}{{:process 1, :type :invoke, :f :write, :value \"three\"}}");
    let message = error_at(parse_edn_register_history(&text), 2, 47);
    assert!(message.contains("integer"), "{message}");
    // An unclosed map, reported where it opens.
    error_at(
        parse_edn_register_history("{:process 0, :type :invoke"),
        1,
        1,
    );
    // An unknown event type, at the keyword.
    error_at(
        parse_edn_register_history("\n  {:process 0, :type :begin, :f :read}"),
        2,
        22,
    );
    // A completion without an invocation, at its map.
    error_at(parse_edn_register_history(&format!("{good}{good}")), 2, 1);
    // A cas whose value is not a pair.
    error_at(
        parse_edn_register_history("{:process 0, :type :invoke, :f :cas, :value [1]}"),
        1,
        45,
    );
    // Something that is not a map at all.
    error_at(parse_edn_register_history(&format!("{good}  :oops")), 2, 3);
    // A missing :type.
    error_at(parse_edn_register_history("{:process 0, :f :read}"), 1, 1);
    // A micro-operation that is neither a read nor a write.
    error_at(
        parse_edn_multi_register_history(
            "{:process 0, :type :invoke, :f :txn, :value [[:read :x nil] [:incr :x 1]]}",
        ),
        1,
        62,
    );
    // A completion whose transaction differs from its invocation.
    error_at(
        parse_edn_multi_register_history(
            "{:process 0, :type :invoke, :f :txn, :value [[:read :x nil]]}\n\
             {:process 0, :type :ok, :f :txn, :value [[:read :y 1]]}",
        ),
        2,
        1,
    );
    // A register history given multi-register values.
    error_at(
        parse_edn_register_history("{:process 0, :type :invoke, :f :txn, :value []}"),
        1,
        1,
    );
}
