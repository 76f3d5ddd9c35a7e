//! `junit.xml`: one testcase per step and per check, so CI systems show each with its
//! message. Text is escaped and characters XML 1.0 forbids are dropped.

use super::{RunOutcome, StepStatus};
use crate::scenario::Scenario;
use std::fmt::Write;

/// Escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

pub fn junit_xml(s: &Scenario, o: &RunOutcome) -> String {
    let mut cases = String::new();
    let (mut tests, mut failures, mut errors, mut skipped) = (0, 0, 0, 0);
    let suite = escape(&s.name);
    for st in &o.steps {
        tests += 1;
        let name = escape(&format!("step {:02} {}", st.index + 1, st.description));
        let _ = write!(
            cases,
            "    <testcase classname=\"faultline.{suite}.steps\" name=\"{name}\" time=\"{}\"",
            secs(st.elapsed_ms)
        );
        match st.status {
            StepStatus::Passed => cases.push_str("/>\n"),
            StepStatus::Skipped => {
                skipped += 1;
                cases.push_str(">\n      <skipped/>\n    </testcase>\n");
            }
            StepStatus::Failed => {
                failures += 1;
                let msg = st.message.clone().unwrap_or_else(|| "step failed".into());
                let figures = format!(
                    "figure: {}; deadline: {}",
                    st.figure_ms
                        .map(|v| format!("{v} ms"))
                        .unwrap_or("-".into()),
                    st.deadline_ms
                        .map(|v| format!("{v} ms"))
                        .unwrap_or("-".into())
                );
                let _ = write!(
                    cases,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(&msg),
                    escape(&format!("{msg}\n{figures}"))
                );
            }
        }
    }
    for c in &o.checks {
        tests += 1;
        let status = RunOutcome::check_status(s, c);
        let name = escape(&format!("check {}", c.name));
        let _ = write!(
            cases,
            "    <testcase classname=\"faultline.{suite}.checks\" name=\"{name}\" time=\"0\""
        );
        let body = format!(
            "figure: {}\ndeadline: {}\nheadroom: {}\n{}",
            c.figure,
            c.deadline.as_deref().unwrap_or("-"),
            c.headroom_ms
                .map(|h| format!("{h:+} ms"))
                .unwrap_or("-".into()),
            c.details.join("\n")
        );
        if status.ok() {
            let _ = write!(
                cases,
                ">\n      <system-out>{}{}</system-out>\n    </testcase>\n",
                if c.passed {
                    ""
                } else {
                    "expected failure caught\n"
                },
                escape(&body)
            );
        } else {
            failures += 1;
            let msg = format!(
                "{}: {}",
                status.label(),
                c.details
                    .first()
                    .cloned()
                    .unwrap_or_else(|| c.figure.clone())
            );
            let _ = write!(
                cases,
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                escape(&msg),
                escape(&body)
            );
        }
    }
    if !o.errors.is_empty() {
        tests += 1;
        errors += 1;
        let msg = o.errors.join("; ");
        let _ = write!(
            cases,
            "    <testcase classname=\"faultline.{suite}\" name=\"run\" time=\"{}\">\n      <error message=\"{}\">{}</error>\n    </testcase>\n",
            secs(o.wall_ms),
            escape(&msg),
            escape(&o.errors.join("\n"))
        );
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"faultline\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{t}\">\n  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{t}\">\n{cases}  </testsuite>\n</testsuites>\n",
        t = secs(o.wall_ms)
    )
}
