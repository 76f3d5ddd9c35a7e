//! Delta debugging of a scenario's steps (Zeller's ddmin, plus two scenario-specific moves):
//! the steps are YAML values; a candidate is kept when the `fails` predicate (a real run,
//! in `harness shrink`) says it still fails the same way.
//!
//! 1. **merge**: adjacent `sleep`s become one (the same wait in fewer steps; no run needed);
//! 2. **drop**: ddmin over the list — remove one of n chunks, n = 2, 4, 8 … up to single
//!    steps, keeping any removal that still fails;
//! 3. **shorten**: halve each `sleep` while the candidate still fails (down to 100 ms).
//!
//! Candidates the `valid` check refuses (an alias used after its `as:` was dropped, an
//! empty list) are skipped without running.

use futures_util::future::LocalBoxFuture;
use serde_yaml::Value;
use std::time::Duration;

/// The shortest sleep shortening goes down to.
const MIN_SLEEP_MS: u64 = 100;

/// What a reduction did.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduction {
    pub steps: Vec<Value>,
    /// Candidates run (the predicate called).
    pub runs: usize,
    /// The budget of runs was used up before the end.
    pub exhausted: bool,
}

/// The millisecond value of a `sleep: <duration>` step.
pub fn sleep_ms(step: &Value) -> Option<u64> {
    let text = step.as_mapping()?.get("sleep")?.as_str()?;
    chat_node::duration::parse_duration(text)
        .ok()
        .map(|d: Duration| d.as_millis() as u64)
}

fn sleep_step(ms: u64) -> Value {
    let mut m = serde_yaml::Mapping::new();
    m.insert(
        Value::String("sleep".into()),
        Value::String(format!("{ms}ms")),
    );
    Value::Mapping(m)
}

/// Adjacent sleeps merged into one.
pub fn merge_sleeps(steps: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for s in steps {
        match (sleep_ms(s), out.last().and_then(sleep_ms)) {
            (Some(a), Some(b)) => {
                out.pop();
                out.push(sleep_step(a + b));
            }
            _ => out.push(s.clone()),
        }
    }
    out
}

