//! The YAML as written: serde structs with `deny_unknown_fields`, so a typo is an error with a
//! line and column. Values stay strings here; `validate` gives them meaning.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: String,
    pub about: String,
    #[serde(default)]
    pub cluster: RawCluster,
    #[serde(default)]
    pub workload: Option<RawWorkload>,
    pub steps: Vec<RawStep>,
    #[serde(default)]
    pub checks: Option<Vec<RawCheck>>,
    #[serde(default)]
    pub expect_failures: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub nodes: Option<i64>,
    pub election: Option<String>,
    pub election_pinned: Option<bool>,
    pub heartbeat: Option<String>,
    pub failure_timeout: Option<String>,
    pub quorum: Option<String>,
    pub cluster_size: Option<i64>,
    #[serde(default)]
    pub flags: Vec<String>,
    pub start: Option<String>,
    pub insecure: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub users: Option<i64>,
    #[serde(default)]
    pub rooms: Vec<String>,
    pub rate: Option<String>,
    pub mix: Option<RawMix>,
    pub drain: Option<String>,
    /// `leader`, `spread`, or a map of user name to node id.
    pub placement: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMix {
    pub private: Option<f64>,
    pub room: Option<f64>,
}

/// One step: exactly one of these keys must be present (checked in `validate`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    #[serde(rename = "await")]
    pub await_: Option<RawExpect>,
    pub expect: Option<RawExpect>,
    pub kill: Option<RawFault>,
    pub stop: Option<RawFault>,
    pub pause: Option<RawFault>,
    pub resume: Option<RawFault>,
    pub restart: Option<RawFault>,
    pub partition: Option<RawPartition>,
    pub cut: Option<RawCut>,
    pub isolate: Option<RawFault>,
    #[serde(default, deserialize_with = "present")]
    pub heal: Option<RawEmpty>,
    pub sleep: Option<String>,
    pub offline: Option<RawUser>,
    pub online: Option<RawUser>,
    pub send: Option<RawSend>,
    pub loss: Option<super::link::RawLoss>,
    pub delay: Option<super::link::RawDelay>,
    pub bandwidth: Option<super::link::RawBandwidth>,
    pub duplicate: Option<super::link::RawDuplicate>,
    pub forge: Option<super::forge::RawForge>,
    pub repeat: Option<RawRepeat>,
}

/// `repeat: {times: N, steps: [...]}`: the inner steps, N times over.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRepeat {
    pub times: i64,
    pub steps: Vec<RawStep>,
}

impl RawStep {
    /// The keys present in this step, in schema order.
    pub fn present_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut add = |present: bool, key: &'static str| {
            if present {
                keys.push(key)
            }
        };
        add(self.await_.is_some(), "await");
        add(self.expect.is_some(), "expect");
        add(self.kill.is_some(), "kill");
        add(self.stop.is_some(), "stop");
        add(self.pause.is_some(), "pause");
        add(self.resume.is_some(), "resume");
        add(self.restart.is_some(), "restart");
        add(self.partition.is_some(), "partition");
        add(self.cut.is_some(), "cut");
        add(self.isolate.is_some(), "isolate");
        add(self.heal.is_some(), "heal");
        add(self.sleep.is_some(), "sleep");
        add(self.offline.is_some(), "offline");
        add(self.online.is_some(), "online");
        add(self.send.is_some(), "send");
        add(self.loss.is_some(), "loss");
        add(self.delay.is_some(), "delay");
        add(self.bandwidth.is_some(), "bandwidth");
        add(self.duplicate.is_some(), "duplicate");
        add(self.forge.is_some(), "forge");
        add(self.repeat.is_some(), "repeat");
        keys
    }
}

/// A key whose presence is what matters: `heal:` and `heal: {}` both count as given.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

/// `heal: {}` (also accepts `heal:` with no value).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmpty {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub target: RawTarget,
    #[serde(rename = "as")]
    pub as_: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartition {
    pub groups: Vec<RawGroup>,
}

/// A partition group or a cut's end: `rest`, one target, a list of targets, or any of them
/// named for later steps: `{nodes: <that>, as: <alias>}`.
#[derive(Debug)]
pub struct RawGroup {
    pub members: RawMembers,
    pub as_: Option<String>,
}

