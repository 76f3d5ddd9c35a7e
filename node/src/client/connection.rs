//! One TCP connection to a server: the `welcome` line, requests correlated with their replies
//! by `req`, and the lines the server pushes (messages, presence).

use super::error::ClientError;
use crate::protocol::{
    ClientFrame, ErrorReply, InboxMessage, OkReply, Request, ServerLine, Welcome,
};
use crate::runtime::framing::ClientLineCodec;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

/// Longest line accepted from a server (a status reply of a large cluster, a full message).
pub(super) const MAX_SERVER_LINE: usize = 256 * 1024;

/// A line the server sent without being asked.
#[derive(Clone, Debug, PartialEq)]
pub enum Pushed {
    Message(InboxMessage),
    Presence {
        user: String,
        online: bool,
    },
    /// An error without a request number (e.g. the server could not frame a line).
    Error(ErrorReply),
}

type Reply = Result<OkReply, ErrorReply>;
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

/// A connected server. Dropping it closes the socket.
pub struct Connection {
    addr: String,
    welcome: Welcome,
    outgoing: mpsc::UnboundedSender<String>,
    pending: Pending,
    pushed: mpsc::UnboundedReceiver<Pushed>,
    next_req: AtomicU64,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Connection {
    /// Connects and reads the `welcome` line, both within `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Connection, ClientError> {
        tokio::time::timeout(timeout, Connection::connect_inner(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    async fn connect_inner(addr: &str) -> Result<Connection, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let mut lines = FramedRead::new(read, ClientLineCodec::with_max_length(MAX_SERVER_LINE));
        let welcome = match lines.next().await {
            Some(Ok(Ok(line))) => match serde_json::from_str::<ServerLine>(&line) {
                Ok(ServerLine::Welcome(welcome)) => welcome,
                _ => {
                    return Err(ClientError::Protocol(format!(
                        "expected welcome, got {line}"
                    )))
                }
            },
            Some(Ok(Err(problem))) => return Err(ClientError::Protocol(problem.describe())),
            Some(Err(e)) => return Err(ClientError::Io(e)),
            None => return Err(ClientError::Closed),
        };

        let pending: Pending = Arc::default();
        let (pushed_tx, pushed) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_lines(lines, pending.clone(), pushed_tx));
        let (outgoing, mut to_write) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            let mut sink = FramedWrite::new(write, ClientLineCodec::new());
            // Lines queued meanwhile go out in one write (pipelined requests).
            while let Some(line) = to_write.recv().await {
                let mut fed = sink.feed(line).await;
                while let (Ok(()), Ok(line)) = (&fed, to_write.try_recv()) {
                    fed = sink.feed(line).await;
                }
                if fed.is_err() || sink.flush().await.is_err() {
                    break;
                }
            }
        });
        Ok(Connection {
            addr: addr.to_string(),
            welcome,
            outgoing,
            pending,
            pushed,
            next_req: AtomicU64::new(1),
            tasks: [reader, writer],
        })
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Sends a request and waits for its reply. A server error is `ClientError::Server`.
    pub async fn request(
        &self,
        request: Request,
        timeout: Duration,
    ) -> Result<OkReply, ClientError> {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(req, tx);
        }
        let sent = self.write_frame(&ClientFrame {
            req: Some(req),
            request,
        });
        if let Err(e) = sent {
            self.forget(req);
            return Err(e);
        }
        let outcome = tokio::time::timeout(timeout, rx).await;
        self.forget(req);
        match outcome {
            Err(_) => Err(ClientError::Timeout(timeout)),
            Ok(Err(_)) => Err(ClientError::Closed),
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(error))) => Err(ClientError::Server(error)),
        }
    }

    /// Sends a request whose reply nobody waits for (acks).
    pub fn send_only(&self, request: Request) -> Result<(), ClientError> {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        self.write_frame(&ClientFrame {
            req: Some(req),
            request,
        })
    }

    /// Sends one raw line (tests of the server's input checks).
    pub fn send_raw_line(&self, line: String) -> Result<(), ClientError> {
        self.outgoing.send(line).map_err(|_| ClientError::Closed)
    }

    /// The next pushed line; `None` once the connection has closed.
    pub async fn next_pushed(&mut self) -> Option<Pushed> {
        self.pushed.recv().await
    }

    /// Hands the pushed lines to another task (a load generator drains them while it keeps
    /// many requests in flight on `&self`); afterwards `next_pushed` returns `None`.
    pub fn take_pushed(&mut self) -> mpsc::UnboundedReceiver<Pushed> {
        std::mem::replace(&mut self.pushed, mpsc::unbounded_channel().1)
    }

    /// A pushed line that has already arrived, if any.
    pub fn try_next_pushed(&mut self) -> Option<Pushed> {
        self.pushed.try_recv().ok()
    }

    /// True once the server side has gone away.
    pub fn is_closed(&self) -> bool {
        self.tasks[0].is_finished() || self.outgoing.is_closed()
    }

    fn write_frame(&self, frame: &ClientFrame) -> Result<(), ClientError> {
        let line =
            serde_json::to_string(frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.send_raw_line(line)
    }

    fn forget(&self, req: u64) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&req);
        }
    }
}

/// Routes every line from the server: replies to their waiting request, the rest to `pushed`.
async fn read_lines(
    mut lines: FramedRead<tokio::net::tcp::OwnedReadHalf, ClientLineCodec>,
    pending: Pending,
    pushed: mpsc::UnboundedSender<Pushed>,
) {
    while let Some(Ok(item)) = lines.next().await {
        let Ok(line) = item else {
            tracing::warn!("server line skipped: {:?}", item.err());
            continue;
        };
        let parsed = match serde_json::from_str::<ServerLine>(&line) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::warn!("unreadable server line ({e}): {line}");
                continue;
            }
        };
        let (req, reply) = match parsed {
            ServerLine::Ok(ok) => (ok.req, Ok(ok)),
            ServerLine::Error(error) => match error.req {
                Some(req) => (Some(req), Err(error)),
                None => {
                    let _ = pushed.send(Pushed::Error(error));
                    continue;
                }
            },
            ServerLine::Message(message) => {
                let _ = pushed.send(Pushed::Message(message));
                continue;
            }
            ServerLine::Presence { user, online } => {
                let _ = pushed.send(Pushed::Presence { user, online });
                continue;
            }
            ServerLine::Welcome(_) => continue,
        };
        let waiter = req.and_then(|req| pending.lock().ok()?.remove(&req));
        if let Some(waiter) = waiter {
            let _ = waiter.send(reply);
        }
    }
    // Closed: every waiting request learns it now rather than at its timeout.
    if let Ok(mut pending) = pending.lock() {
        pending.clear();
    }
}
