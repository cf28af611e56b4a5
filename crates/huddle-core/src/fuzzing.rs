//! The room under arbitrary command sequences: one body shared by the fuzz target
//! (`fuzz/fuzz_targets/room.rs`) and the test that replays its kept corpus
//! (`tests/fuzz_corpus.rs`), and the harness the model test drives. Not a stable API.
//!
//! [`Sim`] plays the room actor and its store: it keeps the log as a `Vec<Message>`,
//! answers [`Room::log_read`] from it, runs [`Room::handle`] and checks, after every
//! command, what must hold whatever a client sends: a refused command changes nothing,
//! seqs are gapless from 1, a room with members has an admin, no cursor is past the end.

use std::path::PathBuf;

use arbitrary::{Arbitrary, Unstructured};

use crate::command::{Command, Event, LogRead, Missed, Reply};
use crate::error::RoomError;
use crate::ids::{MemberId, RoomId, Seq};
use crate::limits::Limits;
use crate::model::{Message, Room, RoomType};
use crate::room::{Ctx, Decision, NewRoom};
use crate::time::Timestamp;
use crate::token::{AgentToken, TokenDigest};

/// A room plus the log its actor would keep in the store.
pub struct Sim {
    pub room: Room,
    pub log: Vec<Message>,
    pub limits: Limits,
    /// The clock of the last command (one millisecond per command).
    pub now: i64,
    minted: u64,
}

/// The token digest `n`: tokens are minted as `token-<n>` so tests can name them.
pub fn token_number(n: u64) -> TokenDigest {
    AgentToken::from_wire(format!("token-{n}")).digest()
}

impl Sim {
    /// A room of `kind` created by `creator` (token [`token_number`]`(0)`).
    pub fn new(creator: &str, kind: RoomType, limits: Limits) -> (Sim, TokenDigest) {
        let now = 1_700_000_000_000;
        let token = token_number(0);
        let room = Room::create(
            NewRoom {
                id: RoomId::new_random(),
                name: "dev-team".into(),
                password_hash: None,
                description: String::new(),
                kind,
                creator: creator.into(),
                creator_token: token,
                creator_endpoint: None,
            },
            Timestamp::from_millis(now),
        );
        let sim = Sim {
            room,
            log: vec![],
            limits,
            now,
            minted: 0,
        };
        (sim, token)
    }

    /// A fresh token digest, as the actor mints one for each join.
    pub fn mint(&mut self) -> TokenDigest {
        self.minted += 1;
        token_number(self.minted)
    }

    /// What the store answers to `read`: the viewer's messages after `after`, at most
    /// `limit`, `has_more` when some were left out.
    pub fn page(&self, read: LogRead) -> Missed {
        let mut visible = self
            .log
            .iter()
            .filter(|m| m.seq > read.after && m.visible_to(read.viewer));
        let messages = visible
            .by_ref()
            .take(read.limit)
            .map(|m| m.clone().into())
            .collect();
        let has_more = visible.next().is_some();
        Missed { messages, has_more }
    }

    /// What `message.history` shows `viewer`: every message it may see, oldest first.
    pub fn history(&self, viewer: MemberId) -> impl Iterator<Item = &Message> {
        self.log.iter().filter(move |m| m.visible_to(viewer))
    }

    /// One command through the actor's path (log read, decide, apply, append), then the
    /// checks of [`Sim::check`]. Panics when a rule is broken.
    pub fn run(&mut self, mut cmd: Command) -> Result<Decision, RoomError> {
        self.find_earlier(&mut cmd);
        let page = match self.room.log_read(&cmd, &self.limits) {
            Some(read) => self.page(read),
            None => Missed::default(),
        };
        self.now += 1;
        let ctx = Ctx {
            now: Timestamp::from_millis(self.now),
            limits: &self.limits,
            // Deterministic: one id per command, as the actor draws one per decision.
            message_id: uuid::Uuid::from_u128(self.now as u128),
        };
        let before = self.room.clone();
        let result = self.room.handle(cmd, page, ctx);
        match &result {
            Ok(decision) => {
                for event in &decision.events {
                    if let Event::Posted(m) = event {
                        self.log.push(m.clone());
                    }
                }
                if let Reply::Sent { seq, .. } = &decision.reply {
                    if decision.events.is_empty() {
                        // A retry under a message id: answered with the first send.
                        let first = self.log.iter().find(|m| m.seq == *seq);
                        assert!(
                            first.is_some_and(|m| m.key.is_some()),
                            "a send stored nothing and answered a seq of no keyed message"
                        );
                    } else {
                        let last = self.log.last().map(|m| m.seq);
                        assert_eq!(last, Some(*seq), "a send answered another seq");
                    }
                }
            }
            Err(_) => assert_eq!(self.room, before, "a refused command changed the room"),
        }
        self.check();
        result
    }

