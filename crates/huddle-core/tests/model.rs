//! The room against a reference model, over generated command sequences.
//!
//! The model below is written from the rules (docs/room-semantics.md and the contract's
//! action list), not from `room.rs`: members with a role and a read cursor, a log of
//! `(seq, from, to)`. Each generated step runs on the real [`Room`] (through the
//! `huddle_core::fuzzing` harness, which plays the actor and its store) and on the model;
//! after each step the two must agree on the reply (success and its content, or the kind
//! of error), the members (ids, names, roles, cursors) and the log, and:
//! - seqs are gapless from 1;
//! - while members remain, at least one is an admin;
//! - a DM is seen only by its sender and its recipient (history, unread, missed);
//! - no cursor is past the end of the log.
//!
//! Names are opaque ASCII words: the model knows nothing of name normalisation.

use std::mem::discriminant;

use huddle_core::fuzzing::Sim;
use huddle_core::{
    AgentToken, Command, Limits, MemberId, Missed, Reply, Role, RoomError, RoomType, Seq,
    TokenDigest,
};
use proptest::prelude::*;

const NAMES: [&str; 4] = ["ann", "bob", "cy", "dee"];
/// A name nobody has: DMs and targets to it are refused.
const STRANGER: &str = "zed";

// ---------------------------------------------------------------------------------------
// The steps

/// One generated command. `by` picks a token among those ever handed out plus one that
/// never was: departed agents and strangers act too.
#[derive(Clone, Debug)]
enum Step {
    Join {
        name: usize,
        reconnect: Option<usize>,
    },
    Leave {
        by: usize,
    },
    Promote {
        by: usize,
        target: usize,
    },
    Demote {
        by: usize,
        target: usize,
    },
    Kick {
        by: usize,
        target: usize,
    },
    Update {
        by: usize,
        describe: bool,
        kind: Option<usize>,
    },
    Send {
        by: usize,
        to: Option<usize>,
    },
    Unread {
        by: usize,
    },
    Delivered {
        member: MemberId,
        seq_back: u64,
        prev_back: u64,
    },
}

/// A name index: one of [`NAMES`], or (the last index) the [`STRANGER`].
fn name(i: usize) -> &'static str {
    NAMES.get(i).copied().unwrap_or(STRANGER)
}

fn step() -> impl Strategy<Value = Step> {
    let by = 0..8usize;
    let target = 0..=NAMES.len();
    prop_oneof![
        4 => (0..NAMES.len(), proptest::option::of(0..8usize))
            .prop_map(|(name, reconnect)| Step::Join { name, reconnect }),
        1 => by.clone().prop_map(|by| Step::Leave { by }),
        2 => (by.clone(), target.clone()).prop_map(|(by, target)| Step::Promote { by, target }),
        2 => (by.clone(), target.clone()).prop_map(|(by, target)| Step::Demote { by, target }),
        1 => (by.clone(), target.clone()).prop_map(|(by, target)| Step::Kick { by, target }),
        1 => (by.clone(), any::<bool>(), proptest::option::of(0..3usize))
            .prop_map(|(by, describe, kind)| Step::Update { by, describe, kind }),
        5 => (by.clone(), proptest::option::of(target))
            .prop_map(|(by, to)| Step::Send { by, to }),
        2 => by.prop_map(|by| Step::Unread { by }),
        1 => (0..7u64, 0..4u64, 0..4u64).prop_map(|(member, seq_back, prev_back)| {
            Step::Delivered { member: MemberId::new(member), seq_back, prev_back }
        }),
    ]
}

// ---------------------------------------------------------------------------------------
// The reference model

#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    id: MemberId,
    name: String,
    admin: bool,
    cursor: Seq,
    token: TokenDigest,
}

/// One log entry: who posted it (0: the room-bot) and, for a DM, to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    from: MemberId,
    to: Option<MemberId>,
}

struct Model {
    members: Vec<Member>,
    log: Vec<Entry>,
    channel: bool,
    last_id: MemberId,
    page: usize,
}

/// A reply reduced to what the model predicts: messages by seq.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Joined {
        member: MemberId,
        admin: bool,
        reconnected: bool,
        missed: Page,
    },
    Done,
    Sent {
        seq: Seq,
        missed: Page,
    },
    Unread(Page),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Page {
    seqs: Vec<Seq>,
    has_more: bool,
}

fn last_seq(log: &[Entry]) -> Seq {
    Seq::new(log.len() as u64)
}

impl Model {
    fn new(creator: &str, token: TokenDigest, channel: bool, page: usize) -> Model {
        Model {
            members: vec![Member {
                id: MemberId::FIRST,
                name: creator.into(),
                admin: true,
                cursor: Seq::ZERO,
                token,
            }],
            log: vec![],
            channel,
            last_id: MemberId::FIRST,
            page,
        }
    }

