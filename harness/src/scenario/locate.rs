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

    /// The line range of step `index` (0-based) and the position of its dash.
    fn step_block(&self, index: usize) -> Option<(usize, usize, Pos)> {
        let (items, end, dash_indent) = self.steps.get_or_init(|| self.step_items()).as_ref()?;
        let first = *items.get(index)?;
        let last = items.get(index + 1).copied().unwrap_or(*end);
        Some((
            first,
            last,
            Pos {
                line: first + 1,
                column: dash_indent + 1,
            },
        ))
    }

    /// Where step `index` starts.
    pub fn step(&self, index: usize) -> Pos {
        self.step_block(index)
            .map(|(_, _, p)| p)
            .unwrap_or(Pos { line: 1, column: 1 })
    }

    /// Where `key:` appears inside step `index` (falls back to the step).
    pub fn key_in_step(&self, index: usize, key: &str) -> Pos {
        match self.step_block(index) {
            Some((a, b, p)) => self.find_key_in(a, b, key).unwrap_or(p),
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

    /// Where a value (a target word, an alias) appears inside step `index`.
    pub fn word_in_step(&self, index: usize, word: &str) -> Pos {
        match self.step_block(index) {
            Some((a, b, p)) => {
                for i in a..b.min(self.lines.len()) {
                    if let Some(c) = self.lines[i].find(word) {
                        return Pos {
                            line: i + 1,
                            column: c + 1,
                        };
                    }
                }
                p
            }
            None => Pos { line: 1, column: 1 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name: x\ncluster:\n  nodes: 5\n  heartbeat: 100ms\nsteps:\n  # a comment\n  - await: {leader: any}\n  - kill:\n      target: leader\n      as: old\n  - sleep: 1s\n";

    #[test]
    fn finds_steps_and_keys() {
        let l = Locator::new(TEXT);
        assert_eq!(l.step(0), Pos { line: 7, column: 3 });
        assert_eq!(
            l.step(2),
            Pos {
                line: 11,
                column: 3
            }
        );
        assert_eq!(
            l.key_in_step(1, "as"),
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
            l.word_in_step(1, "leader"),
            Pos {
                line: 9,
                column: 15
            }
        );
    }
}
