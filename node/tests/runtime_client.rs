//! The client library against small fake servers: redirects, retry with the same message id
//! across a broken connection and `unavailable`, dedup of re-sent messages, batched acks,
//! `since` at re-login, and framing of oversized lines by the runtime's client server.

use chat_node::client::{ClientError, Incoming, Session, SessionConfig, SessionEvent};
use chat_node::protocol::ErrorCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the fake server does after a line.
enum Act {
    Reply(Value),
    Close,
}

type Script = Arc<dyn Fn(&Value, usize) -> Vec<Act> + Send + Sync>;

/// A fake server that writes `welcome`, records every line it receives (across all
/// connections) and answers with `script(line, n)`, n counting lines from 0.
struct Fake {
    addr: String,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Fake {
    fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }
    fn ops(&self, op: &str) -> Vec<Value> {
        self.seen().into_iter().filter(|v| v["op"] == op).collect()
    }
}

async fn fake(welcome: Value, script: Script) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (log, script, welcome) = (log.clone(), script.clone(), welcome.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let hello = format!("{welcome}\n");
                if write.write_all(hello.as_bytes()).await.is_err() {
                    return;
                }
                while let Ok(Some(line)) = lines.next_line().await {
                    let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(value.clone());
                        log.len() - 1
                    };
                    for act in script(&value, n) {
                        match act {
                            Act::Reply(v) => {
                                let text = format!("{v}\n");
                                if write.write_all(text.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                            Act::Close => return,
                        }
                    }
                }
            });
        }
    });
    Fake { addr, seen }
}

fn welcome(node: u64, role: &str, leader_addr: Option<&str>) -> Value {
    let mut w = json!({"type":"welcome","node":node,"cluster":"faultline","version":2,"role":role});
    if let Some(addr) = leader_addr {
        w["leader_addr"] = json!(addr);
        w["leader"] = json!(9);
    }
    w
}

fn ok(req: &Value) -> Value {
    json!({"type":"ok","req":req["req"]})
}

fn config(user: &str, servers: Vec<String>) -> SessionConfig {
    let mut c = SessionConfig::new(user, &format!("pw-{user}"));
    c.servers = servers;
    c.request_timeout = Duration::from_millis(500);
    c.retry_deadline = Duration::from_secs(5);
    c
}

/// A leader that accepts logins and acks sends with index 7.
fn leader_script() -> Script {
    Arc::new(|line, _| match line["op"].as_str() {
        Some("login") => vec![Act::Reply(
            json!({"type":"ok","req":line["req"],"mailbox":0}),
        )],
        Some("send") | Some("post") => {
            vec![Act::Reply(json!({"type":"ok","req":line["req"],"index":7}))]
        }
        Some("ack") => vec![Act::Reply(ok(line))],
        _ => vec![Act::Reply(ok(line))],
    })
}

#[tokio::test]
async fn follows_the_welcome_hint_and_not_leader_redirects_to_the_leader() {
    let leader = fake(welcome(9, "leader", None), leader_script()).await;
    // A follower that says where the leader is in its welcome line.
    let hinting = fake(welcome(1, "follower", Some(&leader.addr)), leader_script()).await;
    // A follower whose welcome knows nothing but whose reply redirects.
    let leader_addr = leader.addr.clone();
    let redirecting = fake(
        welcome(2, "follower", None),
        Arc::new(move |line, _| {
            vec![Act::Reply(
                json!({"type":"error","req":line["req"],"code":"not_leader",
                "message":"ask the leader","leader_addr":leader_addr}),
            )]
        }),
    )
    .await;

    for first in [&hinting, &redirecting] {
        let mut session = Session::new(config("alice", vec![first.addr.clone()]));
        let outcome = session.send("bob", "hi").await.unwrap();
        assert_eq!(outcome.index, Some(7));
        assert_eq!(session.server(), Some(leader.addr.as_str()));
        assert_eq!(session.server_node().map(|n| n.0), Some(9));
    }
    assert!(hinting.ops("login").is_empty(), "the hint saves a login");
    assert_eq!(redirecting.ops("login").len(), 1);
    assert_eq!(leader.ops("send").len(), 2);
}

