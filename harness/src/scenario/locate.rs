//! Finds where things are in the YAML text, for errors found after serde (unknown targets,
//! bad durations …). serde_yaml gives positions only for its own errors, so this scans lines:
//! good enough for the block and flow styles scenario files use.

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

pub struct Locator<'a> {
    lines: Vec<&'a str>,
    /// The `steps:` block: the first line of each item, the block's end and the dash
    /// indent — found once, so locating step k is O(1) and validation stays linear.
    steps: std::cell::OnceCell<Option<(Vec<usize>, usize, usize)>>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Self {
        Locator {
            lines: text.lines().collect(),
            steps: std::cell::OnceCell::new(),
        }
    }

    /// The line range [start, end) of a top-level key's block, and the key's position.
    fn top_block(&self, key: &str) -> Option<(usize, usize)> {
        let start = self.lines.iter().position(|l| {
            indent(l) == 0 && l.starts_with(key) && l[key.len()..].trim_start().starts_with(':')
        })?;
        let end = (start + 1..self.lines.len())
            .find(|&i| is_content(self.lines[i]) && indent(self.lines[i]) == 0)
            .unwrap_or(self.lines.len());
        Some((start, end))
    }

    /// A top-level key (`cluster`), or a key inside it (`cluster`, `nodes`).
    pub fn key(&self, top: &str, inner: Option<&str>) -> Pos {
        let Some((start, end)) = self.top_block(top) else {
            return Pos { line: 1, column: 1 };
        };
        if let Some(k) = inner {
            if let Some(p) = self.find_key_in(start, end, k) {
                return p;
            }
        }
        Pos {
            line: start + 1,
            column: 1,
        }
    }

    fn step_items(&self) -> Option<(Vec<usize>, usize, usize)> {
        let (start, end) = self.top_block("steps")?;
        let dash_indent = (start + 1..end)
            .map(|i| self.lines[i])
            .find(|l| l.trim_start().starts_with('-'))
            .map(indent)?;
        let items: Vec<usize> = (start + 1..end)
            .filter(|&i| {
                let l = self.lines[i];
                indent(l) == dash_indent && l.trim_start().starts_with('-')
            })
            .collect();
        Some((items, end, dash_indent))
    }

    /// Where step `index` (0-based, top level) is: its lines and its dash.
    pub fn step_span(&self, index: usize) -> Option<Span> {
        let (items, end, dash_indent) = self.steps.get_or_init(|| self.step_items()).as_ref()?;
        let first = *items.get(index)?;
        let last = items.get(index + 1).copied().unwrap_or(*end);
        Some(Span {
            first,
            end: last,
            pos: Pos {
                line: first + 1,
                column: dash_indent + 1,
            },
        })
    }

    /// The items of the `steps:` list inside `span` (a `repeat` step), in order. Empty when
    /// that list is written in flow style (`steps: [...]`): then the repeat's own span is the
    /// best position for its inner steps. Scans only the span's lines.
    pub fn inner_steps(&self, span: Span) -> Vec<Span> {
        let Some(key) = self.find_key_in(span.first, span.end, "steps") else {
            return Vec::new();
        };
        let key_line = key.line - 1;
        let key_indent = key.column - 1;
        let mut dash_indent = None;
        let mut items = Vec::new();
        let mut end = span.end;
        for i in key_line + 1..span.end.min(self.lines.len()) {
            let l = self.lines[i];
            if !is_content(l) {
                continue;
            }
            let ind = indent(l);
            let dash = l.trim_start().starts_with('-');
            if ind < key_indent || (ind == key_indent && !dash) {
                end = i;
                break;
            }
            if dash && dash_indent.is_none_or(|d| d == ind) {
                dash_indent = Some(ind);
                items.push(i);
            }
        }
        let Some(d) = dash_indent else {
            return Vec::new();
        };
        (0..items.len())
            .map(|k| Span {
                first: items[k],
                end: items.get(k + 1).copied().unwrap_or(end),
                pos: Pos {
                    line: items[k] + 1,
                    column: d + 1,
                },
            })
            .collect()
    }

    /// Where `key:` appears inside a step (falls back to the step).
    pub fn key_in(&self, span: Option<Span>, key: &str) -> Pos {
        match span {
            Some(sp) => self.find_key_in(sp.first, sp.end, key).unwrap_or(sp.pos),
            None => Pos { line: 1, column: 1 },
        }
    }

    /// The first `key:` (as a whole word) in lines [a, b).
    fn find_key_in(&self, a: usize, b: usize, key: &str) -> Option<Pos> {
        let needle = format!("{key}:");
        for i in a..b.min(self.lines.len()) {
            let l = self.lines[i];
            let mut from = 0;
            while let Some(off) = l[from..].find(&needle) {
                let at = from + off;
                let before_ok = at == 0
                    || !l[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_');
                if before_ok {
                    return Some(Pos {
                        line: i + 1,
                        column: at + 1,
                    });
                }
                from = at + needle.len();
            }
        }
        None
    }

    /// Where a value (a target word, an alias) appears inside a step.
    pub fn word_in(&self, span: Option<Span>, word: &str) -> Pos {
        match span {
            Some(sp) => {
                for i in sp.first..sp.end.min(self.lines.len()) {
                    if let Some(c) = self.lines[i].find(word) {
                        return Pos {
                            line: i + 1,
                            column: c + 1,
                        };
                    }
                }
                sp.pos
            }
            None => Pos { line: 1, column: 1 },
        }
    }
}

