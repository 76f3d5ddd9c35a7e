//! The figures of a run's `forge` steps, read back from the history: what each outsider
//! sent (its last `progress` or `done` line, `outsiderN: {...}` harness records) and what
//! the nodes refused (`input_rejected` events from peers, by reason). Printed under the
//! verdict and noted in the history, so a forgery run says how hard it was hit.

use crate::history::Record;
use chat_node::events::Event;
use serde_json::Value;
use std::collections::BTreeMap;

/// One outsider's last report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutsiderFigures {
    pub number: usize,
    /// `done` (it ran its whole time) or `progress` (cut short by the end of the run).
    pub last: String,
    pub t_ms: u64,
    pub sent: u64,
    pub replayed: u64,
    pub garbage: u64,
    pub heard: u64,
    pub captured: u64,
    pub send_errors: u64,
    pub by_kind: BTreeMap<String, u64>,
}

/// Each outsider's last `progress`/`done` line, by number.
pub fn outsiders(records: &[Record]) -> Vec<OutsiderFigures> {
    let mut out: BTreeMap<usize, OutsiderFigures> = BTreeMap::new();
    for r in records {
        let Record::Harness(h) = r else { continue };
        let Some(rest) = h.msg.strip_prefix("outsider") else {
            continue;
        };
        let Some((num, json)) = rest.split_once(": ") else {
            continue;
        };
        let (Ok(number), Ok(v)) = (num.parse::<usize>(), serde_json::from_str::<Value>(json))
        else {
            continue;
        };
        let last = v.get("forge").and_then(Value::as_str).unwrap_or("");
        if last != "progress" && last != "done" {
            continue;
        }
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        let by_kind = v
            .get("by_kind")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, c)| (k.clone(), c.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            number,
            OutsiderFigures {
                number,
                last: last.to_string(),
                t_ms: n("t_ms"),
                sent: n("sent"),
                replayed: n("replayed"),
                garbage: n("garbage"),
                heard: n("heard"),
                captured: n("captured"),
                send_errors: n("send_errors"),
                by_kind,
            },
        );
    }
    out.into_values().collect()
}

/// Peer datagrams the nodes refused, by reason (the text before the first `:`).
pub fn peer_rejections(records: &[Record]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in records {
        let Record::Node(ev) = r else { continue };
        if let Event::InputRejected {
            source,
            reason,
            times,
            ..
        } = &ev.event
        {
            if source == "peer" {
                // One event stands for `times` refusals (they are rate-limited).
                let why = reason.split(':').next().unwrap_or("").trim().to_string();
                *out.entry(why).or_default() += times;
            }
        }
    }
    out
}

/// The lines to print: one per outsider and one for the refusals; none without a forge.
pub fn lines(records: &[Record]) -> Vec<String> {
    let outs = outsiders(records);
    if outs.is_empty() {
        return Vec::new();
    }
    let mut lines: Vec<String> = outs
        .iter()
        .map(|o| {
            let kinds: Vec<String> = o.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!(
                "outsider{}: sent {} datagrams in {} ms ({}; replayed {}, garbage {}), heard {}, captured {}, send errors {}; {}",
                o.number,
                o.sent,
                o.t_ms,
                if o.last == "done" { "ran its whole time" } else { "cut short by the end of the run" },
                o.replayed,
                o.garbage,
                o.heard,
                o.captured,
                o.send_errors,
                kinds.join(", ")
            )
        })
        .collect();
    let rejected = peer_rejections(records);
    let total: u64 = rejected.values().sum();
    let by: Vec<String> = rejected.iter().map(|(k, n)| format!("{k} {n}")).collect();
    lines.push(format!(
        "nodes refused {total} peer datagrams{}{}",
        if by.is_empty() { "" } else { ": " },
        by.join(", ")
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HarnessRecord;

    fn harness(ts: u64, msg: &str) -> Record {
        Record::Harness(HarnessRecord {
            ts_ms: ts,
            msg: msg.to_string(),
        })
    }

    #[test]
    fn the_last_report_of_each_outsider_and_the_refusals_by_reason() {
        let mut records = vec![
            harness(1, r#"outsider1: {"forge":"started","rate":200}"#),
            harness(
                2,
                r#"outsider1: {"forge":"progress","t_ms":1000,"sent":200,"replayed":10,"garbage":12,"heard":30,"captured":30,"send_errors":0,"by_kind":{"hello":20}}"#,
            ),
            harness(
                3,
                r#"outsider1: {"forge":"done","t_ms":2000,"sent":400,"replayed":20,"garbage":25,"heard":60,"captured":58,"send_errors":1,"by_kind":{"hello":40,"replay":20}}"#,
            ),
            harness(4, "n1 stderr: outsider1: not a forge line"),
        ];
        let reject = |reason: &str, source: &str| {
            Record::Node(chat_node::events::EventRecord {
                v: chat_node::events::EVENTS_VERSION,
                ts_ms: 5,
                node: chat_node::ids::NodeId(1),
                epoch: 1,
                role: chat_node::ids::Role::Follower,
                event: Event::InputRejected {
                    source: source.into(),
                    from: "10.0.0.200:7400".into(),
                    reason: reason.into(),
                    count: 1,
                    times: 1,
                },
            })
        };
        records.push(reject("malformed: expected value", "peer"));
        records.push(reject("malformed: eof", "peer"));
        records.push(reject("oversized: 61441 bytes > 61440", "peer"));
        records.push(reject("login first", "client"));
        let o = outsiders(&records);
        assert_eq!(o.len(), 1);
        assert_eq!(
            (o[0].last.as_str(), o[0].sent, o[0].replayed),
            ("done", 400, 20)
        );
        assert_eq!(o[0].by_kind["replay"], 20);
        let lines = lines(&records);
        assert!(lines[0].starts_with("outsider1: sent 400 datagrams in 2000 ms (ran its whole time; replayed 20, garbage 25)"), "{}", lines[0]);
        assert_eq!(
            lines[1],
            "nodes refused 3 peer datagrams: malformed 2, oversized 1"
        );
        assert!(super::lines(&records[3..4]).is_empty());
    }
}