/// Reduces `steps` while `fails` holds, with at most `max_runs` calls to it.
pub async fn reduce<'a>(
    steps: Vec<Value>,
    valid: &(dyn Fn(&[Value]) -> bool + Sync),
    fails: &mut dyn FnMut(Vec<Value>) -> LocalBoxFuture<'a, bool>,
    max_runs: usize,
) -> Reduction {
    let mut runs = 0usize;
    let mut exhausted = false;
    let mut current = steps;
    // 1. merge: free, but only if the merged list still validates (it always should).
    let merged = merge_sleeps(&current);
    if merged.len() < current.len() && valid(&merged) {
        current = merged;
    }
    // One trial: false without running when invalid or out of budget.
    macro_rules! trial {
        ($cand:expr) => {{
            let cand: Vec<Value> = $cand;
            if cand.is_empty() || !valid(&cand) {
                false
            } else if runs >= max_runs {
                exhausted = true;
                false
            } else {
                runs += 1;
                fails(cand).await
            }
        }};
    }
    // 2. drop: ddmin over chunks.
    let mut n = 2usize;
    while current.len() >= 2 && !exhausted {
        let len = current.len();
        let chunk = len.div_ceil(n);
        let mut removed = false;
        let mut start = 0;
        while start < len {
            let end = (start + chunk).min(len);
            let cand: Vec<Value> = current[..start]
                .iter()
                .chain(&current[end..])
                .cloned()
                .collect();
            if trial!(merge_sleeps(&cand)) {
                current = merge_sleeps(&cand);
                removed = true;
                break;
            }
            if exhausted {
                break;
            }
            start = end;
        }
        if removed {
            n = (n - 1).max(2);
        } else if chunk == 1 {
            break;
        } else {
            n = (n * 2).min(current.len());
        }
    }
    // 3. shorten: halve each sleep while it still fails.
    let mut i = 0;
    while i < current.len() && !exhausted {
        if let Some(ms) = sleep_ms(&current[i]) {
            if ms / 2 >= MIN_SLEEP_MS {
                let mut cand = current.clone();
                cand[i] = sleep_step(ms / 2);
                if trial!(cand.clone()) {
                    current = cand;
                    continue; // try halving the same sleep again
                }
            }
        }
        i += 1;
    }
    Reduction {
        steps: current,
        runs,
        exhausted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(text: &str) -> Vec<Value> {
        serde_yaml::from_str(text).unwrap()
    }

    fn keys(steps: &[Value]) -> Vec<String> {
        steps
            .iter()
            .map(|s| serde_yaml::to_string(s).unwrap().trim().to_string())
            .collect()
    }

    #[test]
    fn adjacent_sleeps_merge() {
        let s = steps("[{sleep: 1s}, {sleep: 500ms}, {heal: {}}, {sleep: 2s}]");
        assert_eq!(
            keys(&merge_sleeps(&s)),
            vec!["sleep: 1500ms", "heal: {}", "sleep: 2s"]
        );
    }

    #[tokio::test]
    async fn finds_the_two_steps_that_matter_and_shortens_the_sleep_between_them() {
        // "Fails" when a kill of node 3 is followed, at least 400 ms later, by a partition.
        let original = steps(
            "[{await: {leader: any}}, {sleep: 1s}, {pause: {target: {node: 1}}}, \
              {kill: {target: {node: 3}}}, {sleep: 800ms}, {resume: {target: {node: 1}}}, \
              {sleep: 2s}, {partition: {groups: [[{node: 2}], rest]}}, {sleep: 1s}, {heal: {}}]",
        );
        let fails = |cand: Vec<Value>| -> LocalBoxFuture<'static, bool> {
            let k = keys(&cand);
            let kill = k.iter().position(|s| s.starts_with("kill"));
            let part = k.iter().position(|s| s.starts_with("partition"));
            let ok = match (kill, part) {
                (Some(a), Some(b)) if a < b => {
                    let waited: u64 = cand[a..b].iter().filter_map(sleep_ms).sum();
                    waited >= 400
                }
                _ => false,
            };
            Box::pin(async move { ok })
        };
        let mut fails = fails;
        let r = reduce(original, &|s: &[Value]| !s.is_empty(), &mut fails, 200).await;
        assert!(!r.exhausted);
        let k = keys(&r.steps);
        assert_eq!(k.len(), 3, "{k:?}");
        assert!(
            k[0].starts_with("kill") && k[2].starts_with("partition"),
            "{k:?}"
        );
        let slept = sleep_ms(&r.steps[1]).unwrap();
        assert!((400..800).contains(&slept), "shortened to {slept} ms");
    }

    #[tokio::test]
    async fn invalid_candidates_are_not_run_and_the_budget_is_kept() {
        let original = steps("[{sleep: 1s}, {heal: {}}, {sleep: 1s}, {heal: {}}]");
        let mut calls = 0usize;
        let mut fails = |_c: Vec<Value>| -> LocalBoxFuture<'static, bool> {
            calls += 1;
            Box::pin(async { true })
        };
        // Only candidates that keep a heal are valid.
        let valid = |s: &[Value]| keys(s).iter().any(|k| k.starts_with("heal"));
        let r = reduce(original.clone(), &valid, &mut fails, 1).await;
        assert_eq!(r.runs, 1);
        assert!(r.exhausted, "a second candidate was due");
        assert!(keys(&r.steps).iter().any(|k| k.starts_with("heal")));
        // With room to go on, it ends on the one step that every valid candidate needs.
        let r = reduce(original, &valid, &mut fails, 50).await;
        assert!(!r.exhausted);
        assert_eq!(keys(&r.steps), vec!["heal: {}"]);
        assert_eq!(calls, 1 + r.runs);
    }
}