    /// A keyed send gets the message its sender sent under that key, as the actor
    /// looks it up in its log.
    fn find_earlier(&self, cmd: &mut Command) {
        if let Command::Send {
            token,
            key: Some(key),
            earlier: earlier @ None,
            ..
        } = cmd
            && let Some(sender) = self.room.agent_by_token(token)
        {
            *earlier = self
                .log
                .iter()
                .rev()
                .find(|m| m.from_member == sender.member && m.key.as_deref() == Some(key))
                .cloned();
        }
    }

    /// What must hold after any command.
    pub fn check(&self) {
        let room = &self.room;
        for (i, m) in self.log.iter().enumerate() {
            assert_eq!(m.seq, i as u64 + 1, "seqs are not gapless from 1");
        }
        assert_eq!(
            room.last_seq,
            Seq::new(self.log.len() as u64),
            "last_seq is not the log's end"
        );
        if !room.agents.is_empty() {
            assert!(room.admin_count() >= 1, "members remain but no admin");
        }
        assert!(
            room.agents.len() <= self.limits.max_agents,
            "more agents than the room's limit"
        );
        for (i, a) in room.agents.iter().enumerate() {
            assert!(
                a.cursor <= room.last_seq,
                "cursor of {} past the end",
                a.name
            );
            assert!(
                a.member >= MemberId::FIRST && a.member <= room.last_member,
                "member id out of range"
            );
            for b in &room.agents[i + 1..] {
                assert_ne!(a.member, b.member, "two agents share a member id");
                assert_ne!(a.name, b.name, "two agents share a name");
                assert_ne!(a.token, b.token, "two agents share a token");
            }
        }
    }
}

/// A name a command uses: one of a few (so that commands meet), or anything at all.
#[derive(Arbitrary, Debug)]
pub enum Name {
    Known(u8),
    Raw(String),
}

const NAMES: &[&str] = &["alice", "bob", "carol", "dave", "room-bot", " "];

impl Name {
    fn get(&self) -> String {
        match self {
            Name::Known(i) => NAMES[*i as usize % NAMES.len()].to_string(),
            Name::Raw(s) => s.clone(),
        }
    }
}

/// A seq a delivery acknowledgement names: near the log's end, or anything at all.
#[derive(Arbitrary, Debug)]
pub enum Pos {
    Near(u8),
    Raw(u64),
}

impl Pos {
    fn get(&self, last_seq: Seq) -> Seq {
        match self {
            Pos::Near(d) => last_seq.plus(2).minus(u64::from(*d % 8)),
            Pos::Raw(s) => Seq::new(*s),
        }
    }
}

/// One fuzzed command. `by` picks a token among those ever minted plus one that never
/// was (so departed and unknown agents act too).
#[derive(Arbitrary, Debug)]
pub enum Op {
    Join {
        name: Name,
        reconnect: Option<u8>,
        endpoint: Option<String>,
    },
    Leave {
        by: u8,
    },
    Promote {
        by: u8,
        target: Name,
    },
    Demote {
        by: u8,
        target: Name,
    },
    Kick {
        by: u8,
        target: Name,
    },
    Update {
        by: u8,
        description: Option<String>,
        kind: Option<Name>,
    },
    Send {
        by: u8,
        body: String,
        to: Option<Name>,
        /// One of a few message ids, so that retries and reuses happen.
        key: Option<u8>,
    },
    Unread {
        by: u8,
    },
    Delivered {
        member: u8,
        seq: Pos,
        prev: Pos,
    },
}