#[tokio::test]
async fn retries_with_the_same_message_id_after_a_crash_and_unavailable() {
    // The first send kills the connection without a reply (a leader crash); the second gets
    // `unavailable` (an election is running); the third commits.
    let sends = Arc::new(Mutex::new(0usize));
    let counter = sends.clone();
    let leader = fake(
        welcome(9, "leader", None),
        Arc::new(move |line, _| match line["op"].as_str() {
            Some("login") => vec![Act::Reply(
                json!({"type":"ok","req":line["req"],"mailbox":0,"session":"0123456789abcdef0123456789abcdef"}),
            )],
            Some("send") => {
                let mut n = counter.lock().unwrap();
                *n += 1;
                match *n {
                    1 => vec![Act::Close],
                    2 => vec![Act::Reply(json!({"type":"error","req":line["req"],
                        "code":"unavailable","message":"electing"}))],
                    _ => vec![Act::Reply(
                        json!({"type":"ok","req":line["req"],"index":12,"duplicate":true}),
                    )],
                }
            }
            _ => vec![Act::Reply(ok(line))],
        }),
    )
    .await;

    let events: Arc<Mutex<Vec<SessionEvent>>> = Arc::default();
    let record = events.clone();
    let mut session = Session::new(config("alice", vec![leader.addr.clone()]));
    session.set_observer(Arc::new(move |_, e| record.lock().unwrap().push(e.clone())));
    let outcome = session.send("bob", "hello").await.unwrap();

    assert_eq!(outcome.attempts, 3);
    assert_eq!(outcome.index, Some(12));
    assert!(outcome.duplicate);
    let ids: Vec<Value> = leader.ops("send").iter().map(|v| v["id"].clone()).collect();
    assert_eq!(ids.len(), 3);
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "same id on every retry: {ids:?}"
    );
    assert_eq!(ids[0].as_str(), Some(outcome.id.as_str()));
    // Logged in again after the lost connection with the password and the token the server
    // issued; `unavailable` is retried on the same connection (the server still serves: a
    // leader change costs no reconnect).
    let logins = leader.ops("login");
    assert_eq!(logins.len(), 2);
    assert!(logins.iter().all(|l| l["password"] == "pw-alice"));
    assert_eq!(
        logins[0].get("session"),
        None,
        "no token before the server issues one"
    );
    assert!(logins[1..]
        .iter()
        .all(|l| l["session"] == "0123456789abcdef0123456789abcdef"));
    let attempts = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, SessionEvent::Attempt { .. }))
        .count();
    assert_eq!(attempts, 3);
    // A new session (a restarted client) never reuses the old ids.
    let mut restarted = Session::new(config("alice", vec![leader.addr.clone()]));
    assert_ne!(restarted.next_message_id(), outcome.id);
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let leader = fake(
        welcome(9, "leader", None),
        Arc::new(|line, _| match line["op"].as_str() {
            Some("login") => vec![Act::Reply(
                json!({"type":"ok","req":line["req"],"mailbox":0}),
            )],
            _ => vec![Act::Reply(json!({"type":"error","req":line["req"],
                "code":"unknown_user","message":"nobody called zed"}))],
        }),
    )
    .await;
    let mut session = Session::new(config("alice", vec![leader.addr.clone()]));
    let err = session.send("zed", "hi").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownUser));
    assert_eq!(leader.ops("send").len(), 1);
}

#[tokio::test]
async fn drops_resent_messages_acks_them_and_resumes_since_the_highest() {
    let msg = |useq: u64| {
        Act::Reply(
            json!({"type":"message","useq":useq,"from":"bob","id":format!("b-{useq}"),
            "text":format!("m{useq}"),"index":useq + 10}),
        )
    };
    let logins = Arc::new(Mutex::new(0usize));
    let counter = logins.clone();
    let leader = fake(
        welcome(9, "leader", None),
        Arc::new(move |line, _| match line["op"].as_str() {
            Some("login") => {
                let mut n = counter.lock().unwrap();
                *n += 1;
                let mut acts = vec![Act::Reply(
                    json!({"type":"ok","req":line["req"],"mailbox":2}),
                )];
                if *n == 1 {
                    // useq 2 arrives twice (a re-send after a server-side retry).
                    acts.extend([msg(1), msg(2), msg(2), msg(3), Act::Close]);
                } else {
                    // After the reconnect the server re-sends 3 and then 4.
                    acts.extend([msg(3), msg(4)]);
                }
                acts
            }
            _ => vec![Act::Reply(ok(line))],
        }),
    )
    .await;

    let mut session = Session::new(config("carol", vec![leader.addr.clone()]));
    session.connect().await.unwrap();
    let mut texts = Vec::new();
    while texts.len() < 4 {
        let next = tokio::time::timeout(Duration::from_secs(5), session.next_incoming())
            .await
            .expect("messages arrive")
            .unwrap();
        if let Incoming::Message(m) = next {
            texts.push(m.text);
        }
    }
    assert_eq!(texts, vec!["m1", "m2", "m3", "m4"]);
    assert_eq!(session.duplicates_dropped(), 2);
    assert_eq!(session.highest_useq(), 4);
    assert_eq!(session.reconnects(), 1);

    let logins = leader.ops("login");
    assert_eq!(
        logins[0].get("since"),
        None,
        "a fresh session asks for its mailbox"
    );
    assert_eq!(logins[1]["since"], json!(3));
    // The first connection acked what it had before it broke, or the second did.
    let acks: Vec<u64> = leader
        .ops("ack")
        .iter()
        .filter_map(|a| a["upto"].as_u64())
        .collect();
    assert!(acks.iter().any(|&upto| upto >= 3), "acks: {acks:?}");
}