    /// Only its two ends see a DM; everyone sees the rest.
    fn sees(viewer: MemberId, e: &Entry) -> bool {
        match e.to {
            None => true,
            Some(to) => to == viewer || e.from == viewer,
        }
    }

    fn visible(&self, viewer: MemberId) -> Vec<Seq> {
        (1..=last_seq(&self.log).get())
            .map(Seq::new)
            .filter(|&s| Self::sees(viewer, &self.log[s.get() as usize - 1]))
            .collect()
    }

    /// The first page of what `viewer` has not seen after `after`.
    fn unread(&self, viewer: MemberId, after: Seq) -> Page {
        let all: Vec<Seq> = self
            .visible(viewer)
            .into_iter()
            .filter(|&s| s > after)
            .collect();
        Page {
            has_more: all.len() > self.page,
            seqs: all.into_iter().take(self.page).collect(),
        }
    }

    fn post(&mut self, from: MemberId, to: Option<MemberId>) -> Seq {
        self.log.push(Entry { from, to });
        last_seq(&self.log)
    }

    fn notice(&mut self) {
        self.post(MemberId::BOT, None);
    }

    fn by_token(&self, t: &TokenDigest) -> Result<usize, RoomError> {
        self.members
            .iter()
            .position(|m| &m.token == t)
            .ok_or(RoomError::InvalidToken)
    }

    fn by_name(&self, name: &str) -> Result<usize, RoomError> {
        self.members
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| RoomError::AgentNotFound(name.into()))
    }

    fn admin(&self, t: &TokenDigest) -> Result<usize, RoomError> {
        let i = self.by_token(t)?;
        if self.members[i].admin {
            Ok(i)
        } else {
            Err(RoomError::AdminRequired)
        }
    }

    fn admins(&self) -> usize {
        self.members.iter().filter(|m| m.admin).count()
    }

    /// After reading `page`, the reader has seen it all, or up to the page's end.
    fn read(&mut self, i: usize, page: &Page) {
        let end = if page.has_more {
            *page.seqs.last().expect("a cut page is not empty")
        } else {
            last_seq(&self.log)
        };
        let m = &mut self.members[i];
        m.cursor = m.cursor.max(end);
    }

    fn join(
        &mut self,
        name: &str,
        token: Option<TokenDigest>,
        new: TokenDigest,
    ) -> Result<Outcome, RoomError> {
        if let Ok(i) = self.by_name(name) {
            if token != Some(self.members[i].token) {
                return Err(RoomError::NameTaken(name.into()));
            }
            let missed = self.unread(self.members[i].id, self.members[i].cursor);
            self.read(i, &missed);
            let m = &self.members[i];
            return Ok(Outcome::Joined {
                member: m.id,
                admin: m.admin,
                reconnected: true,
                missed,
            });
        }
        self.last_id = self.last_id.next();
        let admin = self.admins() == 0;
        self.notice();
        self.members.push(Member {
            id: self.last_id,
            name: name.into(),
            admin,
            cursor: last_seq(&self.log),
            token: new,
        });
        Ok(Outcome::Joined {
            member: self.last_id,
            admin,
            reconnected: false,
            missed: Page::default(),
        })
    }

    fn leave(&mut self, t: &TokenDigest) -> Result<Outcome, RoomError> {
        let i = self.by_token(t)?;
        let gone = self.members.remove(i);
        if gone.admin && self.admins() == 0 {
            // The longest-standing remaining member takes over.
            if let Some(heir) = self.members.first_mut() {
                heir.admin = true;
            }
        }
        self.notice();
        Ok(Outcome::Done)
    }

    fn set_role(
        &mut self,
        t: &TokenDigest,
        target: &str,
        admin: bool,
    ) -> Result<Outcome, RoomError> {
        self.admin(t)?;
        let j = self.by_name(target)?;
        if !admin && self.members[j].admin && self.admins() == 1 {
            return Err(RoomError::LastAdmin);
        }
        self.members[j].admin = admin;
        self.notice();
        Ok(Outcome::Done)
    }

    fn kick(&mut self, t: &TokenDigest, target: &str) -> Result<Outcome, RoomError> {
        let i = self.admin(t)?;
        let j = self.by_name(target)?;
        if i == j {
            return Err(RoomError::KickSelf);
        }
        self.members.remove(j);
        self.notice();
        Ok(Outcome::Done)
    }

    fn update(
        &mut self,
        t: &TokenDigest,
        describe: bool,
        kind: Option<&str>,
    ) -> Result<Outcome, RoomError> {
        if !describe && kind.is_none() {
            return Err(RoomError::NothingToUpdate);
        }
        self.admin(t)?;
        match kind {
            Some("group") => self.channel = false,
            Some("channel") => self.channel = true,
            Some(other) => return Err(RoomError::Invalid(other.into())),
            None => {}
        }
        self.notice();
        Ok(Outcome::Done)
    }

    fn send(&mut self, t: &TokenDigest, to: Option<&str>) -> Result<Outcome, RoomError> {
        let i = self.by_token(t)?;
        if self.channel && !self.members[i].admin {
            return Err(RoomError::ChannelAdminsOnly);
        }
        let to = to.map(|n| self.by_name(n).map(|j| self.members[j].id));
        let to = to.transpose()?;
        let missed = self.unread(self.members[i].id, self.members[i].cursor);
        let seq = self.post(self.members[i].id, to);
        let seen = if missed.has_more {
            *missed.seqs.last().expect("a cut page is not empty")
        } else {
            seq
        };
        let m = &mut self.members[i];
        m.cursor = m.cursor.max(seen);
        Ok(Outcome::Sent { seq, missed })
    }

    fn unread_reply(&mut self, t: &TokenDigest) -> Result<Outcome, RoomError> {
        let i = self.by_token(t)?;
        let page = self.unread(self.members[i].id, self.members[i].cursor);
        self.read(i, &page);
        Ok(Outcome::Unread(page))
    }

    /// A push acknowledged: the cursor moves on only past what it had already seen.
    fn delivered(&mut self, member: MemberId, seq: Seq, prev: Seq) -> Result<Outcome, RoomError> {
        let end = last_seq(&self.log);
        if let Some(m) = self.members.iter_mut().find(|m| m.id == member)
            && m.cursor >= prev
            && seq > m.cursor
            && seq <= end
        {
            m.cursor = seq;
        }
        Ok(Outcome::Done)
    }
}

