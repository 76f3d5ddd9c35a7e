//! Scenario errors that point at the file, line, column and key, like a compiler does.

use std::fmt;

/// A scenario that cannot be run, and where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    /// 1-based; 0 when the problem has no position (an unreadable file).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for ScenarioError {}

/// Rewrites a serde_yaml message (`steps[2].await: unknown field `x`, expected `a` or `b` at
/// line 7 column 5`) into our words (`unknown key `x` in step 3 (await); expected one of: a, b`).
pub fn rewrite_yaml_message(raw: &str) -> String {
    let without_pos = match raw.rfind(" at line ") {
        Some(i) => &raw[..i],
        None => raw,
    };
    let (path, msg) = match without_pos.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (Some(p), m),
        _ => (None, without_pos),
    };
    let place = path.map(describe_path);
    let msg = if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (key, expected) = match rest.split_once(", expected ") {
            Some((k, e)) => (k, Some(e)),
            None => (rest, None),
        };
        let mut out = format!("unknown key {key}");
        if let Some(p) = &place {
            out.push_str(&format!(" in {p}"));
        }
        if let Some(e) = expected {
            out.push_str(&format!("; expected one of: {}", list_expected(e)));
        }
        return out;
    } else {
        msg.to_string()
    };
    match place {
        Some(p) => format!("{p}: {msg}"),
        None => msg,
    }
}

/// `steps[2].await.leader` -> `step 3 (await.leader)`; inside a repeat,
/// `steps[2].repeat.steps[0].kill` -> `step 3.1 (kill)`; `cluster` stays `cluster`.
fn describe_path(path: &str) -> String {
    let mut label = String::new();
    let mut rest = path;
    while let Some(after) = rest.strip_prefix("steps[") {
        let Some((num, tail)) = after.split_once(']') else {
            break;
        };
        let Ok(i) = num.parse::<usize>() else {
            break;
        };
        if !label.is_empty() {
            label.push('.');
        }
        label.push_str(&(i + 1).to_string());
        rest = tail.trim_start_matches('.');
        match rest.strip_prefix("repeat.") {
            Some(inner) if inner.starts_with("steps[") => rest = inner,
            _ => break,
        }
    }
    if !label.is_empty() {
        return if rest.is_empty() {
            format!("step {label}")
        } else {
            format!("step {label} ({rest})")
        };
    }
    if path == "." {
        "the scenario".to_string()
    } else {
        format!("`{path}`")
    }
}

/// "`a`, `b` or `c`" / "one of `a`, `b`" -> "a, b, c".
fn list_expected(e: &str) -> String {
    e.trim_start_matches("one of ")
        .replace(" or ", ", ")
        .replace('`', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_unknown_field_in_a_step() {
        let m = rewrite_yaml_message(
            "steps[2].await: unknown field `whithin`, expected `leader` or `within` at line 7 column 5",
        );
        assert_eq!(
            m,
            "unknown key `whithin` in step 3 (await); expected one of: leader, within"
        );
    }

    #[test]
    fn names_a_step_inside_a_repeat_by_its_place() {
        let m = rewrite_yaml_message(
            "steps[3].repeat.steps[1].kill: unknown field `targt`, expected `target` or `as` at line 9 column 11",
        );
        assert_eq!(
            m,
            "unknown key `targt` in step 4.2 (kill); expected one of: target, as"
        );
        let m = rewrite_yaml_message("steps[3].repeat: missing field `times` at line 9 column 11");
        assert_eq!(m, "step 4 (repeat): missing field `times`");
    }

    #[test]
    fn keeps_other_messages() {
        let m = rewrite_yaml_message(
            "cluster.nodes: invalid type: string \"x\", expected i64 at line 3 column 10",
        );
        assert_eq!(
            m,
            "`cluster.nodes`: invalid type: string \"x\", expected i64"
        );
    }
}