#[derive(Debug)]
pub enum RawMembers {
    Rest,
    Targets(Vec<RawTarget>),
}

impl RawGroup {
    fn unnamed(members: RawMembers) -> RawGroup {
        RawGroup { members, as_: None }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCut {
    pub from: RawGroup,
    pub to: RawGroup,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub user: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSend {
    pub from: String,
    pub to: String,
    pub count: Option<i64>,
}

/// A target: a word (`leader`, `followers`, an alias …), `{node: 3}`, or a list of them
/// resolved together (`[leader, random_follower]`).
#[derive(Debug, Clone)]
pub enum RawTarget {
    Word(String),
    Node(i64),
    List(Vec<RawTarget>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodeTarget {
    node: i64,
}

/// The body of `await` / `expect`: one condition key, and `within` here or inside it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub leader: Option<RawLeader>,
    pub detected: Option<RawDetected>,
    pub rejoined: Option<RawNodeCond>,
    pub stepped_down: Option<RawNodeCond>,
    pub no_leader: Option<RawNoLeader>,
    pub no_commit: Option<RawNoCommit>,
    pub no_leader_change: Option<RawNoLeaderChange>,
    pub converged: Option<RawConverged>,
    pub within: Option<String>,
}

/// `leader: any` or `leader: {any: true | is: T | not: T, within: d}`.
#[derive(Debug, Default)]
pub struct RawLeader {
    pub any: bool,
    pub is: Option<RawTarget>,
    pub not: Option<RawTarget>,
    pub within: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLeaderMap {
    #[serde(default)]
    any: bool,
    is: Option<RawTarget>,
    not: Option<RawTarget>,
    within: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetected {
    pub peer: RawTarget,
    pub by: Option<RawTarget>,
    pub within: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNodeCond {
    pub node: RawTarget,
    pub within: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNoLeader {
    pub among: RawTarget,
    #[serde(rename = "for")]
    pub for_: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNoCommit {
    pub among: RawTarget,
    #[serde(rename = "for")]
    pub for_: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNoLeaderChange {
    #[serde(rename = "for")]
    pub for_: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConverged {
    pub within: Option<String>,
}

/// A check: `delivery`, or `{detection: {within: 1s}}`.
#[derive(Debug)]
pub struct RawCheck {
    pub name: String,
    pub within: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckOptions {
    within: Option<String>,
}

/// `{<checker>: {within: d}}`: any name here; `validate` checks it against the registry.
type RawCheckMap = std::collections::BTreeMap<String, RawCheckOptions>;

// ---- hand-written Deserialize impls for "a word or a map" values --------------------------
// Each visitor hands the map case to a derived struct so that its errors (unknown key, with
// line and column) survive; an untagged enum would replace them with "did not match".

struct WordOrMap<T>(std::marker::PhantomData<T>, &'static str);

trait FromWordOrMap: Sized {
    fn from_word<E: de::Error>(word: String) -> Result<Self, E>;
    fn from_int<E: de::Error>(n: i64) -> Result<Self, E> {
        Self::from_word(n.to_string())
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
    fn from_seq<'de, A: de::SeqAccess<'de>>(_seq: A) -> Result<Self, A::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Seq, &"not a list"))
    }
}

impl<'de, T: FromWordOrMap> Visitor<'de> for WordOrMap<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_word(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::from_int(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::from_int(i64::try_from(v).map_err(|_| E::custom("number too large"))?)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::from_seq(seq)
    }
}

impl FromWordOrMap for RawTarget {
    fn from_word<E: de::Error>(word: String) -> Result<Self, E> {
        Ok(RawTarget::Word(word))
    }
    fn from_int<E: de::Error>(n: i64) -> Result<Self, E> {
        Ok(RawTarget::Node(n))
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let m = RawNodeTarget::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(RawTarget::Node(m.node))
    }
    fn from_seq<'de, A: de::SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut targets = Vec::new();
        while let Some(t) = seq.next_element::<RawTarget>()? {
            targets.push(t);
        }
        Ok(RawTarget::List(targets))
    }
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(WordOrMap::<RawTarget>(
            Default::default(),
            "a target (leader, followers, random_follower, majority, minority, all, \
             ring_successor_of_leader, an alias), {node: <n>}, or a list of them",
        ))
    }
}

impl FromWordOrMap for RawLeader {
    fn from_word<E: de::Error>(word: String) -> Result<Self, E> {
        if word == "any" {
            Ok(RawLeader {
                any: true,
                ..RawLeader::default()
            })
        } else {
            Err(E::custom(format!(
                "`leader: {word}`: write `leader: any`, `leader: {{is: <target>}}` or `leader: {{not: <target>}}`"
            )))
        }
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let m = RawLeaderMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(RawLeader {
            any: m.any,
            is: m.is,
            not: m.not,
            within: m.within,
        })
    }
}

impl<'de> Deserialize<'de> for RawLeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(WordOrMap::<RawLeader>(
            Default::default(),
            "`any` or a map with `is`, `not`, `within`",
        ))
    }
}

impl FromWordOrMap for RawCheck {
    fn from_word<E: de::Error>(word: String) -> Result<Self, E> {
        Ok(RawCheck {
            name: word,
            within: None,
        })
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let m = RawCheckMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
        let mut present = m.into_iter();
        match (present.next(), present.next()) {
            (Some((name, opts)), None) => Ok(RawCheck {
                name,
                within: opts.within,
            }),
            _ => Err(de::Error::custom(
                "a check entry names exactly one checker, e.g. `- detection: {within: 1s}`",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for RawCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(WordOrMap::<RawCheck>(
            Default::default(),
            "a checker name or `{<checker>: {within: <deadline>}}`",
        ))
    }
}

/// `{nodes: …, as: …}` (a named group) or `{node: n}` (a target), told apart by their keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroupMap {
    node: Option<i64>,
    nodes: Option<RawMembersOnly>,
    #[serde(rename = "as")]
    as_: Option<String>,
}

/// The `nodes:` of a named group: `rest`, a target or a list of targets (not named again).
#[derive(Debug)]
struct RawMembersOnly(RawMembers);

impl<'de> Deserialize<'de> for RawMembersOnly {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let g = RawGroup::deserialize(d)?;
        if g.as_.is_some() {
            return Err(de::Error::custom(
                "`nodes` holds the group's targets; put `as` beside it, not inside",
            ));
        }
        Ok(RawMembersOnly(g.members))
    }
}

impl<'de> Deserialize<'de> for RawGroup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct GroupVisitor;
        impl<'de> Visitor<'de> for GroupVisitor {
            type Value = RawGroup;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`rest`, a target, a list of targets, or `{nodes: <those>, as: <alias>}`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawGroup, E> {
                Ok(RawGroup::unnamed(if v == "rest" {
                    RawMembers::Rest
                } else {
                    RawMembers::Targets(vec![RawTarget::Word(v.to_string())])
                }))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawGroup, E> {
                Ok(RawGroup::unnamed(RawMembers::Targets(vec![
                    RawTarget::Node(v),
                ])))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawGroup, E> {
                let n = i64::try_from(v).map_err(|_| E::custom("number too large"))?;
                self.visit_i64(n)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawGroup, A::Error> {
                let m = RawGroupMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (m.node, m.nodes, m.as_) {
                    (Some(n), None, None) => Ok(RawGroup::unnamed(RawMembers::Targets(vec![
                        RawTarget::Node(n),
                    ]))),
                    (None, Some(members), as_) => Ok(RawGroup {
                        members: members.0,
                        as_,
                    }),
                    (Some(_), _, _) => Err(de::Error::custom(
                        "write a node as `{node: <n>}`, or a named group as \
                         `{nodes: [{node: <n>}, …], as: <alias>}`",
                    )),
                    (None, None, _) => Err(de::Error::custom(
                        "a named group needs `nodes`: `{nodes: <targets>, as: <alias>}`",
                    )),
                }
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawGroup, A::Error> {
                let mut targets = Vec::new();
                while let Some(t) = seq.next_element::<RawTarget>()? {
                    targets.push(t);
                }
                Ok(RawGroup::unnamed(RawMembers::Targets(targets)))
            }
        }
        d.deserialize_any(GroupVisitor)
    }
}
