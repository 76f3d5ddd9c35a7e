//! The client front door's limits on a real node over loopback (issue 7 item 4): one
//! connection past `--max-connections` gets `too_many_connections` and is closed while the
//! node keeps answering; a connection that never logs in is closed after `--login-timeout`;
//! a mailbox larger than a connection's outbox reaches a fast reader whole, in order, once.

use chat_node::client::{Incoming, Session, SessionConfig};
use chat_node::events::{Event, EventRecord};
use chat_node::runtime::clients::{LOOPBACK_RESERVE, OUTBOX_LINES};
use chat_node::runtime::event_log::EventLog;
use chat_node::settings::{LogFormat, ServeArgs};
use clap::Parser;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

/// A one-node cluster on loopback with `extra` flags, on its own runtime.
struct TestNode {
    client_addr: String,
    events: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
    _runtime: tokio::runtime::Runtime,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(name: &str, extra: &[&str]) -> TestNode {
    let dir = std::env::temp_dir().join(format!("chat-node-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let client = free_tcp_port().to_string();
    let (peer, multicast) = (free_udp_port().to_string(), free_udp_port().to_string());
    let mut argv = vec![
        "chat-node",
        "--id",
        "1",
        "--cluster-size",
        "1",
        "--interface",
        "lo",
        "--client-port",
        &client,
        "--peer-port",
        &peer,
        "--multicast-port",
        &multicast,
        "--data-dir",
        dir.to_str().unwrap(),
        // A node refuses to start without a cluster secret (or --insecure).
        "--cluster-secret",
        "runtime_limits' cluster secret",
    ];
    argv.extend_from_slice(extra);
    let args = Cli::try_parse_from(argv).unwrap().serve;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = EventLog::in_memory(LogFormat::Json, events.clone());
    runtime.spawn(async move {
        if let Err(e) = chat_node::runtime::serve_with_events(args, log).await {
            eprintln!("serve failed: {e:#}");
        }
    });
    TestNode {
        client_addr: format!("127.0.0.1:{client}"),
        events,
        dir,
        _runtime: runtime,
    }
}

impl TestNode {
    fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .flat_map(|l| EventRecord::from_line_all(l))
            .map(|r| r.event)
            .collect()
    }

    async fn wait_for_leader(&self) {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if self
                .events()
                .iter()
                .any(|e| matches!(e, Event::LeaderElected { .. }))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no leader within 5 s");
    }

    fn session(&self, user: &str) -> Session {
        let mut config = SessionConfig::new(user, &format!("pw-{user}"));
        config.servers = vec![self.client_addr.clone()];
        Session::new(config)
    }
}

/// A raw connection: the read half as lines, and the write half.
async fn raw(
    addr: &str,
) -> (
    Lines<BufReader<OwnedReadHalf>>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (read, write) = stream.into_split();
    (BufReader::new(read).lines(), write)
}

/// The next line as JSON, or `None` once the server closed the connection.
async fn next_json(
    lines: &mut Lines<BufReader<OwnedReadHalf>>,
    within: Duration,
) -> Option<serde_json::Value> {
    let line = tokio::time::timeout(within, lines.next_line())
        .await
        .expect("a line or a close in time")
        .ok()
        .flatten()?;
    Some(serde_json::from_str(&line).unwrap())
}

#[test]
fn the_cap_refuses_the_excess_and_silent_connections_are_closed() {
    const CAP: usize = 2;
    let node = start(
        "limits",
        &["--max-connections", "2", "--login-timeout", "1s"],
    );
    let test = tokio::runtime::Runtime::new().unwrap();
    test.block_on(async {
        node.wait_for_leader().await;
        // From loopback the cap is CAP plus the operator's reserve.
        let mut held = Vec::new();
        for _ in 0..CAP + LOOPBACK_RESERVE {
            let (mut lines, write) = raw(&node.client_addr).await;
            let welcome = next_json(&mut lines, Duration::from_secs(2)).await.unwrap();
            assert_eq!(welcome["type"], "welcome", "{welcome}");
            held.push((lines, write, Instant::now()));
        }
        let (mut lines, _write) = raw(&node.client_addr).await;
        let refusal = next_json(&mut lines, Duration::from_secs(2)).await.unwrap();
        assert_eq!(refusal["code"], "too_many_connections", "{refusal}");
        assert!(
            next_json(&mut lines, Duration::from_secs(2))
                .await
                .is_none(),
            "a refused connection is closed"
        );

        // None of the held connections logs in: each gets `login_timeout` and is closed,
        // one login timeout after it connected (plus a tick), never much later.
        for (lines, _write, connected) in held.iter_mut() {
            let error = next_json(lines, Duration::from_secs(3))
                .await
                .expect("the login_timeout line before the close");
            assert_eq!(error["code"], "login_timeout", "{error}");
            assert!(next_json(lines, Duration::from_secs(1)).await.is_none());
            let after = connected.elapsed();
            assert!(
                after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
                "closed {after:?} after connecting, --login-timeout 1s"
            );
        }

        // Slots are free again: a fresh connection is served, status included.
        let (mut lines, mut write) = raw(&node.client_addr).await;
        assert_eq!(
            next_json(&mut lines, Duration::from_secs(2)).await.unwrap()["type"],
            "welcome"
        );
        write
            .write_all(b"{\"req\":1,\"op\":\"status\"}\n")
            .await
            .unwrap();
        let status = next_json(&mut lines, Duration::from_secs(2)).await.unwrap();
        assert_eq!(status["type"], "ok", "{status}");
        assert!(status["status"]["members"].is_array(), "{status}");
    });
    assert!(node.events().iter().any(|e| matches!(
        e,
        Event::InputRejected { source, reason, .. }
            if source == "client" && reason.starts_with("too_many_connections")
    )));
}

#[test]
fn a_mailbox_larger_than_the_outbox_reaches_a_fast_reader_whole() {
    // More stored messages than a connection's outbox holds: replayed whole only if the
    // server pages it (a page follows the reader's ack) instead of queueing it all at once.
    let count = OUTBOX_LINES + 100;
    let node = start("mailbox", &[]);
    let test = tokio::runtime::Runtime::new().unwrap();
    test.block_on(async {
        node.wait_for_leader().await;
        let mut bob = node.session("bob");
        bob.connect().await.unwrap();
        bob.logout().await.unwrap();
        let mut alice = node.session("alice");
        for i in 0..count {
            alice.send("bob", &format!("m{i}")).await.unwrap();
        }
        let mut bob = node.session("bob");
        bob.connect().await.unwrap();
        let mut seen = 0usize;
        while seen < count {
            let incoming = tokio::time::timeout(Duration::from_secs(10), bob.next_incoming())
                .await
                .unwrap_or_else(|_| panic!("stalled after {seen} of {count} messages"))
                .unwrap();
            match incoming {
                Incoming::Message(m) => {
                    assert_eq!(m.text, format!("m{seen}"), "in order, exactly once");
                    seen += 1;
                }
                Incoming::Reconnected { .. } => panic!("cut off after {seen} of {count}"),
                _ => {}
            }
        }
        assert_eq!(bob.reconnects(), 0);
    });
}