/// A step's lines [first, end) (0-based) and the position of its dash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    first: usize,
    end: usize,
    pub pos: Pos,
}

impl Span {
    /// The dash of a step, or the file's start when it could not be found.
    pub fn pos_of(span: Option<Span>) -> Pos {
        span.map_or(Pos { line: 1, column: 1 }, |s| s.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name: x\ncluster:\n  nodes: 5\n  heartbeat: 100ms\nsteps:\n  # a comment\n  - await: {leader: any}\n  - kill:\n      target: leader\n      as: old\n  - sleep: 1s\n";

    #[test]
    fn finds_steps_and_keys() {
        let l = Locator::new(TEXT);
        assert_eq!(Span::pos_of(l.step_span(0)), Pos { line: 7, column: 3 });
        assert_eq!(
            Span::pos_of(l.step_span(2)),
            Pos {
                line: 11,
                column: 3
            }
        );
        assert_eq!(
            l.key_in(l.step_span(1), "as"),
            Pos {
                line: 10,
                column: 7
            }
        );
        assert_eq!(
            l.key("cluster", Some("heartbeat")),
            Pos { line: 4, column: 3 }
        );
        assert_eq!(
            l.word_in(l.step_span(1), "leader"),
            Pos {
                line: 9,
                column: 15
            }
        );
    }

    #[test]
    fn finds_the_inner_steps_of_a_repeat() {
        let text = "steps:\n  - repeat:\n      times: 2\n      steps:\n        - kill: {target: leader}\n        # why\n        - sleep:\n            1s\n  - sleep: 1s\n";
        let l = Locator::new(text);
        let outer = l.step_span(0).unwrap();
        let inner = l.inner_steps(outer);
        assert_eq!(inner.len(), 2);
        assert_eq!(inner[0].pos, Pos { line: 5, column: 9 });
        assert_eq!(inner[1].pos, Pos { line: 7, column: 9 });
        assert_eq!(
            l.key_in(Some(inner[1]), "sleep"),
            Pos {
                line: 7,
                column: 11
            }
        );
        assert_eq!(Span::pos_of(l.step_span(1)), Pos { line: 9, column: 3 });
        // Flow style: no positions inside, the repeat's own is used.
        let l = Locator::new("steps:\n  - repeat: {times: 2, steps: [{sleep: 1s}]}\n");
        assert!(l.inner_steps(l.step_span(0).unwrap()).is_empty());
    }
}
