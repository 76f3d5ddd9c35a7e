//! The `forge` step: an outsider on the run's network, not a member, replays the peer
//! datagrams it captured and forges every message kind for a while (the node's
//! `chat-node forge` test tool in a labelled container of its own). The YAML shape, its
//! ranges, and the kinds list, which is the node's own ([`chat_node::forge::ForgeKind`]), so a
//! scenario can only ask for what the tool makes.

use chat_node::forge::ForgeKind;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A validated `forge` step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgeStep {
    /// Who forges: today only an outsider (a host on the network that is no member).
    pub from: ForgeSource,
    pub kinds: Vec<ForgeKind>,
    /// Datagrams per second, all kinds and destinations together.
    pub rate_per_s: u32,
    /// How long the outsider runs; the step itself returns at once and the outsider goes on
    /// in the background while later steps run.
    pub duration: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForgeSource {
    Outsider,
}

impl ForgeStep {
    /// The step as written, for the report.
    pub fn describe(&self) -> String {
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
        let kinds = if self.kinds.len() == ForgeKind::ALL.len() {
            "all".to_string()
        } else {
            kinds.join(",")
        };
        format!(
            "forge from outsider {}/s for {} ms: {kinds}",
            self.rate_per_s,
            self.duration.as_millis()
        )
    }
}

/// The most a `forge` step may send per second.
pub const MAX_RATE: u32 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForge {
    pub from: String,
    #[serde(default)]
    pub kinds: Option<RawKinds>,
    pub rate: String,
    #[serde(rename = "for")]
    pub for_: String,
}

/// `kinds: all` or `kinds: [heartbeat, append]`.
#[derive(Debug)]
pub struct RawKinds(pub Vec<String>);

impl<'de> Deserialize<'de> for RawKinds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KindsVisitor;
        impl<'de> Visitor<'de> for KindsVisitor {
            type Value = RawKinds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`all` or a list of forge kinds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKinds, E> {
                Ok(RawKinds(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawKinds, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = seq.next_element::<String>()? {
                    out.push(k);
                }
                Ok(RawKinds(out))
            }
        }
        d.deserialize_any(KindsVisitor)
    }
}

/// `from`: only `outsider` today.
pub fn source(from: &str) -> Result<ForgeSource, String> {
    match from.trim() {
        "outsider" => Ok(ForgeSource::Outsider),
        other => Err(format!(
            "unknown forge source `{other}`; expected: outsider (a host on the run's network that is no member)"
        )),
    }
}

/// `kinds`: names from the node's list, `all` for every one; omitted means all.
pub fn kinds(raw: Option<&RawKinds>) -> Result<Vec<ForgeKind>, String> {
    match raw {
        None => Ok(ForgeKind::ALL.to_vec()),
        Some(RawKinds(list)) => ForgeKind::parse_list(list),
    }
}

/// `rate`: `N/s` or `N/m`, a whole number of datagrams per second from 1 to [`MAX_RATE`].
pub fn rate(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let (num, per) = t
        .split_once('/')
        .ok_or_else(|| format!("bad rate `{t}`: write datagrams per second, e.g. `200/s`"))?;
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad rate `{t}`: write e.g. `200/s`"))?;
    let per_s = match per.trim() {
        "s" => n,
        "m" | "min" => n / 60.0,
        _ => return Err(format!("bad rate `{t}`: unit must be /s or /m")),
    };
    if !per_s.is_finite() || per_s < 1.0 || per_s > f64::from(MAX_RATE) {
        return Err(format!("bad rate `{t}`: must be 1/s to {MAX_RATE}/s"));
    }
    Ok(per_s.round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_whole_datagrams_per_second_in_range() {
        assert_eq!(rate("200/s"), Ok(200));
        assert_eq!(rate("600/m"), Ok(10));
        assert!(rate("200").unwrap_err().contains("per second"));
        assert!(rate("0/s").unwrap_err().contains("1/s to 10000/s"));
        assert!(rate("20000/s").is_err() && rate("5/h").is_err() && rate("x/s").is_err());
    }

    #[test]
    fn kinds_default_to_all_and_refuse_unknown_names() {
        assert_eq!(kinds(None).unwrap().len(), ForgeKind::ALL.len());
        let k = kinds(Some(&RawKinds(vec!["append".into(), "leave".into()]))).unwrap();
        assert_eq!(k, vec![ForgeKind::Append, ForgeKind::Leave]);
        let err = kinds(Some(&RawKinds(vec!["hearbeat".into()]))).unwrap_err();
        assert!(err.contains("unknown forge kind `hearbeat`"), "{err}");
        assert!(kinds(Some(&RawKinds(vec![]))).is_err());
        assert!(source("insider").unwrap_err().contains("outsider"));
    }
}
