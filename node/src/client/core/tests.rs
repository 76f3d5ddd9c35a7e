//! The client core driven by hand: no sockets, no clock.

use super::*;
use serde_json::{json, Value};

fn core(servers: &[&str]) -> ClientCore {
    let mut config = SessionConfig::new("alice", "pw");
    config.servers = servers.iter().map(|s| s.to_string()).collect();
    ClientCore::new(config)
}

/// Everything the core output so far.
fn drain(core: &mut ClientCore) -> Vec<Output> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn connects(out: &[Output]) -> Vec<(LinkId, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Connect { link, addr } => Some((*link, addr.clone())),
            _ => None,
        })
        .collect()
}

fn sent(out: &[Output]) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { line, .. } => serde_json::from_str(line).ok(),
            _ => None,
        })
        .collect()
}

fn done(out: &[Output]) -> Vec<(OpId, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Done { op, result } => Some((*op, result.is_ok())),
            _ => None,
        })
        .collect()
}

fn welcome(node: u64, role: &str, leader_addr: Option<&str>) -> String {
    let mut w = json!({"type":"welcome","node":node,"cluster":"faultline","version":2,"role":role});
    if let Some(addr) = leader_addr {
        w["leader_addr"] = addr.into();
    }
    w.to_string()
}

/// Opens the core's next connection, logs in there; returns the link.
fn log_in(core: &mut ClientCore, now: Millis, node: u64) -> LinkId {
    let out = drain(core);
    let (link, _) = *connects(&out).last().expect("a connect");
    core.handle_line(now, link, &welcome(node, "leader", None));
    let login = sent(&drain(core)).pop().expect("a login");
    assert_eq!(login["op"], "login");
    core.handle_line(
        now,
        link,
        &json!({"type":"ok","req":login["req"],"mailbox":0,"session":"t0k"}).to_string(),
    );
    link
}

#[test]
fn a_follower_welcome_redirects_to_the_leader_when_the_leader_is_preferred() {
    let mut c = core(&["a:1", "b:1"]);
    c.connect(0, false);
    let out = drain(&mut c);
    assert_eq!(connects(&out)[0].1, "a:1");
    let link = connects(&out)[0].0;
    c.handle_line(1, link, &welcome(1, "follower", Some("b:1")));
    let out = drain(&mut c);
    assert!(matches!(out[0], Output::Close { link: l } if l == link));
    assert_eq!(connects(&out)[0].1, "b:1");
    // Without the preference the follower serves: the login goes there.
    let mut config = c.config().clone();
    config.prefer_leader = false;
    let mut c = ClientCore::new(config);
    c.connect(0, false);
    let link = connects(&drain(&mut c))[0].0;
    c.handle_line(1, link, &welcome(1, "follower", Some("b:1")));
    assert_eq!(sent(&drain(&mut c))[0]["op"], "login");
}

#[test]
fn a_message_is_retried_with_its_id_after_unavailable_and_after_a_broken_connection() {
    let mut c = core(&["a:1", "b:1"]);
    let request = Request::Send {
        to: "bob".into(),
        id: "x-1".into(),
        text: "hi".into(),
    };
    let op = c.submit(0, request);
    let link = log_in(&mut c, 1, 1);
    let first = sent(&drain(&mut c));
    assert_eq!(first[0]["id"], "x-1");
    // `unavailable`: the same request again on the same connection, 100 ms later.
    let error =
        json!({"type":"error","req":first[0]["req"],"code":"unavailable","message":"electing"});
    c.handle_line(10, link, &error.to_string());
    assert!(sent(&drain(&mut c)).is_empty());
    assert_eq!(c.poll_timeout(), Some(10 + UNAVAILABLE_PAUSE_MS));
    c.handle_timeout(10 + UNAVAILABLE_PAUSE_MS);
    let second = sent(&drain(&mut c));
    assert_eq!(second[0]["id"], "x-1");
    // The connection breaks: the core connects elsewhere first (a:1 just failed) and
    // resends the message with its id after the login.
    c.handle_closed(200, link);
    let out = drain(&mut c);
    assert_eq!(connects(&out)[0].1, "b:1");
    c.out.extend(out);
    let link = log_in(&mut c, 201, 2);
    let out = drain(&mut c);
    let third = sent(&out);
    assert_eq!(
        (third[0]["op"].clone(), third[0]["id"].clone()),
        (json!("send"), json!("x-1"))
    );
    c.handle_line(
        202,
        link,
        &json!({"type":"ok","req":third[0]["req"],"index":7,"duplicate":true}).to_string(),
    );
    assert_eq!(done(&drain(&mut c)), vec![(op, true)]);
    assert_eq!(c.reconnects(), 1);
}

