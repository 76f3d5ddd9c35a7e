//! The whole runtime in-process on the loopback interface: a one-node cluster serves the
//! client library, answers discovery, survives a bad line, persists its log and replays it
//! after a crash (the runtime is dropped without a graceful leave).

use chat_node::client::{discover_at, Incoming, Session, SessionConfig};
use chat_node::events::{Event, EventRecord};
use chat_node::ids::Role;
use chat_node::protocol::MAX_LINE_BYTES;
use chat_node::runtime::event_log::EventLog;
use chat_node::settings::{LogFormat, ServeArgs};
use clap::Parser;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

struct Ports {
    client: u16,
    peer: u16,
    multicast: u16,
}

fn free_ports() -> Ports {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp1 = UdpSocket::bind("0.0.0.0:0").unwrap();
    let udp2 = UdpSocket::bind("0.0.0.0:0").unwrap();
    Ports {
        client: tcp.local_addr().unwrap().port(),
        peer: udp1.local_addr().unwrap().port(),
        multicast: udp2.local_addr().unwrap().port(),
    }
}

/// Starts a node on its own runtime; dropping the runtime is a crash.
fn start(ports: &Ports, dir: &Path, events: Arc<Mutex<Vec<String>>>) -> tokio::runtime::Runtime {
    let (client, peer, multicast) = (
        ports.client.to_string(),
        ports.peer.to_string(),
        ports.multicast.to_string(),
    );
    let args = Cli::try_parse_from([
        "chat-node",
        "--id",
        "4",
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
        "runtime_serve's cluster secret",
    ])
    .unwrap()
    .serve;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.spawn(async move {
        let log = EventLog::in_memory(LogFormat::Json, events);
        if let Err(e) = chat_node::runtime::serve_with_events(args, log).await {
            eprintln!("serve failed: {e:#}");
        }
    });
    rt
}

fn events_of(lines: &Arc<Mutex<Vec<String>>>) -> Vec<Event> {
    lines
        .lock()
        .unwrap()
        .iter()
        .flat_map(|l| EventRecord::from_line_all(l))
        .map(|r| r.event)
        .collect()
}

async fn wait_for_leader(lines: &Arc<Mutex<Vec<String>>>) {
    for _ in 0..300 {
        if events_of(lines)
            .iter()
            .any(|e| matches!(e, Event::LeaderElected { .. }))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no leader within 3 s: {:?}", lines.lock().unwrap());
}

fn session(user: &str, client_addr: &str) -> Session {
    let mut config = SessionConfig::new(user, &format!("pw-{user}"));
    config.servers = vec![client_addr.to_string()];
    Session::new(config)
}

async fn next_message(session: &mut Session) -> chat_node::protocol::InboxMessage {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), session.next_incoming())
            .await
            .expect("a message in time")
            .unwrap()
        {
            Incoming::Message(m) => return m,
            _ => continue,
        }
    }
}

async fn next_json<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
) -> serde_json::Value {
    let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .expect("a reply in time")
        .unwrap()
        .expect("the connection is open");
    serde_json::from_str(&line).unwrap()
}

