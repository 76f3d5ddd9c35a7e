//! `harness matrix`: every scenario under every election algorithm, on the same machine, in
//! one comparison table (issue 9 item 5). Each (scenario, algorithm) cell is a `--repeat`
//! run ([`crate::repeat`]); the table shows what each algorithm costs and survives under the
//! same faults: pass rate, failover p50 and max, elections per fault, false suspicions,
//! client unavailability, lost and duplicated messages. Written as `matrix.md`,
//! `matrix.json` and `index.html` in the output directory, rewritten after every cell so an
//! interrupted matrix keeps what it measured.
//!
//! The algorithms come from the node's own `ElectionKind`: unimplemented ones are refused
//! before anything starts, and new ones are picked up as soon as the node implements them.
//! Cells run scenario by scenario, each algorithm in turn, so a machine that gets busier
//! during the matrix slows every algorithm alike.

use crate::repeat::{self, num, RepeatSummary, Stats};
use crate::report::index::{html_page, html_table, Cell, Table};
use crate::report::Verdict;
use crate::runner::RunOptions;
use crate::scenario::{self, Scenario, ScenarioError};
use chat_node::settings::ElectionKind;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What "election messages per fault" counts.
pub const ELECTION_MESSAGES_MEANING: &str = "election datagrams every node sent (tokens, vote \
    requests and replies, answers, coordinators; the nodes' `election_messages` events) from the \
    first injected fault on, over injected faults; heartbeats and appends are not counted";

/// `harness matrix` options.
#[derive(Clone, Debug)]
pub struct MatrixOptions {
    pub files: Vec<PathBuf>,
    pub elections: Vec<String>,
    pub repeat: u32,
    pub out: PathBuf,
    pub run: RunOptions,
}

/// `--elections a,b`: each an implemented algorithm (refused up front otherwise), in the
/// order given, without repeats. None: every algorithm the node implements.
pub fn parse_elections(text: Option<&str>) -> Result<Vec<String>, String> {
    let Some(text) = text else {
        return Ok(ElectionKind::ALL
            .into_iter()
            .filter(|k| k.implemented())
            .map(|k| k.name().to_string())
            .collect());
    };
    let mut out: Vec<String> = Vec::new();
    let mut refused = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match ElectionKind::parse_implemented(name) {
            Ok(k) if !out.iter().any(|o| o == k.name()) => out.push(k.name().to_string()),
            Ok(_) => {}
            Err(e) => refused.push(e),
        }
    }
    if !refused.is_empty() {
        return Err(format!("{} (nothing was started)", refused.join("; ")));
    }
    if out.is_empty() {
        return Err("`--elections` names no algorithm".into());
    }
    Ok(out)
}

/// A scenario file under `election` (None: as written). `Ok(Err(why))`: the file pins
/// another algorithm, so it is skipped under this one.
pub fn load_under(
    path: &Path,
    election: Option<&str>,
) -> Result<Result<Scenario, String>, ScenarioError> {
    let as_written = scenario::load(path)?;
    let Some(e) = election else {
        return Ok(Ok(as_written));
    };
    if let Some(why) = as_written.refuses_election(e) {
        return Ok(Err(why));
    }
    scenario::load_with(path, Some(e)).map(Ok)
}

/// One (scenario, algorithm) cell.
#[derive(Clone, Debug)]
pub struct MatrixCell {
    pub scenario: String,
    pub election: String,
    pub outcome: CellOutcome,
}

#[derive(Clone, Debug)]
pub enum CellOutcome {
    Ran {
        summary: RepeatSummary,
        /// The cell's directory, relative to the matrix's.
        dir: String,
    },
    /// The scenario pins another algorithm.
    Pinned(String),
}

impl MatrixCell {
    fn summary(&self) -> Option<&RepeatSummary> {
        match &self.outcome {
            CellOutcome::Ran { summary, .. } => Some(summary),
            CellOutcome::Pinned(_) => None,
        }
    }
}

/// The figures of one row, from a cell's pooled samples.
struct Row {
    pass: String,
    ok: Option<bool>,
    failover_p50: String,
    failover_max: String,
    elections_per_fault: String,
    election_messages_per_fault: String,
    false_suspicions: String,
    unavailability_p50: String,
    unavailability_max: String,
    lost: String,
    duplicated: String,
    wall_p50: String,
}

fn sum(s: &RepeatSummary, k: &str) -> Option<f64> {
    s.samples.get(k).map(|v| v.iter().sum())
}

