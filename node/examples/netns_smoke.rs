//! The client half of `scripts/netns-cluster.sh`: two users on a real network find the
//! cluster by broadcast, exchange a private and a room message, get an offline message at
//! login, and keep chatting after the leader is killed with SIGKILL.
//!
//! `netns_smoke --nodes 3 --pid 1:4242 --pid 2:4243 --pid 3:4244`
//! Exits 0 when every step passed; prints one line per step with its timing.

use chat_node::client::{discover, Incoming, Session, SessionConfig};
use chat_node::protocol::InboxMessage;
use std::collections::HashMap;
use std::time::{Duration, Instant};

type Fail = Box<dyn std::error::Error>;

fn session(user: &str) -> Session {
    let mut config = SessionConfig::new(user, &format!("smoke-{user}-{}", std::process::id()));
    config.retry_deadline = Duration::from_secs(20);
    config.discovery_window = Duration::from_millis(400);
    Session::new(config)
}

/// Waits for a message whose text is `text`, skipping anything else.
async fn expect_message(session: &mut Session, text: &str) -> Result<InboxMessage, Fail> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, session.next_incoming()).await {
            Err(_) => return Err(format!("{} never received `{text}`", session.user()).into()),
            Ok(Ok(Incoming::Message(m))) if m.text == text => return Ok(m),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("{}: {e}", session.user()).into()),
        }
    }
}

fn step(name: &str, started: Instant) {
    println!("ok   {name:<48} {:>6} ms", started.elapsed().as_millis());
}

async fn run(nodes: usize, pids: HashMap<u64, u32>) -> Result<(), Fail> {
    let t = Instant::now();
    let servers = loop {
        let found = discover("faultline", 7400, Duration::from_millis(500)).await?;
        if found.len() >= nodes && found.iter().any(|s| s.leader_addr.is_some()) {
            break found;
        }
        if t.elapsed() > Duration::from_secs(20) {
            return Err(format!("discovery found only {found:?}").into());
        }
    };
    step(
        &format!(
            "discovery: {} servers answered the broadcast",
            servers.len()
        ),
        t,
    );

    let t = Instant::now();
    let mut alice = session("alice");
    let mut bob = session("bob");
    alice.connect().await?;
    bob.connect().await?;
    alice.join("general").await?;
    bob.join("general").await?;
    step("alice and bob logged in on the leader, joined general", t);

    let t = Instant::now();
    alice.send("bob", "hello bob").await?;
    let m = expect_message(&mut bob, "hello bob").await?;
    if m.from != "alice" || m.room.is_some() {
        return Err(format!("wrong private message {m:?}").into());
    }
    step("private message alice → bob", t);

    let t = Instant::now();
    let sent = alice.post("general", "hi room").await?;
    let m = expect_message(&mut bob, "hi room").await?;
    if m.room.as_deref() != Some("general") || m.room_seq != sent.room_seq {
        return Err(format!("wrong room message {m:?} for {sent:?}").into());
    }
    step("room message in general", t);

    let t = Instant::now();
    bob.logout().await?;
    drop(bob);
    alice.send("bob", "while you were away").await?;
    let mut bob = session("bob");
    bob.connect().await?;
    expect_message(&mut bob, "while you were away").await?;
    step("offline message delivered at bob's next login", t);

    let status = alice.status().await?;
    let leader = status.leader.ok_or("no leader in status")?;
    let pid = pids
        .get(&leader.0)
        .ok_or(format!("no pid for leader {leader}"))?;
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    if !killed.success() {
        return Err(format!("kill -9 {pid} failed").into());
    }
    let t = Instant::now();
    println!("     killed leader {leader} (pid {pid}) with SIGKILL");
    let outcome = alice.send("bob", "after the crash").await?;
    step(
        &format!(
            "private message acked by the new leader ({} attempts)",
            outcome.attempts
        ),
        t,
    );
    expect_message(&mut bob, "after the crash").await?;
    step("… and delivered to bob", t);
    alice.post("general", "still here").await?;
    expect_message(&mut bob, "still here").await?;
    step("room message after the failover", t);
    let status = alice.status().await?;
    println!(
        "     new leader {} in epoch {} (was {leader}); alice on {}",
        status.leader.map(|l| l.to_string()).unwrap_or_default(),
        status.epoch,
        alice.server().unwrap_or("?")
    );
    if status.leader == Some(leader) {
        return Err("the killed node is still the leader".into());
    }
    Ok(())
}

fn parse_args() -> Result<(usize, HashMap<u64, u32>), Fail> {
    let mut nodes = 3;
    let mut pids = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--nodes" => nodes = value.parse()?,
            "--pid" => {
                let (id, pid) = value.split_once(':').ok_or("--pid wants id:pid")?;
                pids.insert(id.parse()?, pid.parse()?);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok((nodes, pids))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let outcome = match parse_args() {
        Ok((nodes, pids)) => run(nodes, pids).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            println!("PASS");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAIL {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
