//! `report.html`: the run as a timeline a person can look at, in one self-contained file
//! (inline CSS and JS, no network, opens from `file://`). The page is a pure function of
//! `history.jsonl` and, when present, `summary.json`, so `harness report RUN_DIR`
//! regenerates it byte for byte from a copied run directory.

use super::junit::escape;
use super::timeline_data;
use serde_json::Value;
use std::path::{Path, PathBuf};

const CSS: &str = include_str!("assets/timeline.css");
const JS: &str = include_str!("assets/timeline.js");

/// The page for these history lines (one JSON record each) and summary.
pub fn render(lines: &[String], summary: Option<&Value>) -> String {
    let records = timeline_data::parse_lines(lines);
    let data = timeline_data::build(&records, summary);
    let mut payload =
        String::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 4096);
    payload.push_str("{\"data\":");
    payload.push_str(&serde_json::to_string(&data).unwrap_or_else(|_| "{}".into()));
    payload.push_str(",\"records\":[");
    for (i, (line, rec)) in lines.iter().zip(&records).enumerate() {
        if i > 0 {
            payload.push(',');
        }
        if rec.is_null() {
            // Not JSON: kept as text so hover still shows it.
            let v = serde_json::json!({"src": "unparsed", "text": line});
            payload.push_str(&v.to_string());
        } else {
            // The line itself, verbatim: what hover shows is what the file holds.
            payload.push_str(line.trim());
        }
    }
    payload.push_str("]}");
    // `<` only occurs inside JSON strings, where \u003c means the same: nothing in the
    // data can close the script element.
    let payload = payload.replace('<', "\\u003c");

    let m = &data.meta;
    let title = if m.name.is_empty() {
        "faultline run".to_string()
    } else {
        m.name.clone()
    };
    let (badge_class, badge) = match m.verdict.as_deref() {
        Some("pass") => ("pass", "PASS"),
        Some("fail") => ("fail", "FAIL"),
        Some("error") => ("error", "ERROR"),
        _ => ("none", "no verdict"),
    };
    let mut meta_line = vec![m.cluster.clone()];
    if let Some(r) = &m.run_id {
        meta_line.push(format!("run {r}"));
    }
    meta_line.push(format!(
        "{} records over {:.1} s",
        m.records,
        data.span as f64 / 1000.0
    ));
    meta_line.push(format!("from {}", m.source));
    format!(
        r#"<!DOCTYPE html>
<html lang="en" data-fl-ready="0" data-fl-errors="0">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title_e} · faultline</title>
<script>
window.onerror = function (msg, src, line, col) {{
  var root = document.documentElement;
  root.setAttribute("data-fl-errors", String(+(root.getAttribute("data-fl-errors") || 0) + 1));
  var el = document.getElementById("fl-errors");
  if (el) el.textContent += "script error: " + msg + " (line " + line + ":" + col + ")\n";
}};
</script>
<style>
{CSS}</style>
</head>
<body>
<header>
<h1>{title_e}</h1><span class="badge {badge_class}">{badge}</span>
<div class="about">{about_e}</div>
<div class="meta">{meta_e}</div>
<div id="fl-errors"></div>
</header>
<main>
<div id="toolbar"><span id="zooms"></span><span class="hint">wheel: zoom · drag: pan · double-click: whole run · click: pin a record</span><span id="view"></span></div>
<div id="chart-wrap"><canvas id="chart"></canvas><div id="tip"></div></div>
<div id="picked"></div>
<div id="legend">roles:<span class="sw" style="background:#b9cde3"></span>follower<span class="sw" style="background:#f2b134"></span>candidate<span class="sw" style="background:#1f9d55"></span>leader<span class="sw" style="background:#30343a"></span>down<span class="sw" style="background:#8e6cc9"></span>paused · marks: ✕ peer down, ? suspected, ↑ back (with the silence observed) · ★ elected, ● election started, ◆ ring maximum · arrows: purple vote, green leader announced · crossed arrows: one-way cut</div>
<h2>Election rounds</h2>
<div id="windows"></div>
<div id="tables"></div>
</main>
<script type="application/json" id="fl-data">{payload}</script>
<script>
{JS}</script>
</body>
</html>
"#,
        title_e = escape(&title),
        about_e = escape(&m.about),
        meta_e = escape(&meta_line.join(" · ")),
    )
}

/// Reads a history file's lines (blank ones skipped).
fn read_lines(path: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// Writes `report.html` into `out_dir` from the history file and the summary's JSON text.
pub fn write(out_dir: &Path, history: &Path, summary: Option<&str>) -> std::io::Result<PathBuf> {
    let lines = read_lines(history)?;
    let summary: Option<Value> = summary.and_then(|s| serde_json::from_str(s).ok());
    let path = out_dir.join("report.html");
    std::fs::write(&path, render(&lines, summary.as_ref()))?;
    Ok(path)
}

/// `harness report RUN_DIR`: rebuilds `report.html` from the directory's `history.jsonl`
/// (and `summary.json` when it is there).
pub fn regenerate(run_dir: &Path) -> Result<PathBuf, String> {
    let history = run_dir.join("history.jsonl");
    if !history.is_file() {
        return Err(format!(
            "{}: no history.jsonl here (pass a run directory, the --out of `harness run`)",
            run_dir.display()
        ));
    }
    let summary = std::fs::read_to_string(run_dir.join("summary.json")).ok();
    write(run_dir, &history, summary.as_deref())
        .map_err(|e| format!("{}: {e}", run_dir.join("report.html").display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_report_regenerates_the_same_page_from_a_copied_run_directory() {
        let base = std::env::temp_dir().join(format!("fl-html-{}", std::process::id()));
        let (a, b) = (base.join("run"), base.join("copy"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let history = "{\"src\":\"fault\",\"ts_ms\":5,\"action\":\"start\",\"nodes\":[1]}\n\
            {\"src\":\"node\",\"v\":1,\"ts_ms\":9,\"node\":1,\"epoch\":1,\"role\":\"leader\",\"event\":\"leader_elected\",\"leader\":1,\"votes\":1}\n\
            {\"src\":\"harness\",\"ts_ms\":10,\"msg\":\"</script><b>\"}\n";
        let summary =
            r#"{"scenario":{"name":"x","about":"a <b>"},"verdict":"pass","checks":[],"steps":[]}"#;
        std::fs::write(a.join("history.jsonl"), history).unwrap();
        std::fs::write(a.join("summary.json"), summary).unwrap();
        let first = write(&a, &a.join("history.jsonl"), Some(summary)).unwrap();
        for f in ["history.jsonl", "summary.json"] {
            std::fs::copy(a.join(f), b.join(f)).unwrap();
        }
        let again = regenerate(&b).unwrap();
        let (p1, p2) = (std::fs::read(first).unwrap(), std::fs::read(again).unwrap());
        assert_eq!(p1, p2);
        let page = String::from_utf8(p1).unwrap();
        // Nothing from the data closes the script element; text is escaped.
        assert_eq!(page.matches("</script>").count(), 3, "{page}");
        assert!(page.contains("a &lt;b&gt;"));
        // Without summary.json the page still builds, from the history alone.
        std::fs::remove_file(b.join("summary.json")).unwrap();
        let page = std::fs::read_to_string(regenerate(&b).unwrap()).unwrap();
        assert!(page.contains("no summary.json"));
        assert!(regenerate(&base).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