/// The sample `k` summed over the runs, over the injected faults summed likewise.
fn per_fault(s: &RepeatSummary, k: &str) -> Option<f64> {
    match (sum(s, k), sum(s, "faults")) {
        (Some(v), Some(f)) if f > 0.0 => Some(v / f),
        _ => None,
    }
}

fn ms(st: Option<&Stats>, pick: fn(&Stats) -> f64) -> String {
    st.map(|s| format!("{} ms", num(pick(s))))
        .unwrap_or_else(|| "-".into())
}

fn row(s: &RepeatSummary) -> Row {
    let count = |k: &str| sum(s, k).map(num).unwrap_or_else(|| "-".into());
    let per_fault = |k: &str| {
        per_fault(s, k)
            .map(|v| format!("{v:.2}"))
            .unwrap_or_else(|| "-".into())
    };
    Row {
        pass: format!("{}/{}", s.passed, s.runs),
        ok: Some(s.passed == s.runs && s.runs > 0),
        failover_p50: ms(s.figures.get("failover_ms"), |s| s.p50),
        failover_max: ms(s.figures.get("failover_ms"), |s| s.max),
        elections_per_fault: per_fault("elections"),
        election_messages_per_fault: per_fault("election_messages"),
        false_suspicions: count("false_suspicions"),
        unavailability_p50: ms(s.figures.get("client_unavailability_ms"), |s| s.p50),
        unavailability_max: ms(s.figures.get("client_unavailability_ms"), |s| s.max),
        lost: count("lost"),
        duplicated: count("duplicated"),
        wall_p50: s
            .figures
            .get("wall_ms")
            .map(|w| format!("{:.1} s", w.p50 / 1000.0))
            .unwrap_or_else(|| "-".into()),
    }
}

const HEADERS: [&str; 13] = [
    "scenario",
    "election",
    "pass",
    "failover p50",
    "failover max",
    "elections/fault",
    "election msgs/fault",
    "false suspicions",
    "client unavail. p50",
    "client unavail. max",
    "lost",
    "duplicated",
    "wall p50",
];

