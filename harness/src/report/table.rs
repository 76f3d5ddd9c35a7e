//! The terminal report: plain aligned columns, colour only when stdout is a terminal.

use super::{RunOutcome, StepStatus, Verdict};
use crate::scenario::Scenario;
use std::io::IsTerminal;

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn ms(v: Option<u64>) -> String {
    v.map(|v| format!("{v} ms")).unwrap_or_default()
}

fn signed(v: Option<i64>) -> String {
    v.map(|v| format!("{v:+} ms")).unwrap_or_default()
}

/// Rows of cells laid out in aligned columns; `status_col` is coloured when asked.
fn layout(header: &[&str], rows: &[Vec<String>], status_col: usize, colour: bool) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>, paint: Option<&str>| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            let pad = width[i].saturating_sub(c.chars().count());
            let last = i + 1 == cells.len();
            match paint {
                Some(p) if i == status_col && colour => s.push_str(&format!("{p}{c}{RESET}")),
                _ => s.push_str(c),
            }
            if !last {
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect(), None);
    for r in rows {
        let status = r.get(status_col).map(String::as_str).unwrap_or("");
        let paint = if status.starts_with("PASS") || status == "ok" {
            GREEN
        } else if status.starts_with("FAIL") {
            RED
        } else {
            YELLOW
        };
        out.push_str(&line(r.clone(), Some(paint)));
    }
    out
}

/// The whole report as text.
pub fn render_table(s: &Scenario, o: &RunOutcome, colour: bool) -> String {
    let mut out = String::new();
    let b = |t: &str| {
        if colour {
            format!("{BOLD}{t}{RESET}")
        } else {
            t.to_string()
        }
    };
    out.push_str(&format!("{} — {}\n", b(&s.name), s.about));
    out.push_str(&format!(
        "run {}  ·  {} nodes, {}, heartbeat {} ms, failure timeout {} ms, quorum {}  ·  wall {:.1} s\n\n",
        o.run_id,
        s.cluster.nodes,
        s.cluster.election.name(),
        s.cluster.heartbeat.as_millis(),
        s.cluster.failure_timeout.as_millis(),
        s.cluster.quorum.as_flag(),
        o.wall_ms as f64 / 1000.0
    ));
    let step_rows: Vec<Vec<String>> = o
        .steps
        .iter()
        .map(|st| {
            vec![
                (st.index + 1).to_string(),
                st.description.clone(),
                match st.status {
                    StepStatus::Passed => "PASS".into(),
                    StepStatus::Failed => "FAIL".into(),
                    StepStatus::Skipped => "skipped".into(),
                },
                ms(st.figure_ms),
                ms(st.deadline_ms),
                signed(st.headroom_ms()),
            ]
        })
        .collect();
    if !step_rows.is_empty() {
        out.push_str(&layout(
            &["#", "step", "status", "figure", "deadline", "headroom"],
            &step_rows,
            2,
            colour,
        ));
        for st in &o.steps {
            if let Some(m) = &st.message {
                if st.status == StepStatus::Failed {
                    out.push_str(&format!("    step {}: {m}\n", st.index + 1));
                }
            }
        }
        out.push('\n');
    }
    let check_rows: Vec<Vec<String>> = o
        .checks
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                RunOutcome::check_status(s, c).label().to_string(),
                c.figure.clone(),
                c.deadline.clone().unwrap_or_default(),
                signed(c.headroom_ms),
            ]
        })
        .collect();
    if !check_rows.is_empty() {
        out.push_str(&layout(
            &["check", "status", "figure", "deadline", "headroom"],
            &check_rows,
            1,
            colour,
        ));
        for c in &o.checks {
            let status = RunOutcome::check_status(s, c);
            let shown = match status {
                super::CheckStatus::Passed => 0,
                super::CheckStatus::ExpectedFailureCaught => 2,
                _ => 6,
            };
            for d in c.details.iter().take(shown) {
                out.push_str(&format!("    {}: {d}\n", c.name));
            }
        }
        out.push('\n');
    }
    for e in &o.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    let verdict = o.verdict(s);
    let word = match verdict {
        Verdict::Pass => {
            if s.expect_failures.is_empty() {
                "PASS".to_string()
            } else {
                "PASS (expected failure caught)".to_string()
            }
        }
        Verdict::Fail => "FAIL".to_string(),
        Verdict::Error => "ERROR (the run could not be made)".to_string(),
    };
    let painted = if colour {
        let p = match verdict {
            Verdict::Pass => GREEN,
            _ => RED,
        };
        format!("{BOLD}{p}{word}{RESET}")
    } else {
        word
    };
    out.push_str(&format!(
        "verdict: {painted}  (exit {})\n",
        verdict.exit_code()
    ));
    out
}

/// Prints the report to stdout, in colour when stdout is a terminal.
pub fn print_table(s: &Scenario, o: &RunOutcome) {
    crate::say_inline!("{}", render_table(s, o, std::io::stdout().is_terminal()));
}
