//! The interactive line client (`chat-node client --user alice`).

use super::error::ClientError;
use super::session::{Incoming, Session, SessionConfig, SessionEvent};
use crate::protocol::{ErrorCode, InboxMessage};
use std::io::Write;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Help shown by `/help` and at start.
pub const HELP: &str = "\
commands:
  /msg <user> <text>     private message
  /join <room>           join (or create) a room; plain lines then go to it
  /leave <room>          leave a room
  /post <room> <text>    post to a room
  /rooms                 rooms and their members
  /who                   who is online
  /status                the cluster: leader, epoch, members, the server you are on
  /help                  this text
  /quit                  log out and leave
  <text>                 post to the room you joined last";

/// One line typed by the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Msg {
        to: String,
        text: String,
    },
    Join(String),
    Leave(String),
    Post {
        room: String,
        text: String,
    },
    /// Plain text: a post to the current room.
    Say(String),
    Rooms,
    Who,
    Status,
    Help,
    Quit,
    Empty,
    /// Something that is not a command, with what to say about it.
    Invalid(String),
}

/// Parses one input line.
pub fn parse_command(line: &str) -> Command {
    let line = line.trim();
    if line.is_empty() {
        return Command::Empty;
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Say(line.to_string());
    };
    let (word, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let args = args.trim();
    let (first, tail) = args
        .split_once(char::is_whitespace)
        .map(|(a, b)| (a, b.trim()))
        .unwrap_or((args, ""));
    match (word, first.is_empty(), tail.is_empty()) {
        ("msg" | "m", false, false) => Command::Msg {
            to: first.into(),
            text: tail.into(),
        },
        ("msg" | "m", _, _) => Command::Invalid("usage: /msg <user> <text>".into()),
        ("join" | "j", false, true) => Command::Join(first.into()),
        ("join" | "j", _, _) => Command::Invalid("usage: /join <room>".into()),
        ("leave", false, true) => Command::Leave(first.into()),
        ("leave", _, _) => Command::Invalid("usage: /leave <room>".into()),
        ("post" | "p", false, false) => Command::Post {
            room: first.into(),
            text: tail.into(),
        },
        ("post" | "p", _, _) => Command::Invalid("usage: /post <room> <text>".into()),
        ("rooms", _, _) => Command::Rooms,
        ("who", _, _) => Command::Who,
        ("status", _, _) => Command::Status,
        ("help" | "h" | "?", _, _) => Command::Help,
        ("quit" | "q" | "exit", _, _) => Command::Quit,
        (other, _, _) => Command::Invalid(format!("unknown command /{other}; try /help")),
    }
}

/// How an incoming message is shown: `[general] bob: hi` or `bob → you: hi`.
pub fn format_message(message: &InboxMessage) -> String {
    match &message.room {
        Some(room) => format!("[{room}] {}: {}", message.from, message.text),
        None => format!("{} → you: {}", message.from, message.text),
    }
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|_| out.flush());
}

/// Runs the interactive client until `/quit` or end of input.
pub async fn run(config: SessionConfig) -> anyhow::Result<()> {
    let user = config.user.clone();
    let mut session = Session::new(config);
    session.set_observer(Arc::new(|_, event: &SessionEvent| match event {
        SessionEvent::Disconnected { reason, .. } if reason != "logout" => {
            say("reconnecting to the new leader…")
        }
        SessionEvent::Connected {
            server,
            node,
            mailbox,
        } => say(&format!(
            "connected to node {node} at {server}{}",
            if *mailbox > 0 {
                format!(" ({mailbox} messages waited for you)")
            } else {
                String::new()
            }
        )),
        _ => {}
    }));
    say(&format!("hello {user}, looking for a server…"));
    session.connect().await?;
    say("type /help for commands");

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut room: Option<String> = None;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                match execute(&mut session, &mut room, parse_command(&line)).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) if e.code().is_some() => say(&format!("! {e}")),
                    Err(e) => say(&format!("! {e} (still trying in the background)")),
                }
            }
            incoming = session.next_incoming() => match incoming {
                Ok(Incoming::Message(m)) => say(&format_message(&m)),
                Ok(Incoming::Presence { user, online }) => {
                    say(&format!("* {user} is {}", if online { "online" } else { "offline" }));
                }
                Ok(Incoming::Reconnected { .. }) => {}
                Ok(Incoming::Notice(e)) => say(&format!("! {}", e.message)),
                Err(e) if e.code() == Some(ErrorCode::SessionTakenOver) => {
                    say("! this session was taken over by a login elsewhere; quitting");
                    return Ok(());
                }
                Err(e) => say(&format!("! {e}")),
            },
        }
    }
    let _ = session.logout().await;
    say("bye");
    Ok(())
}

/// Carries out one command; `Ok(false)` means quit.
async fn execute(
    session: &mut Session,
    room: &mut Option<String>,
    command: Command,
) -> Result<bool, ClientError> {
    match command {
        Command::Empty => {}
        Command::Quit => return Ok(false),
        Command::Help => say(HELP),
        Command::Invalid(why) => say(&why),
        Command::Msg { to, text } => {
            session.send(&to, &text).await?;
            say(&format!("you → {to}: {text}"));
        }
        Command::Join(name) => {
            session.join(&name).await?;
            say(&format!("joined [{name}]; plain lines now go there"));
            *room = Some(name);
        }
        Command::Leave(name) => {
            session.leave(&name).await?;
            say(&format!("left [{name}]"));
            if room.as_deref() == Some(name.as_str()) {
                *room = None;
            }
        }
        Command::Post { room: name, text } => {
            session.post(&name, &text).await?;
        }
        Command::Say(text) => match room.clone() {
            Some(name) => {
                session.post(&name, &text).await?;
            }
            None => say("join a room first (/join general) or use /msg <user> <text>"),
        },
        Command::Rooms => {
            let rooms = session.rooms().await?;
            if rooms.is_empty() {
                say("no rooms yet; /join <room> creates one");
            }
            for r in rooms {
                say(&format!("[{}] {}", r.name, r.members.join(", ")));
            }
        }
        Command::Who => {
            let users = session.who().await?;
            say(&format!("online: {}", users.join(", ")));
        }
        Command::Status => {
            let status = session.status().await?;
            say(&format!(
                "you are on node {} at {}",
                session
                    .server_node()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "?".into()),
                session.server().unwrap_or("?")
            ));
            say(super::probe::format_status(&status).trim_end());
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_plain_text() {
        assert_eq!(
            parse_command("/msg bob hello there"),
            Command::Msg {
                to: "bob".into(),
                text: "hello there".into()
            }
        );
        assert_eq!(
            parse_command(" /join general "),
            Command::Join("general".into())
        );
        assert_eq!(
            parse_command("/post general hi all"),
            Command::Post {
                room: "general".into(),
                text: "hi all".into()
            }
        );
        assert_eq!(parse_command("hi"), Command::Say("hi".into()));
        assert_eq!(parse_command("/quit"), Command::Quit);
        assert_eq!(parse_command(""), Command::Empty);
        assert!(matches!(parse_command("/msg bob"), Command::Invalid(_)));
        assert!(matches!(parse_command("/frobnicate"), Command::Invalid(_)));
    }

    #[test]
    fn shows_room_and_private_messages_differently() {
        let mut m = InboxMessage {
            useq: 1,
            from: "bob".into(),
            room: Some("general".into()),
            room_seq: Some(1),
            id: "x-1".into(),
            text: "hi".into(),
            index: 4,
        };
        assert_eq!(format_message(&m), "[general] bob: hi");
        m.room = None;
        assert_eq!(format_message(&m), "bob → you: hi");
    }
}
