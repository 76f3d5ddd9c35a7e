//! One user's TCP session with a server, in the node's client protocol (`chat_node::protocol`:
//! one JSON object per line). Finds the leader from the welcome line or a `not_leader` error.

use chat_node::protocol::{ClientFrame, ErrorCode, OkReply, Request, ServerLine};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// How long a connect or a single request may take before the user gives up on the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(700);

/// What a request ended with.
#[derive(Debug)]
pub enum Reply {
    Ok(Box<OkReply>),
    /// The server refused; `leader_addr` says where to go for `not_leader`.
    Refused {
        code: ErrorCode,
        message: String,
        leader_addr: Option<String>,
    },
}

/// An open session.
pub struct Conn {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
    next_req: u64,
    /// The node that welcomed us, and whether it said it leads.
    pub node: u64,
    pub leader_addr: Option<String>,
    pub is_leader: bool,
}

impl Conn {
    /// Connects and reads the welcome line.
    pub async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr} timed out"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (read, writer) = stream.into_split();
        let mut conn = Conn {
            lines: BufReader::new(read).lines(),
            writer,
            next_req: 1,
            node: 0,
            leader_addr: None,
            is_leader: false,
        };
        let welcome = tokio::time::timeout(CONNECT_TIMEOUT, conn.next_line())
            .await
            .map_err(|_| format!("no welcome from {addr}"))??;
        match welcome {
            ServerLine::Welcome {
                node,
                role,
                leader_addr,
                ..
            } => {
                conn.node = node.0;
                conn.is_leader = role == chat_node::ids::Role::Leader;
                conn.leader_addr = leader_addr;
                Ok(conn)
            }
            other => Err(format!("{addr} greeted with {other:?} instead of welcome")),
        }
    }

    /// The next line from the server (cancel-safe: usable in `select!`).
    pub async fn next_line(&mut self) -> Result<ServerLine, String> {
        loop {
            match self.lines.next_line().await {
                Ok(Some(line)) if line.trim().is_empty() => continue,
                Ok(Some(line)) => {
                    return serde_json::from_str(&line)
                        .map_err(|e| format!("unreadable server line {line:?}: {e}"))
                }
                Ok(None) => return Err("server closed the connection".into()),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Writes a request; returns its request number.
    pub async fn send(&mut self, request: Request) -> Result<u64, String> {
        let req = self.next_req;
        self.next_req += 1;
        let frame = ClientFrame {
            req: Some(req),
            request,
        };
        let mut line = serde_json::to_string(&frame).map_err(|e| e.to_string())?;
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        Ok(req)
    }
}

/// Classifies a server line as the reply to request `req`, if it is one.
pub fn reply_to(line: &ServerLine, req: u64) -> Option<Reply> {
    match line {
        ServerLine::Ok(ok) if ok.req == Some(req) => Some(Reply::Ok(Box::new(ok.clone()))),
        ServerLine::Error(e) if e.req == Some(req) || e.req.is_none() => Some(Reply::Refused {
            code: e.code,
            message: e.message.clone(),
            leader_addr: e.leader_addr.clone(),
        }),
        _ => None,
    }
}