#[test]
fn resent_messages_are_dropped_and_acked_in_batches() {
    let mut c = core(&["a:1"]);
    c.connect(0, false);
    let link = log_in(&mut c, 1, 1);
    drain(&mut c);
    for useq in [1, 2, 2, 3] {
        let m = json!({"type":"message","useq":useq,"from":"bob","id":format!("b-{useq}"),"text":"t","index":useq});
        c.handle_line(2, link, &m.to_string());
    }
    let out = drain(&mut c);
    let delivered = out
        .iter()
        .filter(|o| matches!(o, Output::Incoming(Incoming::Message(_))))
        .count();
    assert_eq!((delivered, c.duplicates_dropped()), (3, 1));
    assert!(sent(&out).is_empty(), "fewer than a batch: no ack yet");
    c.flush_acks();
    let ack = sent(&drain(&mut c));
    assert_eq!(
        (ack[0]["op"].clone(), ack[0]["upto"].clone()),
        (json!("ack"), json!(3))
    );
    // That ack was never answered and the connection broke: the next login acks again.
    c.handle_closed(3, link);
    c.connect(3, false);
    log_in(&mut c, 4, 1);
    let after = sent(&drain(&mut c));
    assert_eq!(after[0]["upto"], 3);
}

#[test]
fn no_server_ends_the_operation_at_its_deadline_after_backing_off() {
    let mut c = core(&["a:1"]);
    let op = c.submit(0, Request::Who);
    let mut now = 0;
    let mut tries = 0;
    loop {
        let out = drain(&mut c);
        if let Some(&(id, ok)) = done(&out).first() {
            assert_eq!((id, ok), (op, false));
            break;
        }
        for (link, _) in connects(&out) {
            tries += 1;
            c.handle_closed(now, link); // refused
        }
        now = c.poll_timeout().unwrap_or(now + 1);
        c.handle_timeout(now);
    }
    assert!(now <= 10_000, "ended at the deadline, not later: {now}");
    // 50, 100, 200, 400, then 500 ms apart: about 24 tries in 10 s.
    assert!((15..=30).contains(&tries), "{tries} tries");
}

#[test]
fn a_welcome_with_an_assignment_moves_the_client_once() {
    let mut c = core(&["a:1", "b:1", "c:1"]);
    let mut config = c.config().clone();
    config.prefer_leader = false;
    c = ClientCore::new(config.clone());
    c.connect(0, false);
    let link = connects(&drain(&mut c))[0].0;
    let assigned = |node: u64, to: &str| {
        let mut w: Value = serde_json::from_str(&welcome(node, "follower", Some("b:1"))).unwrap();
        w["assigned_addr"] = to.into();
        w.to_string()
    };
    // a:1 is busier than the least-loaded server: go to c:1 (not to the leader b:1).
    c.handle_line(1, link, &assigned(1, "c:1"));
    let out = drain(&mut c);
    assert!(matches!(out[0], Output::Close { link: l } if l == link));
    let (link, addr) = connects(&out)[0].clone();
    assert_eq!(addr, "c:1");
    // c:1's own view names another server: no second move, the login goes here.
    c.handle_line(2, link, &assigned(3, "a:1"));
    let login = sent(&drain(&mut c)).pop().expect("a login on c:1");
    assert_eq!(login["op"], "login");
    // With the assignment not followed, the first server that serves keeps the client.
    config.follow_assignment = false;
    let mut c = ClientCore::new(config);
    c.connect(0, false);
    let link = connects(&drain(&mut c))[0].0;
    c.handle_line(1, link, &assigned(1, "c:1"));
    assert_eq!(sent(&drain(&mut c)).pop().expect("a login")["op"], "login");
}

#[test]
fn a_client_welcomed_before_any_leader_reconnects_for_an_assignment_instead_of_waiting() {
    let mut config = SessionConfig::new("alice", "pw");
    config.servers = vec!["a:1".into(), "b:1".into()];
    config.prefer_leader = false;
    let mut c = ClientCore::new(config);
    c.connect(0, false);
    let link = connects(&drain(&mut c))[0].0;
    c.handle_line(1, link, &welcome(1, "follower", None));
    let login = sent(&drain(&mut c)).pop().expect("a login");
    let unavailable =
        json!({"type":"error","req":login["req"],"code":"unavailable","message":"electing"});
    c.handle_line(2, link, &unavailable.to_string());
    let out = drain(&mut c);
    assert!(
        matches!(out[0], Output::Close { link: l } if l == link),
        "{out:?}"
    );
    // After the pause it asks the same server again, on a new connection.
    c.handle_timeout(2 + UNAVAILABLE_PAUSE_MS);
    let out = drain(&mut c);
    assert_eq!(connects(&out)[0].1, "a:1");
}
