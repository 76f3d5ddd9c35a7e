//! Following every node's stdout/stderr from its first line, across restarts.
//!
//! Docker ends a follow stream when the container stops; after a restart the stream is opened
//! again from the beginning and the lines already forwarded are skipped (the json-file log of
//! a container survives restarts), so nothing is lost and nothing is doubled.

use super::cluster::Cluster;
use super::now_ms;
use bollard::container::{LogOutput, LogsOptions};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One line a node (or an outsider) wrote, stamped with the host time it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub node: u64,
    /// Set for a `forge` step's outsider (its number in the run); `node` is then 0.
    pub outsider: Option<usize>,
    /// true for stdout (where events go), false for stderr.
    pub stdout: bool,
    pub text: String,
    pub received_ms: u64,
}

/// The running log followers of a cluster.
pub struct LogStreams {
    wake: HashMap<u64, Arc<Notify>>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    tx: mpsc::UnboundedSender<LogLine>,
}

/// How often a follower whose container is down looks again (a restart also wakes it).
const RETRY: Duration = Duration::from_millis(200);

impl LogStreams {
    /// Starts one follower per node; lines arrive on the returned channel.
    pub fn start(cluster: &Cluster) -> (LogStreams, mpsc::UnboundedReceiver<LogLine>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let mut wake = HashMap::new();
        let mut tasks = Vec::new();
        for node in &cluster.nodes {
            let notify = Arc::new(Notify::new());
            wake.insert(node.id, notify.clone());
            tasks.push(tokio::spawn(follow(
                cluster.docker.clone(),
                (node.id, None),
                node.container_id.clone(),
                tx.clone(),
                notify,
                cancel.clone(),
            )));
        }
        (
            LogStreams {
                wake,
                cancel,
                tasks,
                tx,
            },
            rx,
        )
    }

    /// Follows an outsider's container too (its lines carry `outsider: Some(number)`).
    pub fn follow_outsider(&mut self, docker: &Docker, number: usize, container_id: &str) {
        self.tasks.push(tokio::spawn(follow(
            docker.clone(),
            (0, Some(number)),
            container_id.to_string(),
            self.tx.clone(),
            Arc::new(Notify::new()),
            self.cancel.clone(),
        )));
    }

    /// Node `id` was started again: reopen its stream now rather than at the next retry.
    pub fn reattach(&self, id: u64) {
        if let Some(n) = self.wake.get(&id) {
            n.notify_one();
        }
    }

    /// Stops every follower (lines already read stay in the channel).
    pub async fn stop(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn follow(
    docker: Docker,
    (node, outsider): (u64, Option<usize>),
    container: String,
    tx: mpsc::UnboundedSender<LogLine>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut forwarded: usize = 0;
    while !cancel.is_cancelled() {
        let mut seen: usize = 0;
        let mut splitter = LineSplitter::default();
        let mut stream = docker.logs(
            &container,
            Some(LogsOptions::<String> {
                follow: true,
                stdout: true,
                stderr: true,
                tail: "all".to_string(),
                ..Default::default()
            }),
        );
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return,
                item = stream.next() => item,
            };
            let Some(Ok(output)) = item else { break };
            let stdout = !matches!(output, LogOutput::StdErr { .. });
            for text in splitter.push(output.as_ref(), stdout) {
                seen += 1;
                if seen <= forwarded {
                    continue; // already forwarded before the restart
                }
                forwarded = seen;
                let line = LogLine {
                    node,
                    outsider,
                    stdout,
                    text,
                    received_ms: now_ms(),
                };
                if tx.send(line).is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Splits chunks of a stream into complete lines, one buffer per stream (stdout, stderr).
#[derive(Default)]
struct LineSplitter {
    partial: [Vec<u8>; 2],
}

impl LineSplitter {
    fn push(&mut self, chunk: &[u8], stdout: bool) -> Vec<String> {
        let buf = &mut self.partial[usize::from(stdout)];
        buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            if !text.is_empty() {
                lines.push(text);
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks_per_stream() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"{\"a\":", true).is_empty());
        assert_eq!(s.push(b"warn\n", false), vec!["warn"]);
        assert_eq!(
            s.push(b"1}\n{\"b\":2}\n\n", true),
            vec!["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(s.push(b"x\r\n", true), vec!["x"]);
    }
}
