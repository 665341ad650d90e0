//! What the lab shows: the timeline, the verdict with its witness or its explained
//! violation, the parts and operations tables, the client lanes and the invariants.

use serde_json::json;

use super::history::PartVerdict;
use super::{
    CORRECT_STORE, HistoryFormat, LINEARIZABLE, LinearizabilityLab, ModelKind, Part, REPLAYS,
    Source, StoreKind,
};
use crate::lab::view::{InvariantStatus, NodeView, Panel, TimelineBar};
use crate::sim::NodeId;
use crate::time::Time;

impl LinearizabilityLab {
    /// `(state, order)` of every operation slot, for the timeline and the table.
    pub(super) fn statuses(&self) -> Vec<(&'static str, Option<u32>)> {
        let mut out = vec![("", None); self.history.get().slots()];
        let mut set = |op: u32, state, order: Option<usize>| {
            if let Some(slot) = out.get_mut(op as usize) {
                *slot = (state, order.map(|o| o as u32));
            }
        };
        for part in &self.parts {
            for &op in &part.members {
                let rest = match (&part.check.verdict, self.is_returned(op)) {
                    (PartVerdict::Undecided { .. }, true) => "undecided",
                    (PartVerdict::Violation { .. }, true) => "unreached",
                    _ => "pending",
                };
                set(op, rest, None);
            }
            match &part.check.verdict {
                PartVerdict::Linearizable { order, omitted, .. } => {
                    for (i, &op) in order.iter().enumerate() {
                        set(op, "linearized", Some(i));
                    }
                    for &op in omitted {
                        set(op, "omitted", None);
                    }
                }
                PartVerdict::Violation {
                    prefix,
                    unplaceable,
                    ..
                } => {
                    for (i, &op) in prefix.iter().enumerate() {
                        set(op, "prefix", Some(i));
                    }
                    for &op in unplaceable {
                        set(op, "unplaceable", None);
                    }
                }
                PartVerdict::Undecided { .. } => {}
            }
        }
        out
    }

    pub(super) fn lane(&self, op: u32) -> NodeId {
        let client = self.history.get().client(op);
        self.lanes.binary_search(&client).unwrap_or(0) as NodeId
    }

    /// `#9 r→1`.
    pub(super) fn short(&self, op: u32) -> String {
        format!(
            "#{op} {}",
            self.history.get().label(op, self.is_returned(op))
        )
    }

    /// `#9 r→1 (c2, ticks 25–31)`.
    pub(super) fn long(&self, op: u32) -> String {
        let h = self.history.get();
        let ret = match h.ret(op) {
            Some(ret) if self.is_returned(op) => ret.to_string(),
            _ => "…".to_string(),
        };
        format!(
            "{} (c{}, ticks {}–{ret})",
            self.short(op),
            h.client(op),
            h.call(op)
        )
    }

    /// `#0 w(1) → #2 r→1 → …`, the middle elided past `max` operations.
    pub(super) fn chain(&self, ops: &[u32], max: usize) -> String {
        let show = |ops: &[u32]| -> Vec<String> { ops.iter().map(|&op| self.short(op)).collect() };
        if ops.len() <= max {
            return show(ops).join(" → ");
        }
        let half = max / 2;
        let head = show(ops.get(..half).unwrap_or_default()).join(" → ");
        let tail = show(ops.get(ops.len() - half..).unwrap_or_default()).join(" → ");
        format!("{head} → … ({} more) … → {tail}", ops.len() - 2 * half)
    }

    pub(super) fn violations(&self) -> impl Iterator<Item = &Part> {
        self.parts
            .iter()
            .filter(|p| matches!(p.check.verdict, PartVerdict::Violation { .. }))
    }

