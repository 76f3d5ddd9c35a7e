//! `harness run --repeat N`: one scenario run N times, each on a fresh cluster, and the
//! statistics a single run cannot give — the pass rate, and p50 / p95 / max of every figure
//! the checkers measured (their `samples`, pooled over the runs: 30 runs of one leader kill
//! give 30 failovers) and of each run's wall time. Timing figures on a shared machine
//! scatter; a distribution, not one number, says whether a deadline holds.
//!
//! The summary is printed as a table and written as `repeat.json` in the directory that
//! holds the runs (`run-1/`, `run-2/` …). `harness matrix` builds on the same summaries.

use crate::report::Verdict;
use crate::runner::{self, RunOptions, RunResult};
use crate::scenario::Scenario;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The most runs one `--repeat` may ask for.
pub const MAX_REPEAT: u32 = 1000;

/// A figure's distribution over all its samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
    pub mean: f64,
}

impl Stats {
    /// Nearest-rank percentiles (p50 of 1, 2, 3, 4 is 2); `None` without samples.
    pub fn of(values: &[f64]) -> Option<Stats> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let k = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[k.clamp(1, v.len()) - 1]
        };
        Some(Stats {
            count: v.len(),
            min: v[0],
            p50: rank(50.0),
            p95: rank(95.0),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

/// One run of the repetition, as the summary lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunLine {
    pub dir: String,
    pub verdict: Verdict,
    pub seed: u64,
    pub wall_ms: u64,
    /// Checks that were not as expected (`expect_failures` taken into account).
    pub failed_checks: Vec<String>,
    pub failed_steps: usize,
}

/// Everything `repeat.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RepeatSummary {
    pub scenario: String,
    pub file: String,
    pub election: String,
    pub runs: usize,
    pub passed: usize,
    pub pass_rate: f64,
    /// Every figure's distribution, by name (`failover_ms`, `wall_ms` …).
    pub figures: BTreeMap<String, Stats>,
    /// Per figure, the pooled samples (for the matrix's own ratios).
    #[serde(skip)]
    pub samples: BTreeMap<String, Vec<f64>>,
    /// How often each check was not as expected.
    pub failed_checks: BTreeMap<String, usize>,
    pub run_list: Vec<RunLine>,
}

impl RepeatSummary {
    /// Pools the runs of one scenario.
    pub fn from_runs(s: &Scenario, runs: &[RunResult]) -> RepeatSummary {
        let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut failed_checks: BTreeMap<String, usize> = BTreeMap::new();
        let mut lines = Vec::new();
        for r in runs {
            samples
                .entry("wall_ms".into())
                .or_default()
                .push(r.wall.as_millis() as f64);
            let mut failed = Vec::new();
            for c in &r.checks {
                for (k, v) in &c.samples {
                    samples.entry(k.clone()).or_default().extend(v);
                }
                let expected_fail = s.expect_failures.iter().any(|n| n.as_str() == c.name);
                if c.passed == expected_fail {
                    failed.push(c.name.clone());
                    *failed_checks.entry(c.name.clone()).or_default() += 1;
                }
            }
            lines.push(RunLine {
                dir: r.out_dir.display().to_string(),
                verdict: r.verdict,
                seed: r.seed,
                wall_ms: r.wall.as_millis() as u64,
                failed_checks: failed,
                failed_steps: r
                    .steps
                    .iter()
                    .filter(|st| st.status == crate::report::StepStatus::Failed)
                    .count(),
            });
        }
        let passed = runs.iter().filter(|r| r.verdict == Verdict::Pass).count();
        RepeatSummary {
            scenario: s.name.clone(),
            file: s.file.clone(),
            election: s.cluster.election.name().to_string(),
            runs: runs.len(),
            passed,
            pass_rate: if runs.is_empty() {
                0.0
            } else {
                passed as f64 / runs.len() as f64
            },
            figures: samples
                .iter()
                .filter_map(|(k, v)| Stats::of(v).map(|st| (k.clone(), st)))
                .collect(),
            samples,
            failed_checks,
            run_list: lines,
        }
    }

    /// The worst verdict of the runs (error over fail over pass).
    pub fn verdict(&self) -> Verdict {
        self.run_list
            .iter()
            .map(|r| r.verdict)
            .max_by_key(|v| v.exit_code())
            .unwrap_or(Verdict::Error)
    }

