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

/// `steps[2].await.leader` -> `step 3 (await.leader)`; `cluster` stays `cluster`.
fn describe_path(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("steps[") {
        if let Some((num, tail)) = rest.split_once(']') {
            if let Ok(i) = num.parse::<usize>() {
                let tail = tail.trim_start_matches('.');
                return if tail.is_empty() {
                    format!("step {}", i + 1)
                } else {
                    format!("step {} ({tail})", i + 1)
                };
            }
        }
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