    /// The client lanes of the operations no extension can place next.
    pub(super) fn involved_lanes(&self) -> Vec<NodeId> {
        let mut lanes: Vec<NodeId> = self
            .violations()
            .flat_map(|p| match &p.check.verdict {
                PartVerdict::Violation { unplaceable, .. } => unplaceable.clone(),
                _ => Vec::new(),
            })
            .map(|op| self.lane(op))
            .collect();
        lanes.sort_unstable();
        lanes.dedup();
        lanes
    }

    pub(super) fn source_text(&self) -> String {
        let mut text = match self.source {
            Source::Generated(g) => {
                let store = match g.store {
                    StoreKind::Correct => "a correct store".to_string(),
                    StoreKind::LaggingReplica {
                        stale_read_probability,
                        lost_write_probability,
                        lag_ticks,
                    } => format!(
                        "a store whose replica lags {lag_ticks} ticks (stale reads {}%, lost \
                         writes {}%)",
                        stale_read_probability * 100.0,
                        lost_write_probability * 100.0
                    ),
                };
                format!(
                    "{} history generated by {store}, seed {}, {} clients, timeouts {}%",
                    model_name(g.model),
                    g.seed,
                    g.clients,
                    g.timeout_probability * 100.0
                )
            }
            Source::Pasted(format) => format!(
                "{} history pasted as {}",
                self.history.get().model_name(),
                match format {
                    HistoryFormat::EtcdLog => "a Jepsen etcd log",
                    HistoryFormat::KvEdn => "Jepsen EDN key-value lines",
                    HistoryFormat::Edn => "a Knossos / Jepsen EDN register history",
                    HistoryFormat::MultiRegisterEdn => "a Knossos EDN multi-register history",
                }
            ),
        };
        if self.edits > 0 {
            text.push_str(&format!(", edited {} time(s)", self.edits));
        }
        text
    }

    pub(super) fn verdict_text(&self, now: Time) -> String {
        let undecided = self
            .parts
            .iter()
            .any(|p| matches!(p.check.verdict, PartVerdict::Undecided { .. }));
        let headline = if self.violations().next().is_some() {
            "NOT LINEARIZABLE: no order of the operations fits both real time and the model."
        } else if undecided {
            "UNDECIDED: no violation found, but the checker's step budget ran out."
        } else if self.called == 0 {
            "Nothing revealed yet: the empty history is linearizable."
        } else {
            "LINEARIZABLE so far: one order of the operations fits both real time and the model."
        };
        let mut lines = vec![
            headline.to_string(),
            format!(
                "{}. Revealed {} of {} events (tick {}): {} operations, {} still pending.",
                self.source_text(),
                self.revealed,
                self.events.len(),
                self.tick_now(now),
                self.called,
                self.called - self.returned
            ),
        ];
        for part in &self.parts {
            lines.push(String::new());
            lines.extend(self.part_text(part));
        }
        if self.violations().next().is_some() {
            lines.push(String::new());
            lines.push(
                "A history that is not linearizable stays so whatever comes later, so a bad \
                 part is re-checked only when an operation its report names returns, or on \
                 an edit."
                    .to_string(),
            );
        }
        lines.join("\n")
    }

    pub(super) fn part_text(&self, part: &Part) -> Vec<String> {
        let name = part.name();
        match &part.check.verdict {
            PartVerdict::Linearizable {
                order,
                omitted,
                state,
            } => {
                let mut lines = vec![format!(
                    "{name}: linearizable. Witness ({} operations): {}. Value after it: {state}.",
                    order.len(),
                    if order.is_empty() {
                        "empty".to_string()
                    } else {
                        self.chain(order, 40)
                    }
                )];
                if !omitted.is_empty() {
                    lines.push(format!(
                        "  Left out (pending, they may never take effect): {}.",
                        self.chain(omitted, 20)
                    ));
                }
                lines
            }
            PartVerdict::Violation {
                prefix,
                unplaceable,
                state,
                reasons,
                deadline,
            } => {
                let mut lines = vec![
                    format!("{name}: NOT linearizable."),
                    format!(
                        "  Longest linearizable prefix ({} operations): {}.",
                        prefix.len(),
                        if prefix.is_empty() {
                            "empty".to_string()
                        } else {
                            self.chain(prefix, 16)
                        }
                    ),
                    format!("  Value after it: {state}."),
                    match deadline {
                        Some((op, ret)) => format!(
                            "  Next must come an operation called before #{op} returned at tick \
                             {ret} (real-time order), and none fits:"
                        ),
                        None => "  Next must come one of these, and none fits:".to_string(),
                    },
                ];
                for (i, &op) in unplaceable.iter().enumerate() {
                    let reason = reasons.get(i).map_or("", String::as_str);
                    lines.push(format!("    {}: {reason}.", self.long(op)));
                }
                lines
            }
            PartVerdict::Undecided { reason } => vec![format!(
                "{name}: undecided, {reason} (with {} of its operations returned; checked \
                 again once twice as many have, or on an edit). Operations pending for ever \
                 make the search hardest: each may take effect anywhere after its call, or \
                 never.",
                part.check.returned
            )],
        }
    }

