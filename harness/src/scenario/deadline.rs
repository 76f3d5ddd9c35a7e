//! Deadline expressions: sums of terms, each a duration literal (`3s`, `150ms`) or a cluster
//! setting (`heartbeat`, `failure_timeout`), optionally multiplied by a number:
//! `failure_timeout + 2 * heartbeat`, `1.5 * failure_timeout + 200ms`.
//! Written in the cluster's own terms, a deadline follows the settings it is meant to test.

use super::ClusterSettings;
use chat_node::duration::{format_duration, parse_duration};
use std::fmt;
use std::time::Duration;

/// A setting a deadline may refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    Heartbeat,
    FailureTimeout,
}

impl Setting {
    const NAMES: &'static [&'static str] = &["heartbeat", "failure_timeout"];

    fn from_name(name: &str) -> Option<Setting> {
        match name {
            "heartbeat" => Some(Setting::Heartbeat),
            "failure_timeout" => Some(Setting::FailureTimeout),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Setting::Heartbeat => "heartbeat",
            Setting::FailureTimeout => "failure_timeout",
        }
    }

    fn value(self, settings: &ClusterSettings) -> Duration {
        match self {
            Setting::Heartbeat => settings.heartbeat,
            Setting::FailureTimeout => settings.failure_timeout,
        }
    }
}

/// What one term of the sum measures.
#[derive(Clone, Debug, PartialEq)]
pub enum Quantity {
    Literal(Duration),
    Setting(Setting),
}

/// `factor * quantity`.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    pub factor: f64,
    pub quantity: Quantity,
}

/// A parsed deadline; [`Deadline::resolve`] turns it into a duration for given settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Deadline {
    pub terms: Vec<Term>,
}

impl Deadline {
    /// A fixed deadline (used for defaults computed in code).
    pub fn fixed(d: Duration) -> Deadline {
        Deadline {
            terms: vec![Term {
                factor: 1.0,
                quantity: Quantity::Literal(d),
            }],
        }
    }

    /// The sum of two deadlines. Terms of the same setting are merged (`heartbeat + 2 *
    /// heartbeat` reads `3 * heartbeat`), so a formula built from parts still reads simply.
    pub fn plus(mut self, other: Deadline) -> Deadline {
        for t in other.terms {
            let same = self.terms.iter_mut().find(|mine| {
                matches!(mine.quantity, Quantity::Setting(_)) && mine.quantity == t.quantity
            });
            match same {
                Some(mine) => mine.factor += t.factor,
                None => self.terms.push(t),
            }
        }
        self
    }

    /// Parses an expression; the error says which term is wrong and what is allowed.
    pub fn parse(text: &str) -> Result<Deadline, String> {
        if text.trim().is_empty() {
            return Err(
                "empty deadline; write e.g. `2s` or `failure_timeout + 2 * heartbeat`".into(),
            );
        }
        let mut terms = Vec::new();
        for raw in text.split('+') {
            terms.push(parse_term(raw.trim(), text)?);
        }
        Ok(Deadline { terms })
    }

    /// The deadline for a cluster with these settings.
    pub fn resolve(&self, settings: &ClusterSettings) -> Duration {
        let micros: f64 = self
            .terms
            .iter()
            .map(|t| {
                let base = match &t.quantity {
                    Quantity::Literal(d) => *d,
                    Quantity::Setting(s) => s.value(settings),
                };
                t.factor * base.as_micros() as f64
            })
            .sum();
        Duration::from_micros(micros.max(0.0).round() as u64)
    }
}

fn parse_term(term: &str, whole: &str) -> Result<Term, String> {
    if term.is_empty() {
        return Err(format!("`{whole}`: empty term around `+`"));
    }
    let (factor, rest) = match term.split_once('*') {
        Some((a, b)) => {
            let (a, b) = (a.trim(), b.trim());
            // Accept both `2 * heartbeat` and `heartbeat * 2`.
            match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(f), _) => (f, b),
                (_, Ok(f)) => (f, a),
                _ => {
                    return Err(format!(
                        "`{term}` in `{whole}`: a product needs a number on one side, e.g. `2 * heartbeat`"
                    ))
                }
            }
        }
        None => (1.0, term),
    };
    if !factor.is_finite() || factor < 0.0 {
        return Err(format!(
            "`{term}` in `{whole}`: the factor must be a non-negative number"
        ));
    }
    let quantity = if let Some(s) = Setting::from_name(rest) {
        Quantity::Setting(s)
    } else if rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        Quantity::Literal(parse_duration(rest).map_err(|e| format!("bad duration {e}"))?)
    } else {
        return Err(format!(
            "`{rest}` in `{whole}` is neither a duration (`500ms`, `2s`) nor a setting ({})",
            Setting::NAMES.join(", ")
        ));
    };
    Ok(Term { factor, quantity })
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(" + ")?;
            }
            if t.factor != 1.0 {
                write!(f, "{} * ", t.factor)?;
            }
            match &t.quantity {
                Quantity::Literal(d) => f.write_str(&format_duration(*d))?,
                Quantity::Setting(s) => f.write_str(s.name())?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        ClusterSettings {
            heartbeat: Duration::from_millis(100),
            failure_timeout: Duration::from_millis(500),
            ..ClusterSettings::default()
        }
    }

    #[test]
    fn sums_settings_and_literals() {
        let d = Deadline::parse("failure_timeout + 2 * heartbeat").unwrap();
        assert_eq!(d.resolve(&settings()), Duration::from_millis(700));
        let d = Deadline::parse("heartbeat*3 + 1s").unwrap();
        assert_eq!(d.resolve(&settings()), Duration::from_millis(1300));
        let d = Deadline::parse("1.5 * failure_timeout").unwrap();
        assert_eq!(d.resolve(&settings()), Duration::from_millis(750));
        assert_eq!(
            Deadline::parse("3s").unwrap().resolve(&settings()),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn displays_as_written() {
        let d = Deadline::parse("failure_timeout + 2 * heartbeat + 200ms").unwrap();
        assert_eq!(d.to_string(), "failure_timeout + 2 * heartbeat + 200ms");
    }

    #[test]
    fn rejects_unknown_names_and_bad_durations() {
        assert!(Deadline::parse("failure_timout")
            .unwrap_err()
            .contains("failure_timout"));
        assert!(Deadline::parse("3").unwrap_err().contains("unit"));
        assert!(Deadline::parse("2 * 3").is_err());
        assert!(Deadline::parse("1s + ").is_err());
        assert!(Deadline::parse("").is_err());
        assert!(Deadline::parse("-1 * heartbeat").is_err());
    }
}