    /// The summary as a table for people.
    pub fn render(&self) -> String {
        let mut out = format!(
            "repeat: {} × {} ({}): {}/{} passed ({:.0} %)\n",
            self.scenario,
            self.runs,
            self.election,
            self.passed,
            self.runs,
            self.pass_rate * 100.0
        );
        if !self.failed_checks.is_empty() {
            let f: Vec<String> = self
                .failed_checks
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect();
            out.push_str(&format!("  failed checks: {}\n", f.join(", ")));
        }
        let rows: Vec<[String; 5]> = self
            .figures
            .iter()
            .map(|(k, st)| {
                [
                    k.clone(),
                    st.count.to_string(),
                    num(st.p50),
                    num(st.p95),
                    num(st.max),
                ]
            })
            .collect();
        let header = ["figure", "samples", "p50", "p95", "max"];
        let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.len());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from("  ");
            for (i, c) in cells.iter().enumerate() {
                if i == 0 {
                    s.push_str(&format!("{c:<width$}  ", width = w[i]));
                } else {
                    s.push_str(&format!("{c:>width$}  ", width = w[i]));
                }
            }
            s.trim_end().to_string() + "\n"
        };
        out.push_str(&line(&header.map(String::from)));
        for r in &rows {
            out.push_str(&line(r));
        }
        out
    }

    /// `repeat.json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into()) + "\n"
    }
}

/// A figure for a table: whole numbers without decimals.
pub fn num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}")
    }
}

/// Runs `s` `times` times into `dir/run-<k>/` (each with its own seed: `--seed S` gives run
/// k the seed S + k − 1), writes `dir/repeat.json` and prints the summary. Stops early on
/// Ctrl-C (the summary then covers the runs made).
pub async fn run(s: &Scenario, opts: &RunOptions, times: u32, dir: &Path) -> RepeatSummary {
    let mut results: Vec<RunResult> = Vec::new();
    for k in 1..=times {
        let mut o = opts.clone();
        o.out = Some(dir.join(format!("run-{k}")));
        o.seed = opts.seed.map(|seed| seed.wrapping_add(u64::from(k) - 1));
        crate::say!("\n── {} run {k} of {times}", s.name);
        let r = runner::run(s, &o).await;
        let stop = r.interrupted;
        results.push(r);
        if stop {
            break;
        }
    }
    let summary = RepeatSummary::from_runs(s, &results);
    crate::say!("\n{}", summary.render());
    let path = dir.join("repeat.json");
    match std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, summary.to_json())) {
        Ok(()) => crate::say!("  repeat summary: {}", path.display()),
        Err(e) => crate::say_err!("  could not write {}: {e}", path.display()),
    }
    summary
}

/// Where a repetition's runs go without `--out`.
pub fn default_dir(name: &str) -> PathBuf {
    PathBuf::from("runs").join(format!("{}-{name}-repeat", crate::docker::now_ms() / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::CheckResult;
    use std::time::Duration;

    #[test]
    fn nearest_rank_percentiles() {
        let st = Stats::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((st.min, st.p50, st.p95, st.max), (1.0, 2.0, 4.0, 4.0));
        assert_eq!(st.mean, 2.5);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let st = Stats::of(&v).unwrap();
        assert_eq!((st.p50, st.p95), (50.0, 95.0));
        assert!(Stats::of(&[]).is_none());
    }

    fn result(verdict: Verdict, failover: &[f64], passed: bool) -> RunResult {
        let mut c = CheckResult::new("election", passed, "f".into());
        c.sample("failover_ms", failover.iter().copied());
        RunResult {
            verdict,
            wall: Duration::from_millis(1000),
            out_dir: PathBuf::from("x"),
            interrupted: false,
            run_id: "r".into(),
            seed: 1,
            checks: vec![c],
            steps: vec![],
            reasons: vec![],
        }
    }

    #[test]
    fn runs_pool_their_samples_and_count_failures() {
        let s = crate::checkers::testkit::scenario("election");
        let runs = [
            result(Verdict::Pass, &[400.0], true),
            result(Verdict::Pass, &[500.0, 700.0], true),
            result(Verdict::Fail, &[1500.0], false),
        ];
        let sum = RepeatSummary::from_runs(&s, &runs);
        assert_eq!((sum.runs, sum.passed), (3, 2));
        assert_eq!(sum.figures["failover_ms"].count, 4);
        assert_eq!(sum.figures["failover_ms"].p50, 500.0);
        assert_eq!(sum.figures["failover_ms"].max, 1500.0);
        assert_eq!(sum.figures["wall_ms"].count, 3);
        assert_eq!(sum.failed_checks["election"], 1);
        assert_eq!(sum.verdict(), Verdict::Fail);
        let text = sum.render();
        assert!(text.contains("2/3 passed (67 %)"), "{text}");
        assert!(text.contains("failed checks: election ×1"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&sum.to_json()).unwrap();
        assert_eq!(json["figures"]["failover_ms"]["p95"], 1500.0);
    }
}
