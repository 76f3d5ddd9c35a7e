//! Link faults in a scenario: `loss`, `delay`, `duplicate` and `bandwidth` degrade links
//! without cutting them. The YAML shapes, their ranges, and the `rate` unit language (tc's: `500kbit`,
//! `1mbit`). Targets are resolved when the step runs, like every other fault's.

use super::raw::RawTarget;
use super::Target;
use serde::Deserialize;

/// A link fault step, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkStep {
    /// `loss: {from: T, to: T, percent: P}`: packets from `from` to `to` dropped at random.
    Loss {
        from: Target,
        to: Target,
        percent: u8,
    },
    /// `delay: {to: T, ms: M, jitter: J}`: packets from the other nodes to `to` held M ± J ms.
    Delay { to: Target, ms: u64, jitter_ms: u64 },
    /// `bandwidth: {to: T, rate: 1mbit}`: traffic to `to` limited.
    Bandwidth { to: Target, rate_bps: u64 },
    /// `duplicate: {to: T, percent: P}`: packets to `to` delivered twice, P in 100.
    Duplicate { to: Target, percent: u8 },
}

impl LinkStep {
    pub fn keyword(&self) -> &'static str {
        match self {
            LinkStep::Loss { .. } => "loss",
            LinkStep::Delay { .. } => "delay",
            LinkStep::Bandwidth { .. } => "bandwidth",
            LinkStep::Duplicate { .. } => "duplicate",
        }
    }

    /// The step as written, for the report.
    pub fn describe(&self) -> String {
        match self {
            LinkStep::Loss { from, to, percent } => format!("loss {percent}% {from} -> {to}"),
            LinkStep::Delay { to, ms, jitter_ms } => format!("delay {ms}±{jitter_ms} ms -> {to}"),
            LinkStep::Bandwidth { to, rate_bps } => {
                format!("bandwidth {} -> {to}", rate_text(*rate_bps))
            }
            LinkStep::Duplicate { to, percent } => format!("duplicate {percent}% -> {to}"),
        }
    }
}

/// The longest delay a step may ask for (beyond it, every peer would look dead).
pub const MAX_DELAY_MS: i64 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoss {
    pub from: RawTarget,
    pub to: RawTarget,
    pub percent: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelay {
    pub to: RawTarget,
    pub ms: i64,
    pub jitter: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDuplicate {
    pub to: RawTarget,
    pub percent: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBandwidth {
    pub to: RawTarget,
    pub rate: String,
}

/// `percent` must be 1 to 100.
pub fn percent(p: i64) -> Result<u8, String> {
    if (1..=100).contains(&p) {
        Ok(p as u8)
    } else {
        Err(format!("`percent: {p}`: must be 1 to 100"))
    }
}

/// `ms` 1 to 10000, `jitter` 0 to `ms`.
pub fn delay(ms: i64, jitter: Option<i64>) -> Result<(u64, u64), String> {
    if !(1..=MAX_DELAY_MS).contains(&ms) {
        return Err(format!("`ms: {ms}`: must be 1 to {MAX_DELAY_MS}"));
    }
    let j = jitter.unwrap_or(0);
    if !(0..=ms).contains(&j) {
        return Err(format!("`jitter: {j}`: must be 0 to `ms` ({ms})"));
    }
    Ok((ms as u64, j as u64))
}

/// A rate as tc writes it: a number and `bit`, `kbit`, `mbit` or `gbit`; 8kbit to 10gbit.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad rate `{t}`: write e.g. `1mbit` or `500kbit`"))?;
    let scale = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "" => {
            return Err(format!(
                "bad rate `{t}`: no unit; write e.g. `1mbit` or `500kbit`"
            ))
        }
        other => {
            return Err(format!(
                "bad rate `{t}`: unknown unit `{other}`; use bit, kbit, mbit or gbit"
            ))
        }
    };
    let bps = n * scale;
    if !bps.is_finite() || !(8e3..=1e10).contains(&bps) {
        return Err(format!("bad rate `{t}`: must be 8kbit to 10gbit"));
    }
    Ok(bps as u64)
}

/// A rate for people and for tc (`1500kbit`).
pub fn rate_text(bps: u64) -> String {
    if bps.is_multiple_of(1_000_000) {
        format!("{}mbit", bps / 1_000_000)
    } else if bps.is_multiple_of(1000) {
        format!("{}kbit", bps / 1000)
    } else {
        format!("{bps}bit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_tc_units_and_refuse_the_rest() {
        assert_eq!(parse_rate("1mbit"), Ok(1_000_000));
        assert_eq!(parse_rate("500kbit"), Ok(500_000));
        assert_eq!(parse_rate("1.5mbit"), Ok(1_500_000));
        assert_eq!(rate_text(1_500_000), "1500kbit");
        assert_eq!(rate_text(2_000_000), "2mbit");
        assert!(parse_rate("100").unwrap_err().contains("no unit"));
        assert!(parse_rate("1mb").unwrap_err().contains("unknown unit"));
        assert!(parse_rate("1bit").unwrap_err().contains("8kbit"));
    }

    #[test]
    fn percent_and_delay_ranges() {
        assert_eq!(percent(30), Ok(30));
        assert!(percent(0).is_err() && percent(101).is_err());
        assert_eq!(delay(150, Some(50)), Ok((150, 50)));
        assert_eq!(delay(150, None), Ok((150, 0)));
        assert!(delay(150, Some(151)).is_err());
        assert!(delay(0, None).is_err() && delay(10_001, None).is_err());
    }
}
