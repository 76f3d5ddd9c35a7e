//! One raw TCP line connection for the tokio driver of the [`ClientCore`](super::ClientCore):
//! lines out through a writer task, lines in (and the end) through a channel. The core reads
//! the `welcome` and correlates replies itself.

use super::connection::MAX_SERVER_LINE;
use crate::runtime::framing::ClientLineCodec;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

/// An open connection. Dropping it closes the socket.
pub struct Link {
    outgoing: mpsc::UnboundedSender<String>,
    incoming: mpsc::UnboundedReceiver<String>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Link {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Link {
    pub async fn open(addr: String) -> std::io::Result<Link> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (in_tx, incoming) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut lines =
                FramedRead::new(read, ClientLineCodec::with_max_length(MAX_SERVER_LINE));
            while let Some(Ok(item)) = lines.next().await {
                match item {
                    Ok(line) => {
                        if in_tx.send(line).is_err() {
                            break;
                        }
                    }
                    Err(problem) => tracing::warn!("server line skipped: {}", problem.describe()),
                }
            }
        });
        let (outgoing, mut to_write) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            let mut sink = FramedWrite::new(write, ClientLineCodec::new());
            while let Some(line) = to_write.recv().await {
                if sink.send(line).await.is_err() {
                    break;
                }
            }
        });
        Ok(Link {
            outgoing,
            incoming,
            tasks: [reader, writer],
        })
    }

    pub fn send(&self, line: String) {
        let _ = self.outgoing.send(line);
    }

    /// The next line; `None` once the connection has ended. Cancel-safe.
    pub async fn recv(&mut self) -> Option<String> {
        self.incoming.recv().await
    }

    /// A line that has already arrived, if any.
    pub fn try_recv(&mut self) -> Option<String> {
        self.incoming.try_recv().ok()
    }

    /// True if a line has arrived and is not read yet.
    pub fn has_waiting(&self) -> bool {
        !self.incoming.is_empty()
    }
}