/// The room's settings for one run: small limits, so pages get cut and names refused.
#[derive(Arbitrary, Debug)]
struct Setup {
    channel: bool,
    max_page: u8,
    max_name_chars: u8,
    max_message_bytes: u8,
    max_description_chars: u8,
    max_agents: u8,
}

impl Setup {
    fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: usize::from(self.max_message_bytes % 32),
            max_name_chars: usize::from(self.max_name_chars % 12) + 1,
            max_description_chars: usize::from(self.max_description_chars % 16),
            max_page: usize::from(self.max_page % 4) + 1,
            // Half the runs fill a room of one to eight agents; the rest never do.
            max_agents: match self.max_agents % 16 {
                n @ 0..8 => usize::from(n) + 1,
                _ => Limits::default().max_agents,
            },
            ..Limits::default()
        }
    }
}

/// Most commands one input runs (a longer input adds nothing a shorter one cannot).
const MAX_OPS: usize = 256;

/// The fuzz body: a room created from the input's first bytes, then the commands the rest
/// decodes to, checked after each. Panics when a rule is broken; never on input alone.
pub fn room_commands(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    let kind = if setup.channel {
        RoomType::Channel
    } else {
        RoomType::Group
    };
    let (mut sim, creator) = Sim::new("alice", kind, setup.limits());
    let mut tokens = vec![creator, AgentToken::from_wire("never-minted").digest()];
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        let cmd = command(&mut sim, &tokens, op);
        let new_token = match &cmd {
            Command::Join { new_token, .. } => Some(*new_token),
            _ => None,
        };
        if let Ok(Decision {
            reply: Reply::Joined {
                reconnected: false, ..
            },
            ..
        }) = sim.run(cmd)
        {
            tokens.extend(new_token);
        }
    }
}

fn command(sim: &mut Sim, tokens: &[TokenDigest], op: Op) -> Command {
    let pick = |i: u8| tokens[i as usize % tokens.len()];
    match op {
        Op::Join {
            name,
            reconnect,
            endpoint,
        } => Command::Join {
            agent_name: name.get(),
            token: reconnect.map(pick),
            new_token: sim.mint(),
            endpoint,
        },
        Op::Leave { by } => Command::Leave { token: pick(by) },
        Op::Promote { by, target } => Command::Promote {
            token: pick(by),
            target: target.get(),
        },
        Op::Demote { by, target } => Command::Demote {
            token: pick(by),
            target: target.get(),
        },
        Op::Kick { by, target } => Command::Kick {
            token: pick(by),
            target: target.get(),
        },
        Op::Update {
            by,
            description,
            kind,
        } => Command::Update {
            token: pick(by),
            description,
            kind: kind.map(|k| match k {
                Name::Known(i) => ["group", "channel"][i as usize % 2].to_string(),
                Name::Raw(s) => s,
            }),
        },
        Op::Send { by, body, to, key } => Command::Send {
            token: pick(by),
            body,
            to: to.map(|n| n.get()),
            key: key.map(|k| format!("m{}", k % 4)),
            earlier: None,
        },
        Op::Unread { by } => Command::Unread { token: pick(by) },
        Op::Delivered { member, seq, prev } => {
            let last = sim.room.last_seq;
            Command::Delivered {
                member: MemberId::new(u64::from(member % 8)),
                seq: seq.get(last),
                prev: prev.get(last),
            }
        }
    }
}

/// Runs `body` on every file of the kept corpus `fuzz/corpus/<target>/`, for the tests
/// that replay it. Panics (naming the file) when the directory is missing or empty, so
/// a moved corpus cannot pass silently.
pub fn replay_corpus(target: &str, body: fn(&[u8])) {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus")).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {} missing: {e}", dir.display()))
        .map(|entry| entry.expect("fuzz corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    files.sort();
    for path in files {
        let data = std::fs::read(&path).expect("read a fuzz corpus file");
        eprintln!("replaying {}", path.display());
        body(&data);
    }
}
