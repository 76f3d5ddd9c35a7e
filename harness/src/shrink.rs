//! `harness shrink FILE`: a failing scenario reduced to the fewest, shortest steps that still
//! fail the same check ([`reduce`]: merge sleeps, drop chunks, halve sleeps), each candidate
//! a real run on a fresh cluster. Slow by nature: a candidate costs a whole run (cluster
//! start, the steps, the drain, teardown), so the budget (`--max-runs`) bounds it, and the
//! report says how many runs and how long it took.

pub mod reduce;

use crate::report::{StepStatus, Verdict};
use crate::runner::{self, RunOptions, RunResult};
use crate::scenario;
use serde_yaml::Value;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

/// `harness shrink` options.
#[derive(Clone, Debug)]
pub struct ShrinkOptions {
    pub file: PathBuf,
    pub image: String,
    /// The check that must keep failing; default: the first one the original run fails
    /// (`steps` when only steps failed).
    pub check: Option<String>,
    /// Where the minimal scenario goes; default `<file stem>-min.yaml` beside the file.
    pub out: Option<PathBuf>,
    pub max_runs: usize,
    /// Seeds every run's random choices.
    pub seed: Option<u64>,
}

/// Whether the run fails `target` (a check name, or `steps` for a failed step).
fn fails(r: &RunResult, target: &str) -> bool {
    if target == "steps" {
        r.steps.iter().any(|s| s.status == StepStatus::Failed)
    } else {
        r.checks.iter().any(|c| c.name == target && !c.passed)
    }
}

fn failures(r: &RunResult) -> Vec<String> {
    let mut out: Vec<String> = r
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.clone())
        .collect();
    if fails(r, "steps") {
        out.push("steps".into());
    }
    out
}

/// The scenario text with `steps` replaced and `name` set.
fn with_steps(doc: &Value, name: &str, steps: &[Value]) -> String {
    let mut d = doc.clone();
    if let Some(m) = d.as_mapping_mut() {
        m.insert("name".into(), Value::String(name.to_string()));
        m.insert("steps".into(), Value::Sequence(steps.to_vec()));
    }
    serde_yaml::to_string(&d).unwrap_or_default()
}

fn default_out(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".into());
    file.with_file_name(format!("{stem}-min.yaml"))
}

/// Shrinks `opts.file`; exit verdict: Fail when a minimal failing scenario was written
/// (the scenario still fails), Pass when the original passes, Error when it cannot run.
pub async fn run(opts: &ShrinkOptions) -> Verdict {
    let started = Instant::now();
    let original = match scenario::load(&opts.file) {
        Ok(s) => s,
        Err(e) => {
            crate::say_err!("error: {e}");
            return Verdict::Error;
        }
    };
    let doc: Value = match std::fs::read_to_string(&opts.file)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_yaml::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(d) => d,
        Err(e) => {
            crate::say_err!("error: {}: {e}", opts.file.display());
            return Verdict::Error;
        }
    };
    let steps: Vec<Value> = doc
        .get("steps")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    let out = opts.out.clone().unwrap_or_else(|| default_out(&opts.file));
    let name = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{}-min", original.name));
    let runs_dir = PathBuf::from("runs").join(format!("shrink-{name}"));
    let image = opts.image.clone();
    let seed = opts.seed;
    let run_opts = move |k: usize| {
        let mut o = RunOptions::new(image.clone());
        o.out = Some(runs_dir.join(format!("run-{k}")));
        o.seed = seed;
        o
    };

    crate::say!(
        "==> shrink {}: the original run ({} steps)",
        opts.file.display(),
        steps.len()
    );
    let first = runner::run(&original, &run_opts(1)).await;
    if first.verdict == Verdict::Error {
        crate::say_err!("error: the original run could not be made; nothing to shrink");
        return Verdict::Error;
    }
    let failed = failures(&first);
    if failed.is_empty() {
        crate::say!(
            "==> shrink: {} passes: nothing to shrink",
            opts.file.display()
        );
        return Verdict::Pass;
    }
    let target = match &opts.check {
        Some(c) if failed.contains(c) => c.clone(),
        Some(c) => {
            crate::say_err!(
                "error: the original run did not fail `{c}` (it failed: {}); pass one of those \
                 to --check",
                failed.join(", ")
            );
            return Verdict::Error;
        }
        None => failed[0].clone(),
    };
    crate::say!(
        "==> shrink: the original fails {} (run 1 took {:.1} s); keeping candidates that fail \
         `{target}`",
        failed.join(", "),
        first.wall.as_secs_f64()
    );

    let counter = Rc::new(Cell::new(1usize));
    let valid = {
        let doc = doc.clone();
        let name = name.clone();
        move |cand: &[Value]| scenario::parse(&with_steps(&doc, &name, cand), "candidate").is_ok()
    };
    let mut still_fails = |cand: Vec<Value>| {
        let text = with_steps(&doc, &name, &cand);
        let k = counter.get() + 1;
        counter.set(k);
        let o = run_opts(k);
        let target = target.clone();
        Box::pin(async move {
            let Ok(s) = scenario::parse(&text, "candidate") else {
                return false;
            };
            let r = runner::run(&s, &o).await;
            let kept = r.verdict != Verdict::Error && fails(&r, &target);
            crate::say!(
                "==> shrink: run {k}: {} steps -> {} ({:.1} s)",
                cand.len(),
                if kept {
                    "still fails: kept"
                } else {
                    "passes: discarded"
                },
                r.wall.as_secs_f64()
            );
            kept
        }) as futures_util::future::LocalBoxFuture<'static, bool>
    };
    let r = reduce::reduce(steps.clone(), &valid, &mut still_fails, opts.max_runs).await;
    let text = with_steps(&doc, &name, &r.steps);
    if let Err(e) = std::fs::write(&out, &text) {
        crate::say_err!("error: cannot write {}: {e}", out.display());
        return Verdict::Error;
    }
    let runs = r.runs + 1;
    let wall = started.elapsed().as_secs_f64();
    crate::say!(
        "==> shrink: {} steps -> {} in {runs} runs, {wall:.0} s ({:.1} s a run){}; still fails \
         `{target}`: {}",
        steps.len(),
        r.steps.len(),
        wall / runs as f64,
        if r.exhausted {
            " (the --max-runs budget ran out: shrink the result again to go on)"
        } else {
            ""
        },
        out.display()
    );
    Verdict::Fail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_keep_everything_but_the_steps_and_take_the_new_name() {
        let doc: Value = serde_yaml::from_str(
            "name: chaos-7\nabout: x\ncluster: {nodes: 3, quorum: none}\nsteps: [{heal: {}}]\n",
        )
        .unwrap();
        let steps: Vec<Value> = serde_yaml::from_str("[{sleep: 1s}]").unwrap();
        let text = with_steps(&doc, "chaos-7-min", &steps);
        let s = scenario::parse(&text, "chaos-7-min.yaml").unwrap();
        assert_eq!(s.name, "chaos-7-min");
        assert_eq!(s.steps.len(), 1);
        assert_eq!(s.cluster.quorum.as_flag(), "none");
        assert_eq!(
            default_out(Path::new("runs/c/chaos-7.yaml")),
            PathBuf::from("runs/c/chaos-7-min.yaml")
        );
    }
}