/// `{"req":N,"op":"ping","pad":"xx…"}` of exactly `len` bytes (unknown fields are ignored).
fn padded_ping(req: u64, len: usize) -> Vec<u8> {
    let bare = format!(r#"{{"req":{req},"op":"ping","pad":""}}"#);
    let line = format!(
        r#"{{"req":{req},"op":"ping","pad":"{}"}}"#,
        "x".repeat(len - bare.len())
    );
    assert_eq!(line.len(), len);
    line.into_bytes()
}

#[test]
fn serves_clients_answers_discovery_and_replays_its_log_after_a_crash() {
    let dir = std::env::temp_dir().join(format!("chat-node-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ports = free_ports();
    let client_addr = format!("127.0.0.1:{}", ports.client);
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let node = start(&ports, &dir, lines.clone());
    let test = tokio::runtime::Runtime::new().unwrap();

    test.block_on(async {
        wait_for_leader(&lines).await;

        // Discovery (unicast to the peer port here; broadcast in the netns smoke test).
        let peer: SocketAddr = format!("127.0.0.1:{}", ports.peer).parse().unwrap();
        let found = discover_at("faultline", &[peer], Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].addr, client_addr);
        assert_eq!(found[0].role, Role::Leader);
        assert!(
            discover_at("other-cluster", &[peer], Duration::from_millis(100))
                .await
                .unwrap()
                .is_empty()
        );

        let mut alice = session("alice", &client_addr);
        let mut bob = session("bob", &client_addr);
        bob.connect().await.unwrap();
        alice.join("general").await.unwrap();
        bob.join("general").await.unwrap();
        let sent = alice.send("bob", "hi bob").await.unwrap();
        assert!(sent.index.is_some() && !sent.duplicate);
        let m = next_message(&mut bob).await;
        assert_eq!((m.from.as_str(), m.text.as_str()), ("alice", "hi bob"));
        // A retry of the same id is acknowledged as a duplicate.
        let again = alice.send_with_id("bob", &sent.id, "hi bob").await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.index, sent.index);
        let post = alice.post("general", "hi room").await.unwrap();
        let m = next_message(&mut bob).await;
        assert_eq!(m.room.as_deref(), Some("general"));
        assert_eq!(m.room_seq, post.room_seq);

        // Lines that cannot be framed get an error line with their own code and no `req`;
        // the connection keeps working. The limit is on the content: a request of exactly
        // MAX_LINE_BYTES is served with `\r\n` as with `\n`, one byte more is refused.
        let stream = tokio::net::TcpStream::connect(&client_addr).await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut replies = BufReader::new(read).lines();
        let welcome = replies.next_line().await.unwrap().unwrap();
        assert!(welcome.contains(r#""type":"welcome""#), "{welcome}");
        let mut huge = vec![b'x'; MAX_LINE_BYTES + 10];
        huge.push(b'\n');
        write.write_all(&huge).await.unwrap();
        write.write_all(b"{\"req\":4,\xff}\n").await.unwrap();
        write
            .write_all(b"{\"req\":5,\"op\":\"ping\"}\n")
            .await
            .unwrap();
        let error = next_json(&mut replies).await;
        assert_eq!(error["code"], "line_too_long", "{error}");
        assert!(error.get("req").is_none(), "{error}");
        let error = next_json(&mut replies).await;
        assert_eq!(error["code"], "not_utf8", "{error}");
        assert!(error.get("req").is_none(), "{error}");
        assert_eq!(
            next_json(&mut replies).await,
            serde_json::json!({"type":"ok","req":5})
        );
        for (req, extra) in [(6, 0), (7, 1)] {
            let mut ping = padded_ping(req, MAX_LINE_BYTES + extra);
            ping.extend_from_slice(b"\r\n");
            write.write_all(&ping).await.unwrap();
        }
        assert_eq!(
            next_json(&mut replies).await,
            serde_json::json!({"type":"ok","req":6})
        );
        assert_eq!(next_json(&mut replies).await["code"], "line_too_long");
    });
    assert!(events_of(&lines).iter().any(|e| matches!(
        e,
        Event::InputRejected { source, .. } if source == "client"
    )));

    // Crash: no graceful leave, then start again on the same data directory.
    node.shutdown_timeout(Duration::from_secs(2));
    let state = std::fs::read_to_string(dir.join("state.jsonl")).unwrap();
    assert!(state.lines().count() >= 5, "{state}");
    let relines: Arc<Mutex<Vec<String>>> = Arc::default();
    let node = start(&ports, &dir, relines.clone());
    test.block_on(async {
        wait_for_leader(&relines).await;
        let restored = events_of(&relines).iter().find_map(|e| match e {
            Event::Started {
                restored_entries, ..
            } => Some(*restored_entries),
            _ => None,
        });
        assert!(restored.unwrap_or(0) >= 5, "restored {restored:?}");
        // The chat state came back with the log: alice never acked, so her inbox (her own
        // room post) is delivered again at login.
        let mut alice = session("alice", &client_addr);
        alice.connect().await.unwrap();
        let m = next_message(&mut alice).await;
        assert_eq!((m.useq, m.text.as_str()), (1, "hi room"));
    });
    node.shutdown_background();
    let _ = std::fs::remove_dir_all(&dir);
}
