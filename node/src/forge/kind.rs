//! What the outsider may send: one kind per peer message, plus verbatim replays of captured
//! datagrams and garbage. One list, shared by `chat-node forge --kinds` and the harness's
//! scenario validation, so a scenario can only ask for what the tool makes.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ForgeKind {
    Hello,
    Heartbeat,
    Token,
    TokenAck,
    Elected,
    Promise,
    Stale,
    Append,
    AppendAck,
    Leave,
    /// A captured datagram sent again, byte for byte.
    Replay,
    /// Random bytes, a valid envelope with a flipped byte, a truncated or oversized one.
    Garbage,
}

impl ForgeKind {
    pub const ALL: [ForgeKind; 12] = [
        ForgeKind::Hello,
        ForgeKind::Heartbeat,
        ForgeKind::Token,
        ForgeKind::TokenAck,
        ForgeKind::Elected,
        ForgeKind::Promise,
        ForgeKind::Stale,
        ForgeKind::Append,
        ForgeKind::AppendAck,
        ForgeKind::Leave,
        ForgeKind::Replay,
        ForgeKind::Garbage,
    ];

    /// The name in `--kinds` and in scenarios: the peer message's `t` for forgeries.
    pub fn name(self) -> &'static str {
        match self {
            ForgeKind::Hello => "hello",
            ForgeKind::Heartbeat => "heartbeat",
            ForgeKind::Token => "token",
            ForgeKind::TokenAck => "token_ack",
            ForgeKind::Elected => "elected",
            ForgeKind::Promise => "promise",
            ForgeKind::Stale => "stale",
            ForgeKind::Append => "append",
            ForgeKind::AppendAck => "append_ack",
            ForgeKind::Leave => "leave",
            ForgeKind::Replay => "replay",
            ForgeKind::Garbage => "garbage",
        }
    }

    /// Every name, for messages.
    pub fn names() -> String {
        let mut names: Vec<&str> = ForgeKind::ALL.iter().map(|k| k.name()).collect();
        names.push("all");
        names.join(", ")
    }

    /// One kind by name.
    pub fn parse(name: &str) -> Result<ForgeKind, String> {
        ForgeKind::ALL
            .into_iter()
            .find(|k| k.name() == name.trim())
            .ok_or_else(|| {
                format!(
                    "unknown forge kind `{}`; expected one of: {}",
                    name.trim(),
                    ForgeKind::names()
                )
            })
    }

    /// A list of names (`all` stands for every kind), without duplicates, in the order
    /// written. Empty lists are refused.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<ForgeKind>, String> {
        if names.is_empty() {
            return Err(format!(
                "no forge kinds given; name some of: {}",
                ForgeKind::names()
            ));
        }
        let mut out: Vec<ForgeKind> = Vec::new();
        for n in names {
            let n = n.as_ref();
            let add: Vec<ForgeKind> = if n.trim() == "all" {
                ForgeKind::ALL.to_vec()
            } else {
                vec![ForgeKind::parse(n)?]
            };
            for k in add {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_all_expands() {
        for k in ForgeKind::ALL {
            assert_eq!(ForgeKind::parse(k.name()), Ok(k));
        }
        assert_eq!(
            ForgeKind::parse_list(&["all"]).unwrap(),
            ForgeKind::ALL.to_vec()
        );
        assert_eq!(
            ForgeKind::parse_list(&["leave", "hello", "leave"]).unwrap(),
            vec![ForgeKind::Leave, ForgeKind::Hello]
        );
        let err = ForgeKind::parse("heartbeats").unwrap_err();
        assert!(
            err.contains("`heartbeats`") && err.contains("heartbeat,"),
            "{err}"
        );
        assert!(ForgeKind::parse_list::<&str>(&[]).is_err());
    }
}