// ---------------------------------------------------------------------------------------
// Running both

fn page_of(missed: &Missed) -> Page {
    Page {
        seqs: missed.messages.iter().map(|m| m.seq).collect(),
        has_more: missed.has_more,
    }
}

fn outcome(reply: Reply) -> Outcome {
    match reply {
        Reply::Joined {
            member,
            role,
            reconnected,
            missed,
            ..
        } => Outcome::Joined {
            member,
            admin: role == Role::Admin,
            reconnected,
            missed: page_of(&missed),
        },
        Reply::Sent { seq, missed } => Outcome::Sent {
            seq,
            missed: page_of(&missed),
        },
        Reply::Unread(page) => Outcome::Unread(page_of(&page)),
        Reply::Left
        | Reply::Promoted { .. }
        | Reply::Demoted { .. }
        | Reply::Kicked { .. }
        | Reply::Updated { .. }
        | Reply::Delivered => Outcome::Done,
    }
}

struct Both {
    sim: Sim,
    model: Model,
    /// Every token handed out, then one never handed out.
    tokens: Vec<TokenDigest>,
}

impl Both {
    fn new(channel: bool, page: usize) -> Both {
        let kind = if channel {
            RoomType::Channel
        } else {
            RoomType::Group
        };
        let limits = Limits {
            max_page: page,
            ..Limits::default()
        };
        let (sim, creator) = Sim::new(NAMES[0], kind, limits);
        Both {
            sim,
            model: Model::new(NAMES[0], creator, channel, page),
            tokens: vec![creator, AgentToken::from_wire("never-handed-out").digest()],
        }
    }

    fn token(&self, by: usize) -> TokenDigest {
        self.tokens[by % self.tokens.len()]
    }

