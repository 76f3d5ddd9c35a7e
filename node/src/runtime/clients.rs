//! The client TCP server: one task per connection that frames lines (see [`super::framing`])
//! and forwards them to the driver, and writes what the driver queues for it.
//!
//! Connections are capped (`--max-connections`): one more gets a `too_many_connections`
//! error line and is closed at once, so the node never runs out of file descriptors and keeps
//! answering. [`LOOPBACK_RESERVE`] further slots are kept for connections from the node's own
//! host (`chat-node status` inside the container), so an operator can still look.

use super::framing::{ClientLineCodec, LineProblem};
use crate::ids::ConnId;
use crate::protocol::{ErrorCode, ErrorReply, ServerLine};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

/// Lines queued for one client before it counts as too slow and is disconnected.
pub const OUTBOX_LINES: usize = 1024;

/// Connections from the loopback address accepted beyond `--max-connections`.
pub const LOOPBACK_RESERVE: usize = 8;

/// Time given to a refused connection to take its error line.
const REFUSAL_WRITE: Duration = Duration::from_millis(500);

/// What a connection task tells the driver.
#[derive(Debug)]
pub enum ClientEvent {
    Connected {
        conn: ConnId,
        peer: SocketAddr,
        outbox: mpsc::Sender<ConnCommand>,
    },
    Line {
        conn: ConnId,
        line: String,
    },
    /// A line that could not be framed (oversized, not UTF-8); already skipped.
    Problem {
        conn: ConnId,
        problem: LineProblem,
    },
    Disconnected {
        conn: ConnId,
    },
    /// A connection beyond the cap was refused (already answered and closed).
    Refused {
        peer: SocketAddr,
        open: usize,
    },
}

/// What the driver asks of a connection.
#[derive(Debug)]
pub enum ConnCommand {
    /// Write one line (the newline is added).
    Line(String),
    /// Close after writing everything queued before this.
    Close,
}

/// Counts a live connection until dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The refusal a connection beyond the cap gets.
pub fn refusal_line(max: usize) -> String {
    let line = ServerLine::Error(ErrorReply {
        req: None,
        code: ErrorCode::TooManyConnections,
        message: format!(
            "this server already serves {max} connections (its --max-connections); try another server or retry later"
        ),
        leader_addr: None,
    });
    serde_json::to_string(&line).unwrap_or_default()
}

/// Accepts connections forever, numbering them from 1; at most `max` at once (plus
/// [`LOOPBACK_RESERVE`] from loopback).
pub async fn accept_loop(listener: TcpListener, events: mpsc::Sender<ClientEvent>, max: usize) {
    let mut next = 1u64;
    let open = Arc::new(AtomicUsize::new(0));
    let refusal = refusal_line(max);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let now_open = open.load(Ordering::Relaxed);
                let limit = if peer.ip().is_loopback() {
                    max + LOOPBACK_RESERVE
                } else {
                    max
                };
                if now_open >= limit {
                    let _ = events.try_send(ClientEvent::Refused {
                        peer,
                        open: now_open,
                    });
                    tokio::spawn(refuse(stream, refusal.clone()));
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let slot = Slot(open.clone());
                let _ = stream.set_nodelay(true);
                let conn = ConnId(next);
                next += 1;
                let events = events.clone();
                tokio::spawn(serve_connection(conn, stream, peer, events, slot));
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!("accepting a client: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Writes the refusal and closes, giving a peer that does not read no more than a moment.
async fn refuse(mut stream: TcpStream, line: String) {
    let write = async {
        stream.write_all(line.as_bytes()).await?;
        stream.write_all(b"\n").await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(REFUSAL_WRITE, write).await;
}

async fn serve_connection(
    conn: ConnId,
    stream: TcpStream,
    peer: SocketAddr,
    events: mpsc::Sender<ClientEvent>,
    slot: Slot,
) {
    let (outbox, mut commands) = mpsc::channel(OUTBOX_LINES);
    if events
        .send(ClientEvent::Connected { conn, peer, outbox })
        .await
        .is_err()
    {
        return;
    }
    let mut framed = Framed::new(stream, ClientLineCodec::new());
    loop {
        tokio::select! {
            item = framed.next() => match item {
                Some(Ok(Ok(line))) => {
                    if events.send(ClientEvent::Line { conn, line }).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Err(problem))) => {
                    if events.send(ClientEvent::Problem { conn, problem }).await.is_err() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!("client {conn} ({peer}): {e}");
                    break;
                }
                None => break,
            },
            command = commands.recv() => {
                // Every line already queued goes out in one write (a group commit answers
                // many requests of one connection in the same turn).
                let mut next = command;
                let mut close = false;
                loop {
                    match next {
                        Some(ConnCommand::Line(line)) => {
                            if framed.feed(line).await.is_err() {
                                close = true;
                                break;
                            }
                        }
                        // Close, or the driver dropped us (too slow, or shutting down).
                        Some(ConnCommand::Close) | None => {
                            close = true;
                            break;
                        }
                    }
                    next = match commands.try_recv() {
                        Ok(command) => Some(command),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    };
                }
                let flushed = framed.flush().await.is_ok();
                if close || !flushed {
                    let _ = framed.get_mut().shutdown().await;
                    break;
                }
            }
        }
    }
    // The slot is free before anyone hears of the disconnect.
    drop(framed);
    drop(slot);
    let _ = events.send(ClientEvent::Disconnected { conn }).await;
}
