//! Fault bands for the HTML timeline: which lanes each injected fault covered, from when to
//! when, and for network faults which way packets could not go. Read from the history's
//! fault records as plain JSON, so a fault kind this file does not know yet (a link fault
//! added later) still shows as a band across the nodes it names, until the next `heal`.

use serde::Serialize;
use serde_json::Value;

/// One fault, drawn across `nodes` from `a` to `b` (ms since the page's origin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Band {
    /// The fault record's `action`: `kill`, `stop`, `pause`, `partition`, `cut`, `isolate`,
    /// or any other (link) fault keyword.
    pub kind: String,
    pub a: u64,
    pub b: u64,
    /// False while the fault was never repaired (`b` is then the end of the history).
    pub repaired: bool,
    /// The lanes the band covers.
    pub nodes: Vec<u64>,
    /// `partition`: the groups; each group can only reach itself.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<u64>>,
    /// Network faults: packets from `from` ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<u64>,
    /// ... do not reach (or are degraded towards) `to`. Empty for node faults.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<u64>,
    /// What to write on the band (`kill n3`, `cut 1 → 2 (one-way)`, `loss 30% 1 → 2`).
    pub label: String,
    /// Index of the fault record in the history, and of the one that repaired it.
    pub rec: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_rec: Option<usize>,
}

/// Node faults end at a `restart` (or `resume` for a pause) of the node; network faults at
/// a `heal`; a `forge` when its outsider's time (`forge.for_ms`) is up.
fn is_node_fault(kind: &str) -> bool {
    matches!(kind, "kill" | "stop" | "pause")
}

fn ids(v: &Value, key: &str) -> Vec<u64> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn set(ns: &[u64]) -> String {
    let v: Vec<String> = ns.iter().map(u64::to_string).collect();
    v.join(",")
}

/// Fields of a fault record beyond the common ones, as `key=value` (a link fault's percent,
/// delay, rate …).
fn extras(v: &Value) -> String {
    let Some(obj) = v.as_object() else {
        return String::new();
    };
    let mut out = Vec::new();
    for (k, x) in obj {
        if matches!(
            k.as_str(),
            "src" | "ts_ms" | "action" | "nodes" | "step" | "groups" | "to"
        ) {
            continue;
        }
        match x {
            Value::String(s) => out.push(format!("{k}={s}")),
            Value::Number(n) => out.push(format!("{k}={n}")),
            Value::Bool(b) => out.push(format!("{k}={b}")),
            _ => {}
        }
    }
    out.join(" ")
}

/// The bands of a history: `faults` are `(record index, ts relative to the origin, record)`
/// in time order; `all_nodes` are the lanes (for isolation); `end` closes open bands.
pub fn bands(faults: &[(usize, u64, &Value)], all_nodes: &[u64], end: u64) -> Vec<Band> {
    let mut out: Vec<Band> = Vec::new();
    // Indexes into `out` of the bands still open.
    let mut open: Vec<usize> = Vec::new();
    for (rec, t, f) in faults {
        let kind = f.get("action").and_then(Value::as_str).unwrap_or("?");
        let nodes = ids(f, "nodes");
        let close = |out: &mut Vec<Band>, open: &mut Vec<usize>, pred: &dyn Fn(&Band) -> bool| {
            open.retain(|&i| {
                if pred(&out[i]) {
                    out[i].b = *t;
                    out[i].repaired = true;
                    out[i].end_rec = Some(*rec);
                    false
                } else {
                    true
                }
            });
        };
        match kind {
            "start" => {}
            "restart" => close(&mut out, &mut open, &|b| {
                is_node_fault(&b.kind) && b.nodes.iter().all(|n| nodes.contains(n))
            }),
            "resume" => close(&mut out, &mut open, &|b| {
                b.kind == "pause" && b.nodes.iter().all(|n| nodes.contains(n))
            }),
            "heal" => close(&mut out, &mut open, &|b| {
                !is_node_fault(&b.kind) && b.kind != "forge"
            }),
            "forge" => {
                // Ends by itself: never open, never closed by a heal.
                let p = f.get("forge");
                let field = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_u64);
                let for_ms = field("for_ms").unwrap_or(0);
                let b = t.saturating_add(for_ms).min(end.max(*t));
                let mut covered = if nodes.is_empty() {
                    all_nodes.to_vec()
                } else {
                    nodes.clone()
                };
                covered.sort_unstable();
                out.push(Band {
                    kind: "forge".to_string(),
                    a: *t,
                    b,
                    repaired: true,
                    nodes: covered,
                    groups: vec![],
                    from: vec![],
                    to: vec![],
                    label: format!(
                        "forge {}/s from outsider {}",
                        field("rate_per_s").unwrap_or(0),
                        p.and_then(|p| p.get("outsider"))
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    )
                    .trim_end()
                    .to_string(),
                    rec: *rec,
                    end_rec: None,
                });
            }
            _ if is_node_fault(kind) => {
                // A kill of a paused node ends the pause; each node gets its own band.
                close(&mut out, &mut open, &|b| {
                    b.kind == "pause" && b.nodes.iter().all(|n| nodes.contains(n))
                });
                for n in &nodes {
                    open.push(out.len());
                    out.push(Band {
                        kind: kind.to_string(),
                        a: *t,
                        b: end,
                        repaired: false,
                        nodes: vec![*n],
                        groups: vec![],
                        from: vec![],
                        to: vec![],
                        label: format!("{kind} n{n}"),
                        rec: *rec,
                        end_rec: None,
                    });
                }
            }
            _ => {
                let groups: Vec<Vec<u64>> = f
                    .get("groups")
                    .and_then(Value::as_array)
                    .map(|gs| {
                        gs.iter()
                            .map(|g| {
                                g.as_array()
                                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                                    .unwrap_or_default()
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let to = ids(f, "to");
                let (covered, from, label) = match kind {
                    "partition" => {
                        let covered: Vec<u64> = groups.iter().flatten().copied().collect();
                        let text: Vec<String> =
                            groups.iter().map(|g| format!("{{{}}}", set(g))).collect();
                        (covered, vec![], format!("partition {}", text.join(" | ")))
                    }
                    "cut" => {
                        let mut covered = nodes.clone();
                        covered.extend(to.iter().copied());
                        (
                            covered,
                            nodes.clone(),
                            format!("cut {} → {} (one-way)", set(&nodes), set(&to)),
                        )
                    }
                    "isolate" => (nodes.clone(), vec![], format!("isolate n{}", set(&nodes))),
                    other => {
                        let mut covered = nodes.clone();
                        covered.extend(to.iter().copied());
                        let dir = if to.is_empty() {
                            format!("n{}", set(&nodes))
                        } else {
                            format!("{} → {}", set(&nodes), set(&to))
                        };
                        let x = extras(f);
                        let label = if x.is_empty() {
                            format!("{other} {dir}")
                        } else {
                            format!("{other} {x} {dir}")
                        };
                        (covered, nodes.clone(), label)
                    }
                };
                let mut covered = if covered.is_empty() {
                    all_nodes.to_vec()
                } else {
                    covered
                };
                covered.sort_unstable();
                covered.dedup();
                open.push(out.len());
                out.push(Band {
                    kind: kind.to_string(),
                    a: *t,
                    b: end,
                    repaired: false,
                    nodes: covered,
                    groups,
                    from,
                    to,
                    label,
                    rec: *rec,
                    end_rec: None,
                });
            }
        }
    }
    out
}