    fn step(&mut self, step: &Step) {
        let (cmd, expected) = match *step {
            Step::Join { name: n, reconnect } => {
                let token = reconnect.map(|by| self.token(by));
                let new_token = self.sim.mint();
                let expected = self.model.join(name(n), token, new_token);
                if let Ok(Outcome::Joined {
                    reconnected: false, ..
                }) = expected
                {
                    self.tokens.insert(self.tokens.len() - 1, new_token);
                }
                let cmd = Command::Join {
                    agent_name: name(n).into(),
                    token,
                    new_token,
                    endpoint: None,
                };
                (cmd, expected)
            }
            Step::Leave { by } => {
                let token = self.token(by);
                (Command::Leave { token }, self.model.leave(&token))
            }
            Step::Promote { by, target } => {
                let token = self.token(by);
                let expected = self.model.set_role(&token, name(target), true);
                let target = name(target).into();
                (Command::Promote { token, target }, expected)
            }
            Step::Demote { by, target } => {
                let token = self.token(by);
                let expected = self.model.set_role(&token, name(target), false);
                let target = name(target).into();
                (Command::Demote { token, target }, expected)
            }
            Step::Kick { by, target } => {
                let token = self.token(by);
                let expected = self.model.kick(&token, name(target));
                let target = name(target).into();
                (Command::Kick { token, target }, expected)
            }
            Step::Update { by, describe, kind } => {
                let token = self.token(by);
                let kind = kind.map(|k| ["group", "channel", "forum"][k]);
                let expected = self.model.update(&token, describe, kind);
                let cmd = Command::Update {
                    token,
                    description: describe.then(|| "about".to_string()),
                    kind: kind.map(str::to_string),
                };
                (cmd, expected)
            }
            Step::Send { by, to } => {
                let token = self.token(by);
                let to = to.map(name);
                let expected = self.model.send(&token, to);
                let body = format!("message {}", self.model.log.len());
                let to = to.map(str::to_string);
                let key = None;
                let earlier = None;
                (
                    Command::Send {
                        token,
                        body,
                        to,
                        key,
                        earlier,
                    },
                    expected,
                )
            }
            Step::Unread { by } => {
                let token = self.token(by);
                (Command::Unread { token }, self.model.unread_reply(&token))
            }
            Step::Delivered {
                member,
                seq_back,
                prev_back,
            } => {
                let end = self.sim.room.last_seq;
                let seq = end.next().minus(seq_back);
                let prev = end.minus(prev_back);
                let expected = self.model.delivered(member, seq, prev);
                (Command::Delivered { member, seq, prev }, expected)
            }
        };
        let actual = self.sim.run(cmd).map(|d| outcome(d.reply));
        match (&actual, &expected) {
            (Ok(a), Ok(e)) => assert_eq!(a, e, "reply differs from the model's"),
            (Err(a), Err(e)) => assert_eq!(
                discriminant(a),
                discriminant(e),
                "refused with {a:?}, the model says {e:?}"
            ),
            _ => panic!("room says {actual:?}, the model says {expected:?}"),
        }
        self.agree();
    }

    /// The room and the model hold the same members and log, and every viewer (present
    /// or departed) sees the same messages.
    fn agree(&self) {
        let room = &self.sim.room;
        let members: Vec<(MemberId, &str, bool, Seq)> = room
            .agents
            .iter()
            .map(|a| (a.member, a.name.as_str(), a.role == Role::Admin, a.cursor))
            .collect();
        let expected: Vec<(MemberId, &str, bool, Seq)> = self
            .model
            .members
            .iter()
            .map(|m| (m.id, m.name.as_str(), m.admin, m.cursor))
            .collect();
        assert_eq!(members, expected, "members differ from the model's");
        assert_eq!(room.kind == RoomType::Channel, self.model.channel);
        let log: Vec<Entry> = self
            .sim
            .log
            .iter()
            .map(|m| Entry {
                from: m.from_member,
                to: m.to_member,
            })
            .collect();
        assert_eq!(log, self.model.log, "log differs from the model's");
        if !room.agents.is_empty() {
            assert!(room.admin_count() >= 1, "members but no admin");
        }
        for viewer in (1..=self.model.last_id.get()).map(MemberId::new) {
            let seen: Vec<Seq> = self.sim.history(viewer).map(|m| m.seq).collect();
            assert_eq!(
                seen,
                self.model.visible(viewer),
                "history of member {viewer}"
            );
        }
        for a in &room.agents {
            assert!(a.cursor <= room.last_seq, "cursor past the end");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_room_behaves_like_the_model(
        channel in any::<bool>(),
        page in 1..4usize,
        steps in proptest::collection::vec(step(), 1..48),
    ) {
        let mut both = Both::new(channel, page);
        for step in &steps {
            both.step(step);
        }
    }
}

/// The model is not vacuous: a sequence that the rules constrain (DMs, a cut page, the
/// last admin leaving) runs and ends where the rules say.
#[test]
fn the_model_follows_a_known_story() {
    let mut both = Both::new(false, 1);
    let steps = [
        Step::Join {
            name: 1,
            reconnect: None,
        }, // bob (token 1)
        Step::Join {
            name: 2,
            reconnect: None,
        }, // cy (token 2)
        Step::Send { by: 0, to: Some(1) }, // ann -> bob (DM)
        Step::Send { by: 2, to: None },    // cy broadcasts
        Step::Unread { by: 1 },            // bob: one message of two (page 1)
        Step::Demote { by: 0, target: 0 }, // ann is the last admin: refused
        Step::Leave { by: 0 },             // ann leaves: bob takes over
        Step::Kick { by: 1, target: 2 },   // bob kicks cy
    ];
    for step in &steps {
        both.step(step);
    }
    let room = &both.sim.room;
    assert_eq!(room.agents.len(), 1);
    assert_eq!(room.agents[0].name, "bob");
    assert_eq!(room.agents[0].role, Role::Admin);
    // cy never saw ann's DM to bob.
    assert!(!both.model.visible(MemberId::new(3)).contains(&Seq::new(3)));
    assert!(both.model.visible(MemberId::new(2)).contains(&Seq::new(3)));
}