#[tokio::test]
async fn gives_up_at_the_deadline_when_no_server_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap().to_string();
    drop(listener);
    let mut c = config("dave", vec![dead.clone()]);
    c.retry_deadline = Duration::from_millis(300);
    let mut session = Session::new(c);
    match session.who().await {
        Err(ClientError::NoServer(tried)) => assert!(tried.contains(&dead)),
        other => panic!("expected NoServer, got {other:?}"),
    }
}

/// Issue 8 item 7: after the connection to a leader breaks, the reconnect goes to another
/// server first, even though the configured list (like a stale discovery answer) names the
/// failed address first; the failed one is not dropped, only tried later.
#[tokio::test]
async fn a_just_failed_address_is_tried_after_the_others() {
    let sends = Arc::new(Mutex::new(0usize));
    let counter = sends.clone();
    // The first leader dies (closes) at the first send, and would again at every send.
    let failing = fake(
        welcome(1, "leader", None),
        Arc::new(move |line, _| match line["op"].as_str() {
            Some("login") => vec![Act::Reply(
                json!({"type":"ok","req":line["req"],"mailbox":0}),
            )],
            Some("send") => {
                *counter.lock().unwrap() += 1;
                vec![Act::Close]
            }
            _ => vec![Act::Reply(ok(line))],
        }),
    )
    .await;
    let fresh = fake(welcome(2, "leader", None), leader_script()).await;
    let mut session = Session::new(config(
        "alice",
        vec![failing.addr.clone(), fresh.addr.clone()],
    ));
    let outcome = session.send("bob", "hello").await.unwrap();
    assert_eq!(outcome.attempts, 2);
    assert_eq!(
        *sends.lock().unwrap(),
        1,
        "the failed address is not retried first"
    );
    assert_eq!(failing.ops("login").len(), 1);
    assert_eq!(fresh.ops("send").len(), 1);
    assert_eq!(
        fresh.ops("send")[0]["id"].as_str(),
        Some(outcome.id.as_str())
    );
}

/// A `session_taken_over` notice ends the session: the client does not log in again on its
/// own (it would take the session back from the other connection, again and again), until
/// the caller asks with `connect`.
#[tokio::test]
async fn a_taken_over_session_does_not_log_in_again() {
    // Every login is taken over at once by "another client".
    let leader = fake(
        welcome(9, "leader", None),
        Arc::new(|line, _| match line["op"].as_str() {
            Some("login") => vec![
                Act::Reply(json!({"type":"ok","req":line["req"],"mailbox":0,
                    "session":"0123456789abcdef0123456789abcdef"})),
                Act::Reply(json!({"type":"error","code":"session_taken_over",
                    "message":"another login took the session over"})),
                Act::Close,
            ],
            _ => vec![Act::Reply(ok(line))],
        }),
    )
    .await;
    let mut session = Session::new(config("alice", vec![leader.addr.clone()]));
    session.connect().await.unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(5), session.next_incoming())
        .await
        .expect("in time")
        .unwrap();
    assert!(
        matches!(&notice, Incoming::Notice(e) if e.code == ErrorCode::SessionTakenOver),
        "{notice:?}"
    );
    let err = tokio::time::timeout(Duration::from_secs(5), session.next_incoming())
        .await
        .expect("in time")
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::SessionTakenOver));
    let err = session.send("bob", "hi").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::SessionTakenOver));
    assert_eq!(leader.ops("login").len(), 1, "no login of its own accord");
    assert!(leader.ops("send").is_empty());
    // The caller may decide to take the session back.
    session.connect().await.unwrap();
    assert_eq!(leader.ops("login").len(), 2);
}
