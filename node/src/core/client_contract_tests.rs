//! The client protocol's promises as `docs/PROTOCOL.md` states them, pinned on the sans-IO
//! node (one lone leader, password work done inline): what a line with a `req` of the wrong
//! type gets, sending to yourself, a resent id with another text, `who`/`rooms` only on the
//! leader, a takeover telling and closing the old connection, and who receives presence lines
//! at a login, a logout, a takeover and the re-login after a failover. Each test names the
//! section of the document it pins; change both together.

use super::{Config, Input, Millis, Node, Output, Restored};
use crate::core::sessions::parse_line;
use crate::ids::{ConnId, NodeId, Role};
use crate::protocol::{ErrorCode, ErrorReply, OkReply, ServerLine};
use crate::settings::{ElectionKind, QuorumMode};

fn config() -> Config {
    Config {
        id: NodeId(1),
        cluster: "c".into(),
        cluster_size: 3,
        heartbeat_ms: 100,
        failure_timeout_ms: 500,
        election: ElectionKind::Lcr,
        quorum: QuorumMode::None,
        client_addr: "10.0.0.1:7070".into(),
        seed: 1,
        login_timeout_ms: crate::core::DEFAULT_LOGIN_TIMEOUT_MS,
        peer_key: crate::core::auth::PeerKey::from_secret(b"test secret, 16+ bytes"),
        peer_addr: "10.0.0.1:7400".into(),
        incarnation: 1,
    }
}

/// A node without quorum elects itself after listening one failure timeout.
fn elect(mut node: Node, mut now: Millis) -> (Node, Millis) {
    while node.role() != Role::Leader {
        now += 10;
        node.handle(now, Input::Tick);
        assert!(now < 10_000, "a lone node with quorum none elects itself");
    }
    (node, now)
}

fn lone_leader() -> (Node, Millis) {
    elect(Node::new(config(), Restored::default(), 0), 0)
}

/// Feeds `input` and answers every password job at once, as the simulator does.
fn handle(node: &mut Node, now: Millis, input: Input) -> Vec<Output> {
    let out = node.handle(now, input);
    crate::sim::credentials::answer_all(node, now, out)
}

fn connect(node: &mut Node, now: Millis, conn: u64) {
    handle(
        node,
        now,
        Input::ClientConnected {
            conn: ConnId(conn),
            peer: format!("peer-{conn}"),
        },
    );
}

fn send_line(node: &mut Node, now: Millis, conn: u64, line: &str) -> Vec<Output> {
    handle(
        node,
        now,
        Input::ClientLine {
            conn: ConnId(conn),
            line: line.to_string(),
        },
    )
}

fn login(user: &str, session: Option<&str>) -> String {
    let mut v = serde_json::json!({"req": 1, "op": "login", "user": user, "password": "pw"});
    if let Some(t) = session {
        v["session"] = t.into();
    }
    v.to_string()
}

/// Connects `conn` and logs `user` in there; returns the session token.
fn log_in(node: &mut Node, now: Millis, conn: u64, user: &str) -> String {
    connect(node, now, conn);
    let out = send_line(node, now, conn, &login(user, None));
    ok_to(&out, conn)
        .and_then(|ok| ok.session)
        .unwrap_or_else(|| panic!("{user} logged in: {:?}", lines_to(&out, conn)))
}

fn lines_to(out: &[Output], to: u64) -> Vec<ServerLine> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToClient { conn, line } if conn.0 == to => serde_json::from_str(line).ok(),
            _ => None,
        })
        .collect()
}

fn ok_to(out: &[Output], to: u64) -> Option<OkReply> {
    lines_to(out, to).into_iter().find_map(|l| match l {
        ServerLine::Ok(r) => Some(r),
        _ => None,
    })
}

fn error_to(out: &[Output], to: u64) -> Option<ErrorReply> {
    lines_to(out, to).into_iter().find_map(|l| match l {
        ServerLine::Error(e) => Some(e),
        _ => None,
    })
}

