//! `harness chaos`: a seeded schedule of random faults ([`generate`]) written as a scenario
//! file, run against a live cluster with the chat workload throughout, and summarised in
//! one line (lost, duplicated, split brain, liveness after the heal) that `make chaos`
//! collects over many seeds. The file replays with `harness run` and shrinks with
//! `harness shrink`.

pub mod generate;

pub use generate::{generate, ChaosSpec, FaultKind, Schedule};

use crate::checkers::CheckResult;
use crate::docker::now_ms;
use crate::report::Verdict;
use crate::runner::{self, RunOptions, RunResult};
use crate::scenario;
use std::path::PathBuf;

/// `harness chaos` options.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    pub spec: ChaosSpec,
    pub image: String,
    /// Where the schedule and the run's report go (default `runs/<time>-chaos-<seed>/`).
    pub out: Option<PathBuf>,
    pub keep: bool,
}

/// Generates, writes and runs one schedule; prints its one-line summary.
pub async fn run(opts: &ChaosOptions) -> Verdict {
    let sched = generate(&opts.spec);
    let dir = opts.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("{}-{}", now_ms() / 1000, sched.name))
    });
    let file = dir.join(format!("{}.yaml", sched.name));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, &sched.yaml)) {
        crate::say_err!("error: cannot write the schedule {}: {e}", file.display());
        return Verdict::Error;
    }
    let s = match scenario::parse(&sched.yaml, &file.display().to_string()) {
        Ok(s) => s,
        Err(e) => {
            // A generator bug, not the user's: say so and keep the file for the report.
            crate::say_err!("error: the generated schedule does not validate (a harness bug): {e}");
            return Verdict::Error;
        }
    };
    crate::say!(
        "chaos seed {}: {} faults over {:.0} s on {} nodes (at most {} faulty at once); \
         schedule: {}  (replay: harness run {})",
        opts.spec.seed,
        sched.faults,
        opts.spec.duration.as_secs_f64(),
        opts.spec.nodes,
        sched.max_faulty_seen,
        file.display(),
        file.display()
    );
    let mut run_opts = RunOptions::new(opts.image.clone());
    run_opts.out = Some(dir.join("run"));
    run_opts.keep = opts.keep;
    run_opts.seed = Some(opts.spec.seed);
    let result = runner::run(&s, &run_opts).await;
    crate::say!("{}", summary_line(opts.spec.seed, &result));
    result.verdict
}

/// `chaos seed=7 verdict=PASS lost=0 duplicated=0 split_brain=no liveness=met failed=-`:
/// one line per seed, for `make chaos` to collect.
pub fn summary_line(seed: u64, r: &RunResult) -> String {
    let check = |name: &str| r.checks.iter().find(|c| c.name == name);
    let count = |c: Option<&CheckResult>, what: &str| {
        c.and_then(|c| figure_count(&c.figure, what))
            .map_or("?".to_string(), |n| n.to_string())
    };
    let delivery = check("delivery");
    let split = check("election").is_some_and(|c| {
        c.details
            .iter()
            .any(|d| d.contains("split brain") || d.contains(" leaders: "))
    });
    // Liveness after the heal: the closing `expect`s met, and convergence passed.
    let closing_met = r
        .steps
        .iter()
        .rev()
        .filter(|st| st.keyword == "expect")
        .take(2)
        .all(|st| st.status == crate::report::StepStatus::Passed);
    let converged = check("convergence").is_none_or(|c| c.passed);
    let failed: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    let failed_steps = r
        .steps
        .iter()
        .filter(|st| st.status == crate::report::StepStatus::Failed)
        .count();
    format!(
        "chaos seed={seed} verdict={} lost={} duplicated={} split_brain={} liveness={} \
         failed_checks={} failed_steps={failed_steps} wall={:.0}s out={}",
        match r.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
        },
        count(delivery, "lost"),
        count(delivery, "duplicated"),
        if split { "YES" } else { "no" },
        if closing_met && converged {
            "met"
        } else {
            "MISSED"
        },
        if failed.is_empty() {
            "-".to_string()
        } else {
            failed.join(",")
        },
        r.wall.as_secs_f64(),
        r.out_dir.display()
    )
}

/// `N` in `… what N, …` of a checker's figure.
fn figure_count(figure: &str, what: &str) -> Option<u64> {
    let rest = figure.split(&format!("{what} ")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_the_delivery_figure() {
        let f = "112 acked, 112 sent: lost 3, duplicated 0, reordered 0";
        assert_eq!(figure_count(f, "lost"), Some(3));
        assert_eq!(figure_count(f, "duplicated"), Some(0));
        assert_eq!(figure_count(f, "phantom"), None);
    }
}