    pub(super) fn timeline(&self, statuses: &[(&'static str, Option<u32>)], now: Time) -> Panel {
        let h = self.history.get();
        let bars = (0..h.slots() as u32)
            .filter(|&op| self.is_called(op))
            .map(|op| {
                let (state, order) = statuses.get(op as usize).copied().unwrap_or(("", None));
                TimelineBar {
                    lane: self.lane(op),
                    start: h.call(op) as f64,
                    end: h.ret(op).filter(|_| self.is_returned(op)).map(|r| r as f64),
                    label: format!("#{op} {}", h.label(op, self.is_returned(op))),
                    state: state.to_string(),
                    order,
                }
            })
            .collect();
        Panel::Timeline {
            title: format!(
                "history in ticks: a bar per operation from call to return (open: pending), \
                 numbered in witness or prefix order; tick {}",
                self.tick_now(now)
            ),
            lanes: self.lanes.iter().map(|c| format!("c{c}")).collect(),
            bars,
        }
    }

    pub(super) fn parts_table(&self) -> Panel {
        let rows = self
            .parts
            .iter()
            .map(|p| {
                let (verdict, placed, state, detail) = match &p.check.verdict {
                    PartVerdict::Linearizable {
                        order,
                        omitted,
                        state,
                    } => (
                        "linearizable",
                        order.len(),
                        state.clone(),
                        format!("{} pending left out", omitted.len()),
                    ),
                    PartVerdict::Violation {
                        prefix,
                        unplaceable,
                        state,
                        ..
                    } => (
                        "not linearizable",
                        prefix.len(),
                        state.clone(),
                        format!(
                            "cannot go next: {}",
                            unplaceable
                                .iter()
                                .map(|&op| self.short(op))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    PartVerdict::Undecided { reason } => {
                        ("undecided", 0, String::new(), reason.clone())
                    }
                };
                vec![
                    json!(p.name()),
                    json!(p.members.len()),
                    json!(verdict),
                    json!(placed),
                    json!(state),
                    json!(p.check.steps),
                    json!(detail),
                ]
            })
            .collect();
        Panel::Table {
            title: "parts (checked independently: linearizability is local)".into(),
            columns: [
                "part",
                "operations",
                "verdict",
                "placed (witness or prefix)",
                "value after",
                "checker steps",
                "detail",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    pub(super) fn operations_table(&self, statuses: &[(&'static str, Option<u32>)]) -> Panel {
        let h = self.history.get();
        let rows = (0..h.slots() as u32)
            .filter(|&op| self.is_called(op))
            .map(|op| {
                let (state, order) = statuses.get(op as usize).copied().unwrap_or(("", None));
                vec![
                    json!(op),
                    json!(format!("c{}", h.client(op))),
                    json!(h.label(op, self.is_returned(op))),
                    json!(h.call(op)),
                    json!(h.ret(op).filter(|_| self.is_returned(op))),
                    json!(state),
                    json!(order),
                ]
            })
            .collect();
        Panel::Table {
            title: "revealed operations (op numbers are what edits name)".into(),
            columns: [
                "op",
                "client",
                "operation",
                "call",
                "return",
                "state",
                "order",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    pub(super) fn client_nodes(&self) -> Vec<NodeView> {
        let h = self.history.get();
        let mut counts = vec![(0u64, None::<String>); self.lanes.len()];
        for op in (0..h.slots() as u32).filter(|&op| self.is_called(op)) {
            if let Some((n, open)) = counts.get_mut(self.lane(op) as usize) {
                *n += 1;
                if !self.is_returned(op) {
                    *open = Some(format!("#{op} {}", h.label(op, false)));
                }
            }
        }
        self.lanes
            .iter()
            .zip(counts)
            .enumerate()
            .map(|(lane, (client, (n, open)))| NodeView {
                id: lane as NodeId,
                label: format!("c{client}"),
                role: "client".into(),
                status: "up".into(),
                fields: [
                    ("operations".to_string(), json!(n)),
                    ("pending".to_string(), json!(open)),
                ]
                .into_iter()
                .collect(),
                group: None,
            })
            .collect()
    }

    pub(super) fn invariants(&self) -> Vec<InvariantStatus> {
        let violated: Vec<String> = self.violations().map(Part::name).collect();
        let undecided: Vec<String> = self
            .parts
            .iter()
            .filter(|p| matches!(p.check.verdict, PartVerdict::Undecided { .. }))
            .map(Part::name)
            .collect();
        let linearizable = if !violated.is_empty() {
            InvariantStatus::violated(
                LINEARIZABLE,
                format!(
                    "{} cannot be linearized; the highlighted clients ran the operations \
                     that cannot go next",
                    violated.join(", ")
                ),
                self.involved_lanes(),
            )
        } else if !undecided.is_empty() {
            InvariantStatus::holds(
                LINEARIZABLE,
                format!(
                    "no violation found, but {} not decided within the checker's budget",
                    undecided.join(", ")
                ),
            )
        } else {
            InvariantStatus::holds(
                LINEARIZABLE,
                format!(
                    "a witness orders the {} operations revealed (pending ones may be left \
                     out)",
                    self.called
                ),
            )
        };
        let agrees = if undecided.is_empty() {
            "the checker agrees"
        } else {
            "the checker found no violation (some parts are undecided)"
        };
        let correct_store = match self.source {
            Source::Generated(g) if g.store == StoreKind::Correct && self.edits == 0 => {
                if violated.is_empty() {
                    InvariantStatus::holds(
                        CORRECT_STORE,
                        format!(
                            "the correct store applies each operation inside its interval, \
                             and {agrees}"
                        ),
                    )
                } else {
                    InvariantStatus::violated(
                        CORRECT_STORE,
                        format!(
                            "the checker rejects {} of a history linearizable by \
                             construction: the generator or the checker is wrong",
                            violated.join(", ")
                        ),
                        self.involved_lanes(),
                    )
                }
            }
            _ => InvariantStatus::holds(
                CORRECT_STORE,
                "not applicable: the history is not the correct store's, unedited",
            ),
        };
        let problems: Vec<String> = self
            .parts
            .iter()
            .filter_map(|p| {
                p.check
                    .replay_problem
                    .as_ref()
                    .map(|e| format!("{}: {e}", p.name()))
            })
            .collect();
        let replays = if problems.is_empty() {
            InvariantStatus::holds(
                REPLAYS,
                "every witness and every reported prefix replays on the model in real-time \
                 order",
            )
        } else {
            InvariantStatus::violated(REPLAYS, problems.join("; "), Vec::new())
        };
        vec![linearizable, correct_store, replays]
    }
}

pub(super) fn model_name(model: ModelKind) -> &'static str {
    match model {
        ModelKind::Register => "A register",
        ModelKind::CasRegister => "A compare-and-set register",
        ModelKind::Kv => "A key-value",
    }
}