/// The comparison table: one row per cell.
pub fn table(cells: &[MatrixCell]) -> Table {
    let rows = cells
        .iter()
        .map(|c| {
            let name = Cell::text(c.scenario.clone());
            let election = Cell::text(c.election.clone());
            match &c.outcome {
                CellOutcome::Pinned(why) => {
                    let mut v = vec![
                        name,
                        election,
                        Cell {
                            text: "pinned".into(),
                            title: Some(why.clone()),
                            ..Cell::default()
                        },
                    ];
                    v.extend((3..HEADERS.len()).map(|_| Cell::text("")));
                    v
                }
                CellOutcome::Ran { summary, dir } => {
                    let r = row(summary);
                    let bad_count = |t: &str| Cell {
                        text: t.to_string(),
                        ok: Some(t == "0" || t == "-"),
                        ..Cell::default()
                    };
                    vec![
                        Cell {
                            href: Some(format!("{dir}/run-1/report.html")),
                            ..name
                        },
                        election,
                        Cell {
                            text: r.pass,
                            ok: r.ok,
                            title: (!summary.failed_checks.is_empty()).then(|| {
                                summary
                                    .failed_checks
                                    .iter()
                                    .map(|(k, v)| format!("{k} failed {v}×"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }),
                            ..Cell::default()
                        },
                        Cell::text(r.failover_p50),
                        Cell::text(r.failover_max),
                        Cell::text(r.elections_per_fault),
                        Cell {
                            text: r.election_messages_per_fault,
                            title: Some(ELECTION_MESSAGES_MEANING.into()),
                            ..Cell::default()
                        },
                        bad_count(&r.false_suspicions),
                        Cell::text(r.unavailability_p50),
                        Cell::text(r.unavailability_max),
                        bad_count(&r.lost),
                        bad_count(&r.duplicated),
                        Cell::text(r.wall_p50),
                    ]
                }
            }
        })
        .collect();
    Table {
        headers: HEADERS.iter().map(|h| h.to_string()).collect(),
        rows,
    }
}

/// Per algorithm, every cell pooled: passes, failover and client unavailability.
fn per_election(cells: &[MatrixCell], elections: &[String]) -> Vec<(String, Value)> {
    elections
        .iter()
        .map(|e| {
            let ran: Vec<&RepeatSummary> = cells
                .iter()
                .filter(|c| &c.election == e)
                .filter_map(MatrixCell::summary)
                .collect();
            let pool = |k: &str| {
                let v: Vec<f64> = ran
                    .iter()
                    .flat_map(|s| s.samples.get(k).cloned().unwrap_or_default())
                    .collect();
                Stats::of(&v)
            };
            let runs: usize = ran.iter().map(|s| s.runs).sum();
            let passed: usize = ran.iter().map(|s| s.passed).sum();
            (
                e.clone(),
                json!({
                    "runs": runs,
                    "passed": passed,
                    "cells": ran.len(),
                    "cells_all_passed": ran.iter().filter(|s| s.passed == s.runs).count(),
                    "failover_ms": pool("failover_ms"),
                    "client_unavailability_ms": pool("client_unavailability_ms"),
                    "lost": ran.iter().filter_map(|s| sum(s, "lost")).sum::<f64>(),
                    "duplicated": ran.iter().filter_map(|s| sum(s, "duplicated")).sum::<f64>(),
                    "false_suspicions": ran.iter().filter_map(|s| sum(s, "false_suspicions")).sum::<f64>(),
                }),
            )
        })
        .collect()
}

/// `matrix.md`: the table, the per-algorithm totals and what the columns mean.
pub fn markdown(cells: &[MatrixCell], elections: &[String], repeat: u32) -> String {
    let t = table(cells);
    let mut out = format!(
        "# Election matrix\n\n{} scenarios × {} ({}), {} run{} per cell.\n\n",
        cells
            .iter()
            .map(|c| &c.scenario)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        elections.len(),
        elections.join(", "),
        repeat,
        if repeat == 1 { "" } else { "s" }
    );
    out.push_str(&format!("| {} |\n", t.headers.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(t.headers.len())));
    for r in &t.rows {
        let cells: Vec<String> = r.iter().map(|c| c.text.replace('|', "\\|")).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out.push_str("\n| election | runs passed | cells all passed | failover p50 / max | client unavail. p50 / max | lost | duplicated | false suspicions |\n|---|---|---|---|---|---|---|---|\n");
    for (e, v) in per_election(cells, elections) {
        let st = |k: &str| {
            let p = |f: &str| v[k][f].as_f64().map(num).unwrap_or_else(|| "-".into());
            if v[k].is_null() {
                "-".to_string()
            } else {
                format!("{} / {} ms", p("p50"), p("max"))
            }
        };
        out.push_str(&format!(
            "| {e} | {}/{} | {}/{} | {} | {} | {} | {} | {} |\n",
            v["passed"],
            v["runs"],
            v["cells_all_passed"],
            v["cells"],
            st("failover_ms"),
            st("client_unavailability_ms"),
            v["lost"],
            v["duplicated"],
            v["false_suspicions"]
        ));
    }
    out.push_str(&format!(
        "\nColumns: **pass** runs passed of runs; **failover** p50 and max over every failover of \
         every run (the election checker's figure); **elections/fault** epochs that started an \
         election or won one, the first excepted, over injected faults (repairs: heal, resume and \
         restart are not faults); **election msgs/fault** \
         {ELECTION_MESSAGES_MEANING}; **false suspicions**, **lost**, **duplicated** totals over \
         the runs; **client unavail.** from each fault to each user's first acknowledged message \
         after it (docs/SCENARIOS.md, `client_unavailability`); **pinned**: the scenario pins \
         another algorithm (`election_pinned: true`).\n"
    ));
    out
}

/// `matrix.json`.
pub fn json_doc(cells: &[MatrixCell], elections: &[String], opts: &MatrixOptions) -> String {
    let cells_json: Vec<Value> = cells
        .iter()
        .map(|c| match &c.outcome {
            CellOutcome::Pinned(why) => json!({
                "scenario": c.scenario, "election": c.election, "status": "pinned", "why": why,
            }),
            CellOutcome::Ran { summary, dir } => {
                let r = row(summary);
                json!({
                    "scenario": c.scenario,
                    "election": c.election,
                    "status": if r.ok == Some(true) { "pass" } else { "fail" },
                    "dir": dir,
                    "runs": summary.runs,
                    "passed": summary.passed,
                    "pass_rate": summary.pass_rate,
                    "failed_checks": summary.failed_checks,
                    "figures": summary.figures,
                    "elections_per_fault": per_fault(summary, "elections"),
                    "election_messages_per_fault": per_fault(summary, "election_messages"),
                    "false_suspicions": sum(summary, "false_suspicions"),
                    "lost": sum(summary, "lost"),
                    "duplicated": sum(summary, "duplicated"),
                })
            }
        })
        .collect();
    let per: serde_json::Map<String, Value> = per_election(cells, elections).into_iter().collect();
    let doc = json!({
        "image": opts.run.image,
        "repeat": opts.repeat,
        "elections": elections,
        "election_messages_per_fault": ELECTION_MESSAGES_MEANING,
        "cells": cells_json,
        "per_election": per,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into()) + "\n"
}

fn write_all(cells: &[MatrixCell], opts: &MatrixOptions) -> std::io::Result<()> {
    std::fs::create_dir_all(&opts.out)?;
    let md = markdown(cells, &opts.elections, opts.repeat);
    std::fs::write(opts.out.join("matrix.md"), &md)?;
    std::fs::write(
        opts.out.join("matrix.json"),
        json_doc(cells, &opts.elections, opts),
    )?;
    let intro = format!(
        "{} × {} run(s) per cell. Each scenario name opens its first run's timeline; hover pass \
         for the checks that failed. Election messages per fault: {ELECTION_MESSAGES_MEANING}.",
        opts.elections.join(", "),
        opts.repeat
    );
    std::fs::write(
        opts.out.join("index.html"),
        html_page(
            "faultline election matrix",
            &intro,
            &html_table(&table(cells)),
        ),
    )
}

/// Runs the matrix. Every file is validated under every algorithm before any container
/// starts; exit code: the worst verdict of the cells that ran.
pub async fn run(opts: &MatrixOptions) -> Verdict {
    // Up front: (file, election) -> scenario or pinned; any invalid file stops everything.
    let mut plan: Vec<(String, String, Result<Scenario, String>)> = Vec::new();
    let mut bad = false;
    for f in &opts.files {
        for e in &opts.elections {
            match load_under(f, Some(e)) {
                Ok(r) => {
                    let name = match &r {
                        Ok(s) => s.name.clone(),
                        Err(_) => scenario::load(f).map(|s| s.name).unwrap_or_default(),
                    };
                    plan.push((name, e.clone(), r));
                }
                Err(err) => {
                    crate::say_err!("error: {err}");
                    bad = true;
                    break;
                }
            }
        }
    }
    if bad {
        crate::say_err!("nothing was started: fix the scenario errors above");
        return Verdict::Error;
    }
    let runnable = plan.iter().filter(|p| p.2.is_ok()).count();
    crate::say!(
        "matrix: {} scenarios × {} ({}) × {} run(s): {} cells to run, {} pinned",
        opts.files.len(),
        opts.elections.len(),
        opts.elections.join(", "),
        opts.repeat,
        runnable,
        plan.len() - runnable
    );
    let mut cells: Vec<MatrixCell> = Vec::new();
    let mut verdict = Verdict::Pass;
    for (name, election, s) in plan {
        let outcome = match s {
            Err(why) => {
                crate::say!("\nskipped: {why}");
                CellOutcome::Pinned(why)
            }
            Ok(s) => {
                let rel = format!("{election}/{}", s.name);
                let summary = repeat::run(&s, &opts.run, opts.repeat, &opts.out.join(&rel)).await;
                let v = summary.verdict();
                if v.exit_code() > verdict.exit_code() {
                    verdict = v;
                }
                let interrupted = summary.runs < opts.repeat as usize;
                cells.push(MatrixCell {
                    scenario: name.clone(),
                    election: election.clone(),
                    outcome: CellOutcome::Ran { summary, dir: rel },
                });
                if let Err(e) = write_all(&cells, opts) {
                    crate::say_err!("could not write the matrix in {}: {e}", opts.out.display());
                }
                if interrupted {
                    crate::say_err!("interrupted: the matrix holds the cells made so far");
                    return Verdict::Error;
                }
                continue;
            }
        };
        cells.push(MatrixCell {
            scenario: name,
            election,
            outcome,
        });
    }
    if let Err(e) = write_all(&cells, opts) {
        crate::say_err!("could not write the matrix in {}: {e}", opts.out.display());
        return Verdict::Error;
    }
    crate::say!("\n{}", markdown(&cells, &opts.elections, opts.repeat));
    crate::say!(
        "matrix: {} (matrix.md, matrix.json, index.html)",
        opts.out.display()
    );
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::CheckResult;
    use crate::runner::RunResult;
    use std::time::Duration;

    #[test]
    fn only_implemented_algorithms_are_accepted_and_the_default_is_all_of_them() {
        let all = parse_elections(None).unwrap();
        assert!(all.contains(&"lcr".to_string()));
        assert_eq!(parse_elections(Some("lcr, lcr")).unwrap(), vec!["lcr"]);
        assert!(parse_elections(Some("paxos"))
            .unwrap_err()
            .contains("unknown election `paxos`"));
        assert!(parse_elections(Some(",")).is_err());
        // Whatever is not implemented yet is refused before anything runs.
        for k in ElectionKind::ALL.into_iter().filter(|k| !k.implemented()) {
            let e = parse_elections(Some(&format!("lcr,{}", k.name()))).unwrap_err();
            assert!(e.contains("not implemented yet"), "{e}");
            assert!(e.contains("nothing was started"), "{e}");
        }
    }

    fn cell(election: &str, failover: &[f64], passed: bool) -> MatrixCell {
        let s = crate::checkers::testkit::scenario("election");
        let mut e = CheckResult::new("election", passed, "f".into());
        e.sample("failover_ms", failover.iter().copied());
        e.sample("elections", [2.0]);
        e.sample("faults", [1.0]);
        e.sample("election_messages", [12.0]);
        let mut d = CheckResult::new("delivery", true, "d".into());
        d.sample("lost", [0.0]);
        d.sample("duplicated", [1.0]);
        let r = RunResult {
            verdict: if passed { Verdict::Pass } else { Verdict::Fail },
            wall: Duration::from_millis(12_000),
            out_dir: PathBuf::from("x"),
            interrupted: false,
            run_id: "r".into(),
            seed: 1,
            checks: vec![e, d],
            steps: vec![],
            reasons: vec![],
        };
        MatrixCell {
            scenario: "t".into(),
            election: election.into(),
            outcome: CellOutcome::Ran {
                summary: RepeatSummary::from_runs(&s, &[r.clone(), r]),
                dir: format!("{election}/t"),
            },
        }
    }

    #[test]
    fn the_table_has_a_row_per_cell_with_its_figures() {
        let cells = vec![
            cell("lcr", &[500.0, 700.0], true),
            MatrixCell {
                scenario: "t2".into(),
                election: "lcr".into(),
                outcome: CellOutcome::Pinned("t2 pins election `raft`".into()),
            },
        ];
        let t = table(&cells);
        let r = &t.rows[0];
        assert_eq!(r[0].href.as_deref(), Some("lcr/t/run-1/report.html"));
        assert_eq!(r[2].text, "2/2");
        assert_eq!(r[3].text, "500 ms");
        assert_eq!(r[4].text, "700 ms");
        assert_eq!(r[5].text, "2.00");
        assert_eq!(r[6].text, "12.00");
        assert_eq!((r[10].text.as_str(), r[10].ok), ("0", Some(true)));
        assert_eq!((r[11].text.as_str(), r[11].ok), ("2", Some(false)));
        assert_eq!(t.rows[1][2].text, "pinned");
        let md = markdown(&cells, &["lcr".into()], 2);
        assert!(
            md.contains("| t | lcr | 2/2 | 500 ms | 700 ms | 2.00 | 12.00 |"),
            "{md}"
        );
        assert!(md.contains("| lcr | 2/2 | 1/1 | 500 / 700 ms |"), "{md}");
        let opts = MatrixOptions {
            files: vec![],
            elections: vec!["lcr".into()],
            repeat: 2,
            out: PathBuf::from("/nonexistent"),
            run: RunOptions::new("img"),
        };
        let j: Value = serde_json::from_str(&json_doc(&cells, &opts.elections, &opts)).unwrap();
        assert_eq!(j["cells"][0]["figures"]["failover_ms"]["max"], 700.0);
        assert_eq!(j["cells"][0]["elections_per_fault"], 2.0);
        assert_eq!(j["cells"][0]["election_messages_per_fault"], 12.0);
        assert_eq!(j["cells"][1]["status"], "pinned");
        assert_eq!(j["per_election"]["lcr"]["runs"], 2);
    }

    #[test]
    fn a_pinned_scenario_is_skipped_under_another_algorithm_only() {
        let dir = std::env::temp_dir().join(format!("fl-matrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.yaml");
        std::fs::write(
            &f,
            "name: p\nabout: a story specific to one algorithm, pinned\n\
             cluster: {election: lcr, election_pinned: true}\nsteps:\n  - sleep: 1s\n",
        )
        .unwrap();
        let s = load_under(&f, Some("lcr")).unwrap().unwrap();
        assert!(s.cluster.election_pinned);
        assert_eq!(
            s.refuses_election("raft").as_deref(),
            Some("p pins election `lcr` (`election_pinned: true`); not run under `raft`")
        );
        std::fs::write(
            &f,
            "name: p\nabout: a pin without the algorithm it pins\n\
             cluster: {election_pinned: true}\nsteps:\n  - sleep: 1s\n",
        )
        .unwrap();
        let e = load_under(&f, None).unwrap_err().to_string();
        assert!(e.contains("needs the algorithm it pins"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