/// Every presence line in `out`: (recipient connection, user, online).
fn presence(out: &[Output]) -> Vec<(u64, String, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToClient { conn, line } => match serde_json::from_str(line).ok()? {
                ServerLine::Presence { user, online } => Some((conn.0, user, online)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn closed(out: &[Output]) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::CloseClient { conn } => Some(conn.0),
            _ => None,
        })
        .collect()
}

fn messages_to(out: &[Output], to: u64) -> Vec<(String, String)> {
    lines_to(out, to)
        .into_iter()
        .filter_map(|l| match l {
            ServerLine::Message(m) => Some((m.id, m.text)),
            _ => None,
        })
        .collect()
}

/// Section 1: a `req` that is not an unsigned integer makes the whole line unreadable, so
/// the `bad_request` comes back without `req` (a line whose `req` could be read keeps it).
#[test]
fn a_req_of_the_wrong_type_gets_an_error_without_req() {
    for line in [
        r#"{"req":"7","op":"ping"}"#,
        r#"{"req":-1,"op":"ping"}"#,
        r#"{"req":1.5,"op":"ping"}"#,
    ] {
        let (req, _) = parse_line(line).expect_err(line);
        assert_eq!(req, None, "{line}");
    }
    let (mut node, now) = lone_leader();
    connect(&mut node, now, 1);
    let out = send_line(&mut node, now, 1, r#"{"req":"7","op":"ping"}"#);
    let e = error_to(&out, 1).expect("an error line");
    assert_eq!((e.code, e.req), (ErrorCode::BadRequest, None));
    let out = send_line(&mut node, now, 1, r#"{"req":7,"op":"fly"}"#);
    let e = error_to(&out, 1).expect("an error line");
    assert_eq!((e.code, e.req), (ErrorCode::BadRequest, Some(7)));
    // `"req": null` is no `req` at all: the request is served, the reply has none.
    let out = send_line(&mut node, now, 1, r#"{"req":null,"op":"ping"}"#);
    assert_eq!(ok_to(&out, 1).map(|ok| ok.req), Some(None));
}

/// Section 4: sending to yourself is allowed and delivered like any private message.
#[test]
fn sending_to_yourself_is_allowed() {
    let (mut node, now) = lone_leader();
    log_in(&mut node, now, 1, "alice");
    let out = send_line(
        &mut node,
        now,
        1,
        r#"{"req":2,"op":"send","to":"alice","id":"m1","text":"note to self"}"#,
    );
    let ok = ok_to(&out, 1).expect("acknowledged");
    assert!(ok.index.is_some() && !ok.duplicate);
    assert_eq!(
        messages_to(&out, 1),
        vec![("m1".to_string(), "note to self".to_string())]
    );
}

/// Section 4: ids are unique per sender across `send` and `post`; a resend of an id with a
/// different text (or another op) keeps the first commit: `duplicate: true` with the first
/// `index` (and `room_seq`), nothing delivered again.
#[test]
fn a_resent_id_with_another_text_keeps_the_first_and_answers_duplicate() {
    let (mut node, now) = lone_leader();
    log_in(&mut node, now, 1, "alice");
    log_in(&mut node, now, 2, "bob");
    let first = send_line(
        &mut node,
        now,
        1,
        r#"{"req":2,"op":"send","to":"bob","id":"m1","text":"first"}"#,
    );
    let index = ok_to(&first, 1).and_then(|ok| ok.index).expect("index");
    assert_eq!(messages_to(&first, 2).len(), 1);
    let again = send_line(
        &mut node,
        now,
        1,
        r#"{"req":3,"op":"send","to":"bob","id":"m1","text":"second"}"#,
    );
    let ok = ok_to(&again, 1).expect("acknowledged");
    assert!(ok.duplicate);
    assert_eq!(ok.index, Some(index));
    assert!(messages_to(&again, 2).is_empty(), "nothing delivered again");
    let inbox: Vec<_> = node.chat().inbox_after("bob", 0).collect();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].text, "first");
    // Another recipient, even one that does not exist: still the first message.
    let other = send_line(
        &mut node,
        now,
        1,
        r#"{"req":9,"op":"send","to":"nobody","id":"m1","text":"first"}"#,
    );
    assert_eq!(
        ok_to(&other, 1).map(|ok| (ok.duplicate, ok.index)),
        Some((true, Some(index)))
    );
    // The same id as a room post is the same message: a duplicate of the send.
    send_line(&mut node, now, 1, r#"{"req":4,"op":"join","room":"r"}"#);
    let post = send_line(
        &mut node,
        now,
        1,
        r#"{"req":5,"op":"post","room":"r","id":"m1","text":"third"}"#,
    );
    let ok = ok_to(&post, 1).expect("acknowledged");
    assert!(ok.duplicate);
    assert_eq!((ok.index, ok.room_seq), (Some(index), None));
}

/// Section 4: `who` and `rooms` need no login but only the leader answers them; a follower
/// says `not_leader` (only `status` and `ping` are answered everywhere).
#[test]
fn who_and_rooms_are_answered_by_the_leader_only() {
    let mut follower = Node::new(
        Config {
            quorum: QuorumMode::Majority,
            ..config()
        },
        Restored::default(),
        0,
    );
    connect(&mut follower, 0, 1);
    for (req, op) in [(1, "who"), (2, "rooms")] {
        let out = send_line(
            &mut follower,
            1,
            1,
            &format!(r#"{{"req":{req},"op":"{op}"}}"#),
        );
        let e = error_to(&out, 1).unwrap_or_else(|| panic!("{op} refused"));
        assert_eq!((e.code, e.req), (ErrorCode::NotLeader, Some(req)), "{op}");
    }
    for (req, op) in [(3, "status"), (4, "ping")] {
        let out = send_line(
            &mut follower,
            1,
            1,
            &format!(r#"{{"req":{req},"op":"{op}"}}"#),
        );
        assert_eq!(ok_to(&out, 1).map(|ok| ok.req), Some(Some(req)), "{op}");
    }

    let (mut leader, now) = lone_leader();
    log_in(&mut leader, now, 1, "alice");
    connect(&mut leader, now, 2); // not logged in
    let out = send_line(&mut leader, now, 2, r#"{"req":5,"op":"who"}"#);
    assert_eq!(
        ok_to(&out, 2).and_then(|ok| ok.users),
        Some(vec!["alice".into()])
    );
    let out = send_line(&mut leader, now, 2, r#"{"req":6,"op":"rooms"}"#);
    assert_eq!(ok_to(&out, 2).and_then(|ok| ok.rooms), Some(vec![]));
}

/// Section 4: a login with the user's password and current token moves the session to the new
/// connection; the old one is sent `session_taken_over` (no `req`) and then closed. Nobody
/// gets a presence line, and the old connection's close does not log the user out.
#[test]
fn a_takeover_tells_the_old_connection_then_closes_it_without_presence() {
    let (mut node, now) = lone_leader();
    let token = log_in(&mut node, now, 1, "alice");
    log_in(&mut node, now, 3, "bob");
    connect(&mut node, now, 2);
    let out = send_line(&mut node, now, 2, &login("alice", Some(&token)));
    let ok = ok_to(&out, 2).expect("taken over");
    assert_eq!(ok.session.as_deref(), Some(token.as_str()));
    let told = out.iter().position(|o| {
        matches!(o, Output::ToClient { conn, line } if conn.0 == 1 && line.contains("session_taken_over"))
    });
    let close = out
        .iter()
        .position(|o| matches!(o, Output::CloseClient { conn } if conn.0 == 1));
    assert!(
        matches!((told, close), (Some(t), Some(c)) if t < c),
        "told, then closed: {out:?}"
    );
    let e = error_to(&out, 1).expect("the notice");
    assert_eq!((e.code, e.req), (ErrorCode::SessionTakenOver, None));
    assert!(presence(&out).is_empty(), "{:?}", presence(&out));
    let out = handle(
        &mut node,
        now,
        Input::ClientDisconnected { conn: ConnId(1) },
    );
    assert!(presence(&out).is_empty());
    assert_eq!(node.chat().online_users(), vec!["alice", "bob"]);
}

/// Section 5: a login and a logout (or a closed connection) are announced to every other
/// logged-in connection, whether or not they share a room; not to the user itself, not to a
/// connection that has not logged in.
#[test]
fn presence_goes_to_every_other_logged_in_user() {
    let (mut node, now) = lone_leader();
    log_in(&mut node, now, 1, "alice");
    send_line(&mut node, now, 1, r#"{"req":2,"op":"join","room":"r"}"#);
    log_in(&mut node, now, 2, "bob"); // in no room
    connect(&mut node, now, 9); // never logs in

    connect(&mut node, now, 3);
    let out = send_line(&mut node, now, 3, &login("carol", None));
    let mut seen = presence(&out);
    seen.sort();
    assert_eq!(
        seen,
        vec![(1, "carol".into(), true), (2, "carol".into(), true)]
    );

    let out = send_line(&mut node, now, 3, r#"{"req":3,"op":"logout"}"#);
    let mut seen = presence(&out);
    seen.sort();
    assert_eq!(
        seen,
        vec![(1, "carol".into(), false), (2, "carol".into(), false)]
    );
    assert_eq!(closed(&out), vec![3]);

    let out = handle(
        &mut node,
        now,
        Input::ClientDisconnected { conn: ConnId(2) },
    );
    assert_eq!(presence(&out), vec![(1, "bob".into(), false)]);
}

/// Sections 4 and 5 across a failover: the new leader's first entry takes every user offline
/// without presence lines; each re-login is a fresh login (a new token even when the old one
/// is presented) announced to the users already back.
#[test]
fn a_failover_relogin_is_a_new_session_announced_by_presence() {
    let (mut old, now) = lone_leader();
    let alice_token = log_in(&mut old, now, 1, "alice");
    log_in(&mut old, now, 2, "bob");
    let restored = Restored {
        epoch: old.epoch(),
        voted_for: Some(NodeId(1)),
        log: (1..=old.status().last_index)
            .filter_map(|i| old.log_entry(i).cloned())
            .collect(),
        ..Restored::default()
    };
    let (mut new, now) = elect(Node::new(config(), restored, now), now);
    assert!(new.epoch() > old.epoch());
    // Let the new epoch's first entry apply.
    let now = now + 10;
    let out = handle(&mut new, now, Input::Tick);
    assert!(presence(&out).is_empty());
    assert!(new.chat().online_users().is_empty(), "everyone is offline");

    log_in(&mut new, now, 12, "bob");
    connect(&mut new, now, 11);
    let out = send_line(&mut new, now, 11, &login("alice", Some(&alice_token)));
    let ok = ok_to(&out, 11).expect("logged in on the new leader");
    assert_ne!(
        ok.session.as_deref(),
        Some(alice_token.as_str()),
        "a new token"
    );
    assert_eq!(presence(&out), vec![(12, "alice".into(), true)]);
}

/// Section 4: a second `login` on a connection whose first is still being checked gets
/// `bad_request`; joining a room twice is `ok`.
#[test]
fn a_login_in_progress_refuses_another_and_join_is_idempotent() {
    let (mut node, now) = lone_leader();
    connect(&mut node, now, 1);
    // No password work is done yet: the first login is in progress.
    let first = node.handle(
        now,
        Input::ClientLine {
            conn: ConnId(1),
            line: login("alice", None),
        },
    );
    assert!(first.iter().any(|o| matches!(o, Output::Credential(_))));
    let out = send_line(&mut node, now, 1, &login("alice", None));
    let e = error_to(&out, 1).expect("refused");
    assert_eq!((e.code, e.req), (ErrorCode::BadRequest, Some(1)));

    log_in(&mut node, now, 2, "bob");
    for req in [2, 3] {
        let out = send_line(
            &mut node,
            now,
            2,
            &format!(r#"{{"req":{req},"op":"join","room":"r"}}"#),
        );
        assert_eq!(ok_to(&out, 2).map(|ok| ok.req), Some(Some(req)));
    }
}
