//! The command line: `harness run | matrix | chaos | shrink | bench | validate | list | report
//! | clean`.

use crate::bench::{self, BenchOptions};
use crate::chaos::{self, ChaosOptions, ChaosSpec, FaultKind};
use crate::docker;
use crate::matrix::{self, MatrixOptions};
use crate::repeat;
use crate::report::{self, Verdict};
use crate::runner::{self, RunOptions};
use crate::scenario::{self, Scenario};
use crate::shrink::{self, ShrinkOptions};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  harness run scenarios/leader-crash.yaml        run one scenario (needs `make image`)
  harness run scenarios/                         run every scenario in a directory, in order
  harness run --keep --out /tmp/r scenarios/leader-pause.yaml
                                                 keep the cluster up afterwards for inspection
  harness chaos --seed 7 --duration 30s          random faults from seed 7, then heal; the schedule
                                                 is written as a scenario `harness run` replays
  harness shrink runs/c7/chaos-7.yaml            the fewest, shortest steps that still fail the same check
  harness run --repeat 10 scenarios/leader-crash.yaml
                                                 10 runs: pass rate, p50/p95/max of every figure,
                                                 repeat.json beside run-1/ … run-10/
  harness run --election raft scenarios/         run under another algorithm (pinned files skipped)
  harness matrix scenarios/ --elections lcr,raft,bully --repeat 3 --out /tmp/m
                                                 every scenario under every algorithm: matrix.md,
                                                 matrix.json, index.html
  harness validate scenarios/*.yaml              check files without Docker
  harness report runs/suite/leader-crash         rebuild a run's report.html from its history.jsonl
  harness list                                   scenarios and what each one tells
  harness clean                                  remove every container and network the harness left
  harness bench --out /tmp/b                     5 nodes, 256 outstanding for 20 s: bench.json + a table
  harness bench --rate 1000 --out /tmp/b1k       open loop at 1,000 msg/s (latency from the scheduled time)

Exit codes: 0 pass, 1 a step or check failed, 2 the run could not be made.";

/// faultline's testbed: runs chat-node in Docker, injects faults from YAML scenarios, drives
/// chat users through them and checks election, failure detection and delivery against
/// deadlines.
#[derive(Debug, Parser)]
#[command(name = "harness", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios (files or directories of .yaml files) against a fresh cluster each.
    Run {
        /// Scenario files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Node image to run.
        #[arg(long, env = "FAULTLINE_IMAGE", default_value = docker::DEFAULT_IMAGE)]
        image: String,
        /// Output directory (history.jsonl, summary.json, junit.xml). With several scenarios
        /// each gets a subdirectory named after it. Default: runs/<timestamp>-<name>/.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Leave the cluster running afterwards and print how to remove it.
        #[arg(long)]
        keep: bool,
        /// Seed for the steps' random choices (`random_follower`); random by default. Each
        /// run prints its seed: pass it back to replay the same choices. With `--repeat`,
        /// run k uses seed + k - 1.
        #[arg(long)]
        seed: Option<u64>,
        /// Run each scenario this many times (fresh cluster each): prints the pass rate and
        /// p50/p95/max of every figure, and writes repeat.json beside run-1/ … run-N/.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::repeat::MAX_REPEAT)))]
        repeat: u32,
        /// Run under this election algorithm instead of the file's (only implemented ones;
        /// scenarios with `election_pinned: true` for another algorithm are skipped).
        #[arg(long, value_parser = parse_election)]
        election: Option<String>,
    },
    /// Every scenario under every election algorithm (optionally repeated): one comparison
    /// table, written as matrix.md, matrix.json and index.html in --out.
    Matrix {
        /// Scenario files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Algorithms to compare (comma-separated); each must be implemented by chat-node.
        /// Default: every implemented one.
        #[arg(long)]
        elections: Option<String>,
        /// Runs per (scenario, algorithm) cell.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::repeat::MAX_REPEAT)))]
        repeat: u32,
        /// Output directory: <election>/<scenario>/run-<k>/, matrix.md, matrix.json, index.html.
        #[arg(long)]
        out: PathBuf,
        /// Node image to run.
        #[arg(long, env = "FAULTLINE_IMAGE", default_value = docker::DEFAULT_IMAGE)]
        image: String,
        /// Seed for every run's random choices (run k of a cell uses seed + k - 1).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Random faults from a seed against a live cluster with chat running, then everything
    /// healed and liveness demanded; writes the schedule as a scenario that `run` replays.
    Chaos {
        /// The seed: the same seed gives the same schedule. Random (and printed) by default.
        #[arg(long)]
        seed: Option<u64>,
        /// Length of the safety phase (random faults), e.g. `30s`, `2m`; at most 1h.
        #[arg(long, default_value = "30s", value_parser = parse_chaos_duration)]
        duration: std::time::Duration,
        /// Faults to draw from (comma-separated): kill, stop, pause, restart (killed and
        /// stopped nodes come back during the safety phase), partition, cut, isolate, loss,
        /// delay; and, only when named, duplicate.
        #[arg(
            long,
            default_value = "kill,stop,pause,restart,partition,cut,isolate,loss,delay"
        )]
        faults: String,
        /// At most this many nodes faulty at once. Default: a minority ((nodes-1)/2), so a
        /// majority is always up and connected and liveness is demanded throughout; set it
        /// to the node count for a safety-only phase.
        #[arg(long)]
        max_faulty: Option<usize>,
        /// Number of nodes.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=32))]
        nodes: u64,
        /// Election algorithm: lcr, raft or bully.
        #[arg(long, default_value = "lcr", value_parser = parse_election)]
        election: String,
        /// `majority`, or `none` to reproduce split brain (a self-test: the run must fail).
        #[arg(long, default_value = "majority", value_parser = ["majority", "none"])]
        quorum: String,
        /// Node image to run.
        #[arg(long, env = "FAULTLINE_IMAGE", default_value = docker::DEFAULT_IMAGE)]
        image: String,
        /// Output directory: the schedule (<name>.yaml) and the run's report (run/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Leave the cluster running afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// Reduce a failing scenario to the fewest, shortest steps that still fail the same
    /// check (every candidate is a real run: slow); writes <file>-min.yaml.
    Shrink {
        /// The failing scenario (e.g. a `harness chaos` schedule).
        file: PathBuf,
        /// The check that must keep failing (election, detection, delivery, convergence, or
        /// `steps`); default: the first the original run fails.
        #[arg(long)]
        check: Option<String>,
        /// Where the minimal scenario goes (default: <file stem>-min.yaml beside it).
        #[arg(long)]
        out: Option<PathBuf>,
        /// At most this many candidate runs.
        #[arg(long, default_value_t = 40)]
        max_runs: usize,
        /// Seed for every run's random choices.
        #[arg(long)]
        seed: Option<u64>,
        /// Node image to run.
        #[arg(long, env = "FAULTLINE_IMAGE", default_value = docker::DEFAULT_IMAGE)]
        image: String,
    },
    /// Parse and validate scenario files (no Docker needed).
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List scenarios with their one-line story.
    List {
        /// Directory to list.
        #[arg(default_value = "scenarios")]
        dir: PathBuf,
    },
    /// Rebuild report.html from a run directory's history.jsonl (and summary.json if there);
    /// for a suite directory, every run's report.html and the suite's index.html.
    Report {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Judge a recorded run again: the scenario's checkers over DIR/history.jsonl, no Docker
    /// (after a checker changed, or to judge a history under another scenario's checks)
    Check {
        /// The scenario the run came from (a chaos run's schedule is beside it: chaos-S.yaml).
        scenario: PathBuf,
        /// The run directory (its history.jsonl).
        dir: PathBuf,
    },
    /// Remove every container and network labelled faultline.run (and nothing else).
    Clean,
    /// Benchmark a fresh cluster: acked msg/s, latency, bytes, fsyncs, events, CPU and memory
    /// per acknowledged message (DIR/bench.json and a table). Measures, asserts nothing.
    Bench {
        /// Node image to run.
        #[arg(long, env = "FAULTLINE_IMAGE", default_value = docker::DEFAULT_IMAGE)]
        image: String,
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// How long the load runs (the first fifth, at most 2 s, is warm-up, not measured).
        #[arg(long, default_value = "20s", value_parser = chat_node::duration::parse_duration)]
        duration: std::time::Duration,
        /// Requests in flight at once, over all connections (the closed loop's window, and
        /// the open loop's cap).
        #[arg(long, default_value_t = 256)]
        outstanding: usize,
        /// Open loop: this many msg/s in total, latency counted from each scheduled time.
        #[arg(long)]
        rate: Option<f64>,
        /// Users (one TCP connection each) the load is spread over.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Where the users log in: all on the leader, or round-robin over every server
        /// (followers forward writes to the leader).
        #[arg(long, value_enum, default_value_t = bench::Placement::Leader)]
        placement: bench::Placement,
        /// Bytes of text per message.
        #[arg(long, default_value_t = 64)]
        text_bytes: usize,
        #[arg(long, default_value = "100ms", value_parser = chat_node::duration::parse_duration)]
        heartbeat: std::time::Duration,
        #[arg(long, default_value = "500ms", value_parser = chat_node::duration::parse_duration)]
        failure_timeout: std::time::Duration,
        /// One more flag for every node's `chat-node serve`, as it would be typed there
        /// (repeatable), for A/B runs: `--node-arg=--snapshot-every=0`.
        #[arg(long = "node-arg", value_name = "FLAG", allow_hyphen_values = true)]
        node_args: Vec<String>,
        /// Where bench.json goes.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Parses the command line, runs it, and returns the process exit code.
pub async fn main() -> i32 {
    let cli = Cli::parse();
    let verdict = match cli.command {
        Command::Run {
            paths,
            image,
            out,
            keep,
            seed,
            repeat,
            election,
        } => {
            run(
                &paths,
                RunOptions {
                    image,
                    out,
                    keep,
                    seed,
                },
                repeat,
                election.as_deref(),
            )
            .await
        }
        Command::Matrix {
            paths,
            elections,
            repeat,
            out,
            image,
            seed,
        } => {
            let files = match expand(&paths) {
                Ok(f) => f,
                Err(e) => {
                    crate::say_err!("error: {e}");
                    return Verdict::Error.exit_code();
                }
            };
            let elections = match matrix::parse_elections(elections.as_deref()) {
                Ok(e) => e,
                Err(e) => {
                    crate::say_err!("error: {e}");
                    return Verdict::Error.exit_code();
                }
            };
            let mut opts = RunOptions::new(image);
            opts.seed = seed;
            matrix::run(&MatrixOptions {
                files,
                elections,
                repeat,
                out,
                run: opts,
            })
            .await
        }
        Command::Chaos {
            seed,
            duration,
            faults,
            max_faulty,
            nodes,
            election,
            quorum,
            image,
            out,
            keep,
        } => {
            let nodes = nodes as usize;
            let seed = seed.unwrap_or_else(rand::random);
            let faults = match FaultKind::parse_list(&faults) {
                Ok(f) => f,
                Err(e) => {
                    crate::say_err!("error: {e}");
                    return Verdict::Error.exit_code();
                }
            };
            let spec = ChaosSpec {
                seed,
                duration,
                faults,
                max_faulty: max_faulty.unwrap_or(ChaosSpec::minority(nodes)),
                nodes,
                election,
                quorum,
            };
            chaos::run(&ChaosOptions {
                spec,
                image,
                out,
                keep,
            })
            .await
        }
        Command::Shrink {
            file,
            check,
            out,
            max_runs,
            seed,
            image,
        } => {
            shrink::run(&ShrinkOptions {
                file,
                image,
                check,
                out,
                max_runs,
                seed,
            })
            .await
        }
        Command::Validate { files } => validate(&files),
        Command::List { dir } => list(&dir),
        Command::Report { dirs } => report_dirs(&dirs),
        Command::Check { scenario, dir } => check_again(&scenario, &dir),
        Command::Clean => clean().await,
        Command::Bench {
            image,
            nodes,
            duration,
            outstanding,
            rate,
            connections,
            placement,
            text_bytes,
            heartbeat,
            failure_timeout,
            node_args,
            out,
        } => {
            let opts = BenchOptions {
                image,
                nodes,
                warmup: (duration / 5).min(std::time::Duration::from_secs(2)),
                duration,
                outstanding,
                rate,
                connections,
                placement,
                text_bytes,
                heartbeat,
                failure_timeout,
                node_args,
                out,
            };
            bench::run(&opts).await
        }
    };
    verdict.exit_code()
}

/// `--duration`: a duration of at least 1 s and at most an hour.
/// `--election`: an algorithm the node implements, refused here rather than in the schedule.
fn parse_election(text: &str) -> Result<String, String> {
    chat_node::settings::ElectionKind::parse_implemented(text).map(|k| k.name().to_string())
}

fn parse_chaos_duration(text: &str) -> Result<std::time::Duration, String> {
    let d = chat_node::duration::parse_duration(text)?;
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(3600) {
        return Err(format!("`{text}`: the duration must be 1s to 1h"));
    }
    Ok(d)
}

/// Expands directories into their scenario files.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let found = scenario::files_in(p).map_err(|e| format!("{}: {e}", p.display()))?;
            if found.is_empty() {
                return Err(format!(
                    "{}: no .yaml scenarios in this directory",
                    p.display()
                ));
            }
            files.extend(found);
        } else if p.exists() {
            files.push(p.clone());
        } else {
            return Err(format!(
                "{}: no such file or directory (try `harness list`)",
                p.display()
            ));
        }
    }
    Ok(files)
}

/// Loads every file, under `election` when given ([`matrix::load_under`]); prints each
/// error and each skipped pinned scenario. None if any file was bad.
fn load_all(files: &[PathBuf], election: Option<&str>) -> Option<Vec<Scenario>> {
    let mut ok = Vec::new();
    let mut bad = false;
    for f in files {
        match matrix::load_under(f, election) {
            Ok(Ok(s)) => ok.push(s),
            Ok(Err(skip)) => crate::say!("skipped: {skip}"),
            Err(e) => {
                crate::say_err!("error: {e}");
                bad = true;
            }
        }
    }
    (!bad).then_some(ok)
}

async fn run(
    paths: &[PathBuf],
    options: RunOptions,
    repeat: u32,
    election: Option<&str>,
) -> Verdict {
    let files = match expand(paths) {
        Ok(f) => f,
        Err(e) => {
            crate::say_err!("error: {e}");
            return Verdict::Error;
        }
    };
    let Some(scenarios) = load_all(&files, election) else {
        crate::say_err!(
            "nothing was started: fix the scenario errors above (`harness validate` checks files)"
        );
        return Verdict::Error;
    };
    if scenarios.is_empty() {
        crate::say_err!(
            "nothing to run: every scenario pins another election algorithm than `{}`",
            election.unwrap_or("?")
        );
        return Verdict::Error;
    }
    if repeat > 1 {
        return run_repeated(&scenarios, &options, repeat).await;
    }
    let several = scenarios.len() > 1;
    let mut results = Vec::new();
    let started = std::time::Instant::now();
    for s in &scenarios {
        let mut opts = options.clone();
        if several {
            opts.out = options.out.as_ref().map(|o| o.join(&s.name));
        }
        let outcome = runner::run(s, &opts).await;
        let interrupted = outcome.interrupted;
        results.push((s.name.clone(), outcome));
        if interrupted {
            break;
        }
    }
    if several {
        crate::say!(
            "\nsuite: {} scenarios in {:.1} s",
            results.len(),
            started.elapsed().as_secs_f64()
        );
        for (name, r) in &results {
            crate::say!(
                "  {:<6} {name:<32} {:>6.1} s  {}",
                label(r.verdict),
                r.wall.as_secs_f64(),
                r.out_dir.display()
            );
        }
        // Why each red run is red, again, so a long log's tail says it.
        for (name, r) in results.iter().filter(|(_, r)| r.verdict != Verdict::Pass) {
            crate::say!("\n  {} {name}:", label(r.verdict));
            for line in &r.reasons {
                crate::say!("    {line}");
            }
        }
        if let Some(root) = &options.out {
            let dirs: Vec<PathBuf> = results.iter().map(|(_, r)| r.out_dir.clone()).collect();
            match report::index::write_suite_index(root, &dirs) {
                Ok(p) => crate::say!("  index: {}", p.display()),
                Err(e) => crate::say_err!(
                    "  could not write the suite index in {}: {e}",
                    root.display()
                ),
            }
        }
    }
    // The worst verdict decides the exit code: error over fail over pass.
    results
        .iter()
        .map(|(_, r)| r.verdict)
        .max_by_key(|v| v.exit_code())
        .unwrap_or(Verdict::Error)
}

/// `run --repeat N`: each scenario N times into `<out>[/<name>]/run-<k>/`, its summary
/// printed and written as `repeat.json` there; then one line per scenario.
async fn run_repeated(scenarios: &[Scenario], options: &RunOptions, repeat: u32) -> Verdict {
    let several = scenarios.len() > 1;
    let mut summaries = Vec::new();
    for s in scenarios {
        let dir = match &options.out {
            Some(o) if several => o.join(&s.name),
            Some(o) => o.clone(),
            None => repeat::default_dir(&s.name),
        };
        let sum = repeat::run(s, options, repeat, &dir).await;
        let interrupted = sum.runs < repeat as usize;
        summaries.push(sum);
        if interrupted {
            break;
        }
    }
    if several {
        crate::say!("\nsuite × {repeat}:");
        for s in &summaries {
            let f = |k: &str| {
                s.figures
                    .get(k)
                    .map(|st| format!("p50 {} max {}", repeat::num(st.p50), repeat::num(st.max)))
                    .unwrap_or_else(|| "-".into())
            };
            crate::say!(
                "  {:<32} {:>3}/{:<3} passed  failover {}  client_unavailability {}",
                s.scenario,
                s.passed,
                s.runs,
                f("failover_ms"),
                f("client_unavailability_ms")
            );
        }
    }
    summaries
        .iter()
        .map(|s| s.verdict())
        .max_by_key(|v| v.exit_code())
        .unwrap_or(Verdict::Error)
}

fn label(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERROR",
    }
}

/// `harness report DIR…`: a run directory gets its report.html rebuilt; a suite directory
/// (run directories inside) gets each rebuilt and its index.html written.
fn report_dirs(dirs: &[PathBuf]) -> Verdict {
    let mut verdict = Verdict::Pass;
    for dir in dirs {
        let runs = if dir.join("history.jsonl").is_file() {
            vec![dir.clone()]
        } else {
            report::index::run_dirs(dir)
        };
        if runs.is_empty() {
            crate::say_err!(
                "error: {}: neither a run directory (history.jsonl) nor a suite of them",
                dir.display()
            );
            verdict = Verdict::Error;
            continue;
        }
        for run in &runs {
            match report::html::regenerate(run) {
                Ok(p) => crate::say!("wrote {}", p.display()),
                Err(e) => {
                    crate::say_err!("error: {e}");
                    verdict = Verdict::Error;
                }
            }
        }
        if runs.first() != Some(dir) {
            match report::index::write_suite_index(dir, &runs) {
                Ok(p) => crate::say!("wrote {}", p.display()),
                Err(e) => {
                    crate::say_err!("error: {}: {e}", dir.display());
                    verdict = Verdict::Error;
                }
            }
        }
    }
    verdict
}

/// `harness check SCENARIO DIR`: the checkers over a recorded history; the verdict of the
/// checks alone (the steps' outcomes are in the run's own summary).
fn check_again(scenario: &Path, dir: &Path) -> Verdict {
    let s = match matrix::load_under(scenario, None) {
        Ok(Ok(s)) => s,
        Ok(Err(skip)) => {
            crate::say_err!("error: {skip}");
            return Verdict::Error;
        }
        Err(e) => {
            crate::say_err!("error: {e}");
            return Verdict::Error;
        }
    };
    let path = dir.join("history.jsonl");
    let history = match crate::history::History::load(&path) {
        Ok(h) => h,
        Err(e) => {
            crate::say_err!(
                "error: {}: {e} (pass a run directory, the --out of `harness run`)",
                path.display()
            );
            return Verdict::Error;
        }
    };
    let outcome = report::RunOutcome {
        checks: crate::checkers::run(&s, history.records()),
        ..report::RunOutcome::default()
    };
    report::print_table(&s, &outcome);
    for line in outcome.reasons(&s) {
        crate::say!("  {line}");
    }
    outcome.verdict(&s)
}

fn validate(files: &[PathBuf]) -> Verdict {
    let files = match expand(files) {
        Ok(f) => f,
        Err(e) => {
            crate::say_err!("error: {e}");
            return Verdict::Error;
        }
    };
    let mut verdict = Verdict::Pass;
    for f in &files {
        match scenario::load(f) {
            Ok(s) => crate::say!(
                "ok    {}  ({}: {} steps)",
                f.display(),
                s.name,
                s.steps.len()
            ),
            Err(e) => {
                crate::say!("error {e}");
                verdict = Verdict::Error;
            }
        }
    }
    verdict
}

fn list(dir: &Path) -> Verdict {
    let files = match scenario::files_in(dir) {
        Ok(f) => f,
        Err(e) => {
            crate::say_err!(
                "error: {}: {e} (pass the scenarios directory)",
                dir.display()
            );
            return Verdict::Error;
        }
    };
    let mut verdict = Verdict::Pass;
    for f in files {
        match scenario::load(&f) {
            Ok(s) => crate::say!("{:<28} {}", s.name, s.about),
            Err(e) => {
                crate::say!("{:<28} INVALID: {e}", f.display());
                verdict = Verdict::Error;
            }
        }
    }
    verdict
}

async fn clean() -> Verdict {
    let docker = match docker::connect().await {
        Ok(d) => d,
        Err(e) => {
            crate::say_err!("error: {e}");
            return Verdict::Error;
        }
    };
    match docker::clean_all(&docker).await {
        Ok(s) => {
            for c in &s.containers {
                crate::say!("removed container {c}");
            }
            for n in &s.networks {
                crate::say!("removed network {n}");
            }
            crate::say!(
                "{} containers, {} networks removed",
                s.containers.len(),
                s.networks.len()
            );
            Verdict::Pass
        }
        Err(e) => {
            crate::say_err!("error: {e}");
            Verdict::Error
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent_and_parses_examples() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["harness", "run", "--keep", "a.yaml", "dir/"]).unwrap();
        match cli.command {
            Command::Run { paths, keep, .. } => {
                assert!(keep);
                assert_eq!(paths.len(), 2);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(
            Cli::try_parse_from(["harness", "run"]).is_err(),
            "run needs a path"
        );
        assert!(Cli::try_parse_from(["harness", "validate"]).is_err());
    }

    #[test]
    fn missing_paths_are_reported_with_a_hint() {
        let err = expand(&[PathBuf::from("/no/such/scenario.yaml")]).unwrap_err();
        assert!(err.contains("harness list"), "{err}");
    }
}
