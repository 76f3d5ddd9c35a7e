//! The client TCP server: one task per connection that frames lines (see [`super::framing`])
//! and forwards them to the driver, and writes what the driver queues for it.

use super::framing::{ClientLineCodec, LineProblem};
use crate::ids::ConnId;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

/// Lines queued for one client before it counts as too slow and is disconnected.
pub const OUTBOX_LINES: usize = 1024;

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
}

/// What the driver asks of a connection.
#[derive(Debug)]
pub enum ConnCommand {
    /// Write one line (the newline is added).
    Line(String),
    /// Close after writing everything queued before this.
    Close,
}

/// Accepts connections forever, numbering them from 1.
pub async fn accept_loop(listener: TcpListener, events: mpsc::Sender<ClientEvent>) {
    let mut next = 1u64;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let conn = ConnId(next);
                next += 1;
                tokio::spawn(serve_connection(conn, stream, peer, events.clone()));
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!("accepting a client: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    conn: ConnId,
    stream: TcpStream,
    peer: SocketAddr,
    events: mpsc::Sender<ClientEvent>,
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
            command = commands.recv() => match command {
                Some(ConnCommand::Line(line)) => {
                    if framed.send(line).await.is_err() {
                        break;
                    }
                }
                // Close, or the driver dropped us (too slow, or shutting down).
                Some(ConnCommand::Close) | None => {
                    let _ = framed.flush().await;
                    let _ = framed.get_mut().shutdown().await;
                    break;
                }
            },
        }
    }
    let _ = events.send(ClientEvent::Disconnected { conn }).await;
}
