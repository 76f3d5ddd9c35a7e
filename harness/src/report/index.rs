//! `index.html` at a suite's output root: one row per scenario with its verdict and key
//! figures, linking to each run's `report.html`. The table renderer is reusable: any
//! comparison (the election matrix) can be written as a self-contained HTML page with it.

use super::junit::escape;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One table cell: text, an optional link, and whether it is good (green) or bad (red).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub href: Option<String>,
    /// `Some(true)` green, `Some(false)` red, `None` plain.
    pub ok: Option<bool>,
    /// A longer explanation shown on hover.
    pub title: Option<String>,
}

impl Cell {
    pub fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            ..Cell::default()
        }
    }
}

/// A comparison table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// The table as an HTML `<table>` element (escaped; links relative as given).
pub fn html_table(t: &Table) -> String {
    let mut out = String::from("<table>\n<tr>");
    for h in &t.headers {
        out.push_str(&format!("<th>{}</th>", escape(h)));
    }
    out.push_str("</tr>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for c in row {
            let class = match c.ok {
                Some(true) => " class=\"ok\"",
                Some(false) => " class=\"bad\"",
                None => "",
            };
            let title = c
                .title
                .as_ref()
                .map(|t| format!(" title=\"{}\"", escape(t)))
                .unwrap_or_default();
            let body = match &c.href {
                Some(h) => format!("<a href=\"{}\">{}</a>", escape(h), escape(&c.text)),
                None => escape(&c.text),
            };
            out.push_str(&format!("<td{class}{title}>{body}</td>"));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// A self-contained page around some HTML body.
pub fn html_page(title: &str, intro: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t} · faultline</title>\n<style>\n\
body {{ font: 13px/1.45 system-ui, sans-serif; color: #1d232b; margin: 16px 20px; }}\n\
h1 {{ font-size: 18px; margin: 0 0 4px; }} p {{ color: #5d6875; margin: 0 0 10px; }}\n\
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: 4px 14px 4px 0; border-bottom: 1px solid #e3e7eb; vertical-align: top; }}\n\
th {{ color: #5d6875; font-size: 12px; }} .ok {{ color: #1f8a4c; }} .bad {{ color: #c62828; font-weight: 600; }} a {{ color: #1565c0; }}\n\
</style>\n</head>\n<body>\n<h1>{t}</h1>\n<p>{i}</p>\n{body}</body>\n</html>\n",
        t = escape(title),
        i = escape(intro),
    )
}

fn rel_link(root: &Path, run: &Path) -> String {
    let rel = run.strip_prefix(root).unwrap_or(run);
    let mut s = rel.to_string_lossy().replace('\\', "/");
    if !s.is_empty() && !s.ends_with('/') {
        s.push('/');
    }
    s + "report.html"
}

/// The suite table: one row per run directory (its summary.json).
pub fn suite_table(root: &Path, runs: &[PathBuf]) -> Table {
    let summaries: Vec<(PathBuf, Option<Value>)> = runs
        .iter()
        .map(|d| {
            let v = std::fs::read_to_string(d.join("summary.json"))
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok());
            (d.clone(), v)
        })
        .collect();
    // Columns: every check any run had, in first-seen order.
    let mut check_names: Vec<String> = Vec::new();
    for (_, s) in &summaries {
        for c in s
            .as_ref()
            .and_then(|s| s.get("checks"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = c.get("name").and_then(Value::as_str) {
                if !check_names.iter().any(|x| x == n) {
                    check_names.push(n.to_string());
                }
            }
        }
    }
    let mut headers: Vec<String> = vec!["scenario".into(), "verdict".into(), "wall".into()];
    headers.push("steps".into());
    headers.extend(check_names.iter().cloned());
    let mut rows = Vec::new();
    for (dir, s) in &summaries {
        let name = s
            .as_ref()
            .and_then(|s| s.pointer("/scenario/name"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        let mut row = vec![Cell {
            text: name,
            href: Some(rel_link(root, dir)),
            ok: None,
            title: s
                .as_ref()
                .and_then(|s| s.pointer("/scenario/about"))
                .and_then(Value::as_str)
                .map(str::to_string),
        }];
        let Some(s) = s else {
            row.push(Cell {
                text: "no summary.json".into(),
                ok: Some(false),
                ..Cell::default()
            });
            rows.push(row);
            continue;
        };
        let verdict = s.get("verdict").and_then(Value::as_str).unwrap_or("?");
        row.push(Cell {
            text: verdict.to_uppercase(),
            ok: Some(verdict == "pass"),
            title: s.get("errors").and_then(Value::as_array).map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
            ..Cell::default()
        });
        row.push(Cell::text(format!(
            "{:.1} s",
            s.get("wall_ms").and_then(Value::as_u64).unwrap_or(0) as f64 / 1000.0
        )));
        let steps = s
            .get("steps")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let passed = steps
            .iter()
            .filter(|st| st.get("passed").and_then(Value::as_bool) == Some(true))
            .count();
        let failed: Vec<String> = steps
            .iter()
            .filter(|st| st.get("status").and_then(Value::as_str) == Some("failed"))
            .map(|st| {
                format!(
                    "step {}: {}",
                    st.get("index").and_then(Value::as_u64).unwrap_or(0),
                    st.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("failed")
                )
            })
            .collect();
        row.push(Cell {
            text: format!("{passed}/{} passed", steps.len()),
            ok: Some(passed == steps.len()),
            title: (!failed.is_empty()).then(|| failed.join("; ")),
            ..Cell::default()
        });
        let checks = s
            .get("checks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for n in &check_names {
            let c = checks
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(n));
            row.push(match c {
                None => Cell::text("—"),
                Some(c) => Cell {
                    text: c
                        .get("figure")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    ok: c.get("ok").and_then(Value::as_bool),
                    title: c.get("details").and_then(Value::as_array).map(|d| {
                        d.iter()
                            .filter_map(Value::as_str)
                            .take(6)
                            .collect::<Vec<_>>()
                            .join("\n")
                    }),
                    href: None,
                },
            });
        }
        rows.push(row);
    }
    Table { headers, rows }
}

/// Writes `index.html` in `root` for the given run directories.
pub fn write_suite_index(root: &Path, runs: &[PathBuf]) -> std::io::Result<PathBuf> {
    let table = suite_table(root, runs);
    let pass = table
        .rows
        .iter()
        .filter(|r| r.get(1).is_some_and(|c| c.ok == Some(true)))
        .count();
    let intro = format!(
        "{pass} of {} scenarios passed. Each name opens that run's timeline (report.html); hover a figure for the checker's details.",
        table.rows.len()
    );
    let page = html_page("faultline suite", &intro, &html_table(&table));
    let path = root.join("index.html");
    std::fs::write(&path, page)?;
    Ok(path)
}

/// Run directories directly under `root` (those holding a history.jsonl), sorted by name.
pub fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("history.jsonl").is_file())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_are_escaped_linked_and_coloured() {
        let t = Table {
            headers: vec!["a<b".into()],
            rows: vec![vec![Cell {
                text: "x & y".into(),
                href: Some("r/report.html".into()),
                ok: Some(false),
                title: None,
            }]],
        };
        let h = html_table(&t);
        assert!(h.contains("<th>a&lt;b</th>"), "{h}");
        assert!(
            h.contains("<td class=\"bad\"><a href=\"r/report.html\">x &amp; y</a></td>"),
            "{h}"
        );
    }

    #[test]
    fn suite_rows_come_from_each_summary() {
        let root = std::env::temp_dir().join(format!("fl-index-{}", std::process::id()));
        let a = root.join("alpha");
        let b = root.join("beta");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(
            a.join("summary.json"),
            r#"{"scenario":{"name":"alpha","about":"A"},"verdict":"pass","wall_ms":1500,
               "steps":[{"index":1,"status":"passed","passed":true}],
               "checks":[{"name":"delivery","ok":true,"figure":"0 lost","details":[]}]}"#,
        )
        .unwrap();
        std::fs::write(
            b.join("summary.json"),
            r#"{"scenario":{"name":"beta"},"verdict":"fail","wall_ms":900,"steps":[],
               "checks":[{"name":"election","ok":false,"figure":"2 leaders","details":["epoch 2 has 2 leaders: 1, 2"]}]}"#,
        )
        .unwrap();
        let t = suite_table(&root, &[a.clone(), b.clone()]);
        assert_eq!(
            t.headers,
            vec!["scenario", "verdict", "wall", "steps", "delivery", "election"]
        );
        assert_eq!(t.rows[0][0].href.as_deref(), Some("alpha/report.html"));
        assert_eq!(t.rows[0][1].ok, Some(true));
        assert_eq!(t.rows[1][1].text, "FAIL");
        assert_eq!(t.rows[1][4].text, "—");
        assert_eq!(t.rows[1][5].ok, Some(false));
        let path = write_suite_index(&root, &[a, b]).unwrap();
        let html = std::fs::read_to_string(path).unwrap();
        assert!(html.contains("1 of 2 scenarios passed"), "{html}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
