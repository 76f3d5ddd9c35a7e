//! The runtime's client server: an oversized or non-UTF-8 line is reported to the driver as
//! a problem, and the connection keeps working for the next line and for replies.

use chat_node::protocol::MAX_LINE_BYTES;
use chat_node::runtime::clients::{accept_loop, ClientEvent, ConnCommand};
use chat_node::runtime::framing::LineProblem;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

async fn next(events: &mut mpsc::Receiver<ClientEvent>) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event in time")
        .expect("the accept loop is running")
}

#[tokio::test]
async fn oversized_and_non_utf8_lines_do_not_end_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut events) = mpsc::channel(16);
    tokio::spawn(accept_loop(listener, tx, 100));

    let stream = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let outbox = match next(&mut events).await {
        ClientEvent::Connected { outbox, .. } => outbox,
        other => panic!("expected Connected, got {other:?}"),
    };

    let mut huge = vec![b'a'; MAX_LINE_BYTES * 3];
    huge.push(b'\n');
    write.write_all(&huge).await.unwrap();
    write.write_all(b"\xc3\x28 broken\n").await.unwrap();
    write.write_all(b"{\"op\":\"ping\"}\n").await.unwrap();

    assert!(matches!(
        next(&mut events).await,
        ClientEvent::Problem {
            problem: LineProblem::TooLong,
            ..
        }
    ));
    assert!(matches!(
        next(&mut events).await,
        ClientEvent::Problem {
            problem: LineProblem::NotUtf8,
            ..
        }
    ));
    match next(&mut events).await {
        ClientEvent::Line { line, .. } => assert_eq!(line, r#"{"op":"ping"}"#),
        other => panic!("expected the ping line, got {other:?}"),
    }

    // Replies still flow, and Close flushes before closing.
    outbox
        .send(ConnCommand::Line(r#"{"type":"ok"}"#.into()))
        .await
        .unwrap();
    outbox.send(ConnCommand::Close).await.unwrap();
    let mut lines = BufReader::new(read).lines();
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some(r#"{"type":"ok"}"#)
    );
    assert_eq!(lines.next_line().await.unwrap(), None);
    assert!(matches!(
        next(&mut events).await,
        ClientEvent::Disconnected { .. }
    ));
}

/// The cap: one connection past `max` gets a `too_many_connections` line and is closed (the
/// driver hears of it), and a slot freed by a closed connection is served again. Loopback
/// connections have a small reserve, so this test's clients come from loopback: the cap
/// for them is `max + LOOPBACK_RESERVE`.
#[tokio::test]
async fn connections_past_the_cap_get_an_error_line_and_are_closed() {
    use chat_node::runtime::clients::LOOPBACK_RESERVE;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut events) = mpsc::channel(64);
    let max = 2;
    tokio::spawn(accept_loop(listener, tx, max));
    // The driver's side of each connection (dropping an outbox closes its connection).
    let mut outboxes = Vec::new();
    let mut open = Vec::new();
    for _ in 0..max + LOOPBACK_RESERVE {
        open.push(TcpStream::connect(addr).await.unwrap());
        match next(&mut events).await {
            ClientEvent::Connected { outbox, .. } => outboxes.push(outbox),
            other => panic!("expected Connected, got {other:?}"),
        }
    }
    let refused = TcpStream::connect(addr).await.unwrap();
    match next(&mut events).await {
        ClientEvent::Refused { open: n, .. } => assert_eq!(n, max + LOOPBACK_RESERVE),
        other => panic!("expected Refused, got {other:?}"),
    }
    let mut lines = BufReader::new(refused).lines();
    let line = lines.next_line().await.unwrap().expect("an error line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["code"], "too_many_connections");
    assert_eq!(lines.next_line().await.unwrap(), None, "then closed");

    // A freed slot is served again.
    drop(open.pop());
    assert!(matches!(
        next(&mut events).await,
        ClientEvent::Disconnected { .. }
    ));
    let _again = TcpStream::connect(addr).await.unwrap();
    match next(&mut events).await {
        ClientEvent::Connected { outbox, .. } => outboxes.push(outbox),
        other => panic!("expected Connected, got {other:?}"),
    }
}
