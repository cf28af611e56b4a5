//! The room's rules (docs/protocol.md, sections 'Actions', 'Missed messages and the read
//! cursor', and the differences from join.cloud that live in core), tested on the pure
//! state machine.
//!
//! [`Sim`] plays the room actor: it keeps the message log as a `Vec<Message>` built from
//! the `Posted` events, answers [`Room::log_read`] from that log (visible messages after
//! the cursor, cut at the limit, `has_more` when cut), then calls [`Room::handle`] and
//! checks the rules that hold after any command (`huddle_core::fuzzing`). Tests
//! read as scenarios: "alice creates, bob joins, alice DMs bob, carol joins...".

use std::ops::{Deref, DerefMut};

use huddle_core::command::LogRead;
use huddle_core::fuzzing;
use huddle_core::room::{Ctx, Decision};
use huddle_core::validate;
use huddle_core::{
    AgentToken, Command, Event, Limits, MemberId, Missed, ROOM_BOT, Reply, Role, RoomError,
    RoomType, Seq, Timestamp, TokenDigest,
};

// ---------------------------------------------------------------------------------------
// The harness

/// The shared harness (`huddle_core::fuzzing::Sim`: the log, the actor's path, the
/// checks after every command) with the scenario helpers below.
struct Sim(fuzzing::Sim);

impl Deref for Sim {
    type Target = fuzzing::Sim;
    fn deref(&self) -> &fuzzing::Sim {
        &self.0
    }
}

impl DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut fuzzing::Sim {
        &mut self.0
    }
}

impl Sim {
    /// A group room created by `creator`; returns the creator's token.
    fn new(creator: &str) -> (Sim, TokenDigest) {
        Self::with_limits(creator, Limits::default())
    }

    fn with_limits(creator: &str, limits: Limits) -> (Sim, TokenDigest) {
        let (sim, token) = fuzzing::Sim::new(creator, RoomType::Group, limits);
        (Sim(sim), token)
    }

    fn reply(&mut self, cmd: Command) -> Reply {
        self.run(cmd).expect("command should succeed").reply
    }

    fn error(&mut self, cmd: Command) -> String {
        self.run(cmd)
            .expect_err("command should be refused")
            .to_string()
    }

    /// A new agent joins; returns its token.
    fn join(&mut self, name: &str) -> TokenDigest {
        self.join_with(name, None).expect("join should succeed");
        self.room.agent_by_name(name).unwrap().token
    }

    fn join_with(&mut self, name: &str, token: Option<TokenDigest>) -> Result<Decision, RoomError> {
        let new_token = self.mint();
        self.run(join_cmd(name, token, new_token, None))
    }

    fn send(&mut self, token: TokenDigest, body: &str) -> Reply {
        self.reply(send_cmd(token, body, None))
    }

    fn dm(&mut self, token: TokenDigest, to: &str, body: &str) -> Reply {
        self.reply(send_cmd(token, body, Some(to)))
    }

    fn unread(&mut self, token: TokenDigest) -> Missed {
        match self.reply(Command::Unread { token }) {
            Reply::Unread(missed) => missed,
            other => panic!("expected Unread, got {other:?}"),
        }
    }

    fn cursor(&self, name: &str) -> Seq {
        self.room.agent_by_name(name).unwrap().cursor
    }

    fn member(&self, name: &str) -> MemberId {
        self.room.agent_by_name(name).unwrap().member
    }

    fn role(&self, name: &str) -> Role {
        self.room.agent_by_name(name).unwrap().role
    }

    fn last_body(&self) -> &str {
        &self.log.last().expect("log is empty").body
    }

    /// Bodies of everything `viewer` may see, oldest first (what history would show).
    fn visible_bodies(&self, viewer: MemberId) -> Vec<&str> {
        self.log
            .iter()
            .filter(|m| m.visible_to(viewer))
            .map(|m| m.body.as_str())
            .collect()
    }
}

fn join_cmd(
    name: &str,
    token: Option<TokenDigest>,
    new_token: TokenDigest,
    endpoint: Option<&str>,
) -> Command {
    Command::Join {
        agent_name: name.into(),
        token,
        new_token,
        endpoint: endpoint.map(str::to_string),
    }
}

fn send_cmd(token: TokenDigest, body: &str, to: Option<&str>) -> Command {
    Command::Send {
        token,
        body: body.into(),
        to: to.map(str::to_string),
        key: None,
        earlier: None,
    }
}

fn update_cmd(token: TokenDigest, description: Option<&str>, kind: Option<&str>) -> Command {
    Command::Update {
        token,
        description: description.map(str::to_string),
        kind: kind.map(str::to_string),
    }
}

fn promote(token: TokenDigest, target: &str) -> Command {
    Command::Promote {
        token,
        target: target.into(),
    }
}

fn demote(token: TokenDigest, target: &str) -> Command {
    Command::Demote {
        token,
        target: target.into(),
    }
}

fn kick(token: TokenDigest, target: &str) -> Command {
    Command::Kick {
        token,
        target: target.into(),
    }
}

fn bodies(missed: &Missed) -> Vec<&str> {
    missed.messages.iter().map(|m| m.body.as_str()).collect()
}

fn missed_of(reply: &Reply) -> &Missed {
    match reply {
        Reply::Joined { missed, .. } | Reply::Sent { missed, .. } | Reply::Unread(missed) => missed,
        other => panic!("no missed messages in {other:?}"),
    }
}

fn unknown_token() -> TokenDigest {
    AgentToken::from_wire("not-a-token-of-this-room").digest()
}

// ---------------------------------------------------------------------------------------
// room.create

#[test]
fn creator_is_the_only_admin_and_no_notice_is_posted() {
    let (sim, _) = Sim::new("alice");
    assert_eq!(sim.room.agents.len(), 1);
    let alice = &sim.room.agents[0];
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.role, Role::Admin);
    assert_eq!(alice.cursor, 0);
    assert_eq!(sim.room.last_seq, 0);
    assert_eq!(sim.room.admin_count(), 1);
    assert!(sim.log.is_empty());
}

// ---------------------------------------------------------------------------------------
// room.join

#[test]
fn newcomer_joins_as_member_with_a_bot_notice() {
    let (mut sim, _) = Sim::new("alice");
    let new_token = sim.mint();
    let decision = sim.run(join_cmd("bob", None, new_token, None)).unwrap();
    match decision.reply {
        Reply::Joined {
            member,
            agent_name,
            role,
            reconnected,
            missed,
        } => {
            assert_eq!(member, sim.member("bob"));
            assert_eq!(agent_name, "bob");
            assert_eq!(role, Role::Member);
            assert!(!reconnected);
            assert_eq!(missed, Missed::default());
        }
        other => panic!("expected Joined, got {other:?}"),
    }
    assert_eq!(sim.role("bob"), Role::Member);
    assert_eq!(sim.room.agent_by_name("bob").unwrap().token, new_token);
    let notice = sim.log.last().unwrap();
    assert_eq!(notice.from, ROOM_BOT);
    assert_eq!(notice.from_member, 0);
    assert_eq!(notice.body, "bob joined the room");
    assert_eq!(notice.to, None);
    assert_eq!(notice.seq, 1);
}

#[test]
fn newcomer_cursor_sits_on_its_own_join_notice() {
    let (mut sim, alice) = Sim::new("alice");
    sim.send(alice, "before bob");
    sim.send(alice, "still before bob");
    sim.join("bob");
    let notice_seq = sim.log.last().unwrap().seq;
    assert_eq!(sim.last_body(), "bob joined the room");
    assert_eq!(sim.cursor("bob"), notice_seq);
    assert_eq!(sim.room.last_seq, notice_seq);
}

#[test]
fn newcomer_misses_nothing_from_before_it_came() {
    let (mut sim, alice) = Sim::new("alice");
    sim.send(alice, "old news");
    let bob = sim.join("bob");
    assert_eq!(sim.unread(bob), Missed::default());
    sim.send(alice, "fresh");
    assert_eq!(bodies(&sim.unread(bob)), ["fresh"]);
}

#[test]
fn newcomer_join_reads_no_log() {
    let (mut sim, alice) = Sim::new("alice");
    sim.send(alice, "hello");
    let cmd = join_cmd("bob", None, sim.mint(), None);
    assert_eq!(sim.room.log_read(&cmd, &sim.limits), None);
}

#[test]
fn taken_name_without_token_is_refused_with_the_contract_text() {
    let (mut sim, _) = Sim::new("alice");
    sim.join("bob");
    let err = sim.join_with("bob", None).unwrap_err();
    assert_eq!(err, RoomError::NameTaken("bob".into()));
    assert_eq!(
        err.to_string(),
        "Agent name \"bob\" is already taken in this room. If you own this name, use your agentToken to reconnect."
    );
}

#[test]
fn taken_name_with_someone_elses_token_is_refused() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    let err = sim.join_with("bob", Some(alice)).unwrap_err();
    assert_eq!(err, RoomError::NameTaken("bob".into()));
    let err = sim.join_with("bob", Some(unknown_token())).unwrap_err();
    assert_eq!(err, RoomError::NameTaken("bob".into()));
}

/// A room holds at most `max_agents`: a newcomer past it is refused naming the limit,
/// and adds nothing; an agent reconnecting is let in; a kick makes room again.
#[test]
fn a_full_room_refuses_newcomers_naming_the_limit_and_lets_members_reconnect() {
    let limits = Limits {
        max_agents: 3,
        ..Limits::default()
    };
    let (mut sim, alice) = Sim::with_limits("alice", limits);
    let bob = sim.join("bob");
    sim.join("carol");
    let log_before = sim.room.last_seq;
    let err = sim.join_with("dave", None).unwrap_err();
    assert_eq!(err, RoomError::RoomFull(3));
    assert_eq!(err.to_string(), "Room is full: the limit is 3 agents");
    assert_eq!(sim.room.agents.len(), 3);
    assert_eq!(
        sim.room.last_seq, log_before,
        "a refused join posted a notice"
    );

    assert!(
        sim.join_with("bob", Some(bob)).is_ok(),
        "a member could not reconnect"
    );
    sim.reply(kick(alice, "carol"));
    sim.join("dave");
    assert_eq!(sim.room.agents.len(), 3);
}

#[test]
fn creator_name_is_taken_too() {
    let (mut sim, _) = Sim::new("alice");
    assert_eq!(
        sim.join_with("alice", None).unwrap_err(),
        RoomError::NameTaken("alice".into())
    );
}

#[test]
fn reconnect_with_the_right_token_keeps_role_member_id_and_token() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.reply(promote(alice, "bob"));
    let member = sim.member("bob");
    let agents_before = sim.room.agents.len();
    let log_before = sim.log.len();

    let reply = sim.join_with("bob", Some(bob)).unwrap().reply;
    match reply {
        Reply::Joined {
            member: m,
            agent_name,
            role,
            reconnected,
            ..
        } => {
            assert_eq!(m, member);
            assert_eq!(agent_name, "bob");
            assert_eq!(role, Role::Admin);
            assert!(reconnected);
        }
        other => panic!("expected Joined, got {other:?}"),
    }
    assert_eq!(sim.member("bob"), member);
    assert_eq!(sim.role("bob"), Role::Admin);
    assert_eq!(sim.room.agent_by_name("bob").unwrap().token, bob);
    assert_eq!(sim.room.agents.len(), agents_before);
    assert_eq!(sim.log.len(), log_before, "a reconnect posts no notice");
}

#[test]
fn reconnect_updates_the_endpoint() {
    let (mut sim, _) = Sim::new("alice");
    let new_token = sim.mint();
    sim.run(join_cmd(
        "bob",
        None,
        new_token,
        Some("https://bob.example/a2a"),
    ))
    .unwrap();
    assert_eq!(
        sim.room.agent_by_name("bob").unwrap().endpoint.as_deref(),
        Some("https://bob.example/a2a")
    );
    let unused = sim.mint();
    sim.run(join_cmd(
        "bob",
        Some(new_token),
        unused,
        Some("https://bob2.example/a2a"),
    ))
    .unwrap();
    assert_eq!(
        sim.room.agent_by_name("bob").unwrap().endpoint.as_deref(),
        Some("https://bob2.example/a2a")
    );
    // The token minted for the reconnect was not used: bob keeps his own.
    assert_eq!(sim.room.agent_by_name("bob").unwrap().token, new_token);
}

#[test]
fn reconnect_without_endpoint_keeps_the_old_one() {
    let (mut sim, _) = Sim::new("alice");
    let bob = sim.mint();
    sim.run(join_cmd("bob", None, bob, Some("https://bob.example/a2a")))
        .unwrap();
    sim.join_with("bob", Some(bob)).unwrap();
    assert_eq!(
        sim.room.agent_by_name("bob").unwrap().endpoint.as_deref(),
        Some("https://bob.example/a2a")
    );
}

#[test]
fn reconnect_returns_missed_messages_and_moves_the_cursor() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.send(alice, "one");
    sim.send(alice, "two");
    sim.join("carol");

    let cmd = join_cmd("bob", Some(bob), sim.mint(), None);
    assert_eq!(
        sim.room.log_read(&cmd, &sim.limits),
        Some(LogRead {
            viewer: sim.member("bob"),
            after: sim.cursor("bob"),
            limit: sim.limits.max_page,
        })
    );
    let reply = sim.reply(cmd);
    assert_eq!(
        bodies(missed_of(&reply)),
        ["one", "two", "carol joined the room"]
    );
    assert!(!missed_of(&reply).has_more);
    assert_eq!(sim.cursor("bob"), sim.room.last_seq);

    // Nothing is handed out twice.
    let reply = sim.join_with("bob", Some(bob)).unwrap().reply;
    assert!(missed_of(&reply).messages.is_empty());
}

#[test]
fn reconnect_hands_out_missed_messages_a_page_at_a_time() {
    let limits = Limits {
        max_page: 2,
        ..Limits::default()
    };
    let (mut sim, alice) = Sim::with_limits("alice", limits);
    let bob = sim.join("bob");
    for body in ["m1", "m2", "m3", "m4", "m5"] {
        sim.send(alice, body);
    }

    let reply = sim.join_with("bob", Some(bob)).unwrap().reply;
    let missed = missed_of(&reply);
    assert_eq!(bodies(missed), ["m1", "m2"]);
    assert!(missed.has_more);
    assert_eq!(sim.cursor("bob"), missed.messages[1].seq);

    assert_eq!(bodies(&sim.unread(bob)), ["m3", "m4"]);
    let last = sim.unread(bob);
    assert_eq!(bodies(&last), ["m5"]);
    assert!(!last.has_more);
    assert_eq!(sim.cursor("bob"), sim.room.last_seq);
}

#[test]
fn member_ids_are_never_reused() {
    let (mut sim, _) = Sim::new("alice");
    let bob = sim.join("bob");
    let first = sim.member("bob");
    sim.reply(Command::Leave { token: bob });
    sim.join("carol");
    sim.join("bob");
    let ids: Vec<MemberId> = sim.room.agents.iter().map(|a| a.member).collect();
    assert_eq!(ids.len(), 3);
    assert!(!ids[1..].contains(&first));
    assert_ne!(sim.member("bob"), first);
    assert!(sim.member("bob") > sim.member("carol"));
}

// ---------------------------------------------------------------------------------------
// room.leave

#[test]
fn leaving_posts_a_notice_and_removes_the_agent() {
    let (mut sim, _) = Sim::new("alice");
    let bob = sim.join("bob");
    assert_eq!(sim.reply(Command::Leave { token: bob }), Reply::Left);
    assert_eq!(sim.last_body(), "bob left the room");
    assert_eq!(sim.log.last().unwrap().from, ROOM_BOT);
    assert!(sim.room.agent_by_name("bob").is_none());
}

#[test]
fn token_stops_working_after_leaving() {
    let (mut sim, _) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.reply(Command::Leave { token: bob });
    let invalid = "Invalid agentToken";
    assert_eq!(sim.error(send_cmd(bob, "hi", None)), invalid);
    assert_eq!(sim.error(Command::Unread { token: bob }), invalid);
    assert_eq!(sim.error(Command::Leave { token: bob }), invalid);
    assert_eq!(sim.error(promote(bob, "alice")), invalid);
    assert_eq!(sim.error(update_cmd(bob, Some("x"), None)), invalid);
    assert_eq!(sim.room.viewer(&bob), Err(RoomError::InvalidToken));
    assert_eq!(
        sim.room
            .log_read(&Command::Unread { token: bob }, &sim.limits),
        None
    );
}

#[test]
fn when_the_last_admin_leaves_the_longest_standing_member_becomes_admin() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    sim.join("carol");
    sim.reply(Command::Leave { token: alice });
    assert_eq!(sim.role("bob"), Role::Admin);
    assert_eq!(sim.role("carol"), Role::Member);
    assert_eq!(sim.room.admin_count(), 1);
    assert_eq!(sim.last_body(), "alice left the room");
}

#[test]
fn when_one_of_two_admins_leaves_nobody_else_is_promoted() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    sim.join("carol");
    sim.reply(promote(alice, "carol"));
    sim.reply(Command::Leave { token: alice });
    assert_eq!(sim.role("bob"), Role::Member);
    assert_eq!(sim.role("carol"), Role::Admin);
    assert_eq!(sim.room.admin_count(), 1);
}

#[test]
fn the_last_agent_can_leave() {
    let (mut sim, alice) = Sim::new("alice");
    sim.reply(Command::Leave { token: alice });
    assert!(sim.room.agents.is_empty());
    assert_eq!(sim.last_body(), "alice left the room");
}

#[test]
fn the_first_to_join_a_room_everyone_left_becomes_its_admin() {
    let (mut sim, alice) = Sim::new("alice");
    sim.reply(Command::Leave { token: alice });
    let bob = sim.join("bob");
    assert_eq!(sim.role("bob"), Role::Admin);
    // From then on joiners are members again, and the room can be run: bob updates it.
    sim.join("carol");
    assert_eq!(sim.role("carol"), Role::Member);
    sim.reply(update_cmd(bob, None, Some("channel")));
    assert_eq!(sim.room.admin_count(), 1);
}

#[test]
fn a_freed_name_goes_to_a_newcomer_and_the_old_token_stays_dead() {
    let (mut sim, _) = Sim::new("alice");
    let old_bob = sim.join("bob");
    let old_member = sim.member("bob");
    sim.reply(Command::Leave { token: old_bob });
    // Presenting the old token does not resurrect the old agent: it is a fresh join.
    let reply = sim.join_with("bob", Some(old_bob)).unwrap().reply;
    assert!(matches!(
        reply,
        Reply::Joined {
            reconnected: false,
            role: Role::Member,
            ..
        }
    ));
    assert_ne!(sim.member("bob"), old_member);
    assert_eq!(sim.last_body(), "bob joined the room");
    assert_eq!(
        sim.error(send_cmd(old_bob, "hi", None)),
        "Invalid agentToken"
    );
}

// ---------------------------------------------------------------------------------------
// room.promote / room.demote / room.kick

#[test]
fn admin_promotes_a_member_with_a_notice() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    assert_eq!(
        sim.reply(promote(alice, "bob")),
        Reply::Promoted {
            target: "bob".into()
        }
    );
    assert_eq!(sim.role("bob"), Role::Admin);
    assert_eq!(sim.last_body(), "alice promoted bob to admin");
    assert_eq!(sim.log.last().unwrap().from, ROOM_BOT);
}

#[test]
fn admin_demotes_an_admin_with_a_notice() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    sim.reply(promote(alice, "bob"));
    assert_eq!(
        sim.reply(demote(alice, "bob")),
        Reply::Demoted {
            target: "bob".into()
        }
    );
    assert_eq!(sim.role("bob"), Role::Member);
    assert_eq!(sim.last_body(), "alice demoted bob to member");
}

#[test]
fn admin_kicks_a_member_with_a_notice() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    assert_eq!(
        sim.reply(kick(alice, "bob")),
        Reply::Kicked {
            target: "bob".into()
        }
    );
    assert!(sim.room.agent_by_name("bob").is_none());
    assert_eq!(sim.last_body(), "alice kicked bob from the room");
}

#[test]
fn kicked_agents_token_stops_working() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.reply(kick(alice, "bob"));
    assert_eq!(
        sim.error(send_cmd(bob, "let me back", None)),
        "Invalid agentToken"
    );
    assert_eq!(
        sim.error(Command::Unread { token: bob }),
        "Invalid agentToken"
    );
    assert_eq!(
        sim.error(Command::Leave { token: bob }),
        "Invalid agentToken"
    );
    // The kicked name is free again, for a brand-new member.
    let reply = sim.join_with("bob", Some(bob)).unwrap().reply;
    assert!(matches!(
        reply,
        Reply::Joined {
            reconnected: false,
            ..
        }
    ));
}

#[test]
fn an_admin_can_kick_another_admin() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    sim.reply(promote(alice, "bob"));
    sim.reply(kick(alice, "bob"));
    assert!(sim.room.agent_by_name("bob").is_none());
    assert_eq!(sim.room.admin_count(), 1);
}

#[test]
fn members_need_the_admin_role() {
    let (mut sim, _) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.join("carol");
    let required = "Admin role required";
    assert_eq!(sim.error(promote(bob, "carol")), required);
    assert_eq!(sim.error(promote(bob, "bob")), required);
    assert_eq!(sim.error(demote(bob, "alice")), required);
    assert_eq!(sim.error(kick(bob, "carol")), required);
    assert_eq!(sim.error(update_cmd(bob, Some("mine now"), None)), required);
    assert_eq!(sim.error(update_cmd(bob, None, Some("channel"))), required);
}

#[test]
fn admin_actions_with_an_unknown_token_are_invalid() {
    let (mut sim, _) = Sim::new("alice");
    sim.join("bob");
    let t = unknown_token();
    assert_eq!(sim.error(promote(t, "bob")), "Invalid agentToken");
    assert_eq!(sim.error(demote(t, "alice")), "Invalid agentToken");
    assert_eq!(sim.error(kick(t, "bob")), "Invalid agentToken");
    assert_eq!(
        sim.error(update_cmd(t, Some("x"), None)),
        "Invalid agentToken"
    );
}

#[test]
fn unknown_target_is_not_found_in_room() {
    let (mut sim, alice) = Sim::new("alice");
    let expected = "Agent \"ghost\" not found in room";
    assert_eq!(sim.error(promote(alice, "ghost")), expected);
    assert_eq!(sim.error(demote(alice, "ghost")), expected);
    assert_eq!(sim.error(kick(alice, "ghost")), expected);
    assert_eq!(
        sim.run(kick(alice, "ghost")).unwrap_err(),
        RoomError::AgentNotFound("ghost".into())
    );
    // The room-bot is not a member either.
    assert_eq!(
        sim.error(kick(alice, ROOM_BOT)),
        "Agent \"room-bot\" not found in room"
    );
}

#[test]
fn a_departed_agent_is_not_found() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.reply(Command::Leave { token: bob });
    assert_eq!(
        sim.error(promote(alice, "bob")),
        "Agent \"bob\" not found in room"
    );
}

#[test]
fn the_only_admin_cannot_demote_itself() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    assert_eq!(
        sim.error(demote(alice, "alice")),
        "Cannot demote the last admin"
    );
    assert_eq!(sim.role("alice"), Role::Admin);
}

#[test]
fn an_admin_can_demote_itself_while_another_admin_remains() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.reply(promote(alice, "bob"));
    sim.reply(demote(alice, "alice"));
    assert_eq!(sim.role("alice"), Role::Member);
    assert_eq!(sim.last_body(), "alice demoted alice to member");
    // Now bob is the last admin.
    assert_eq!(
        sim.error(demote(bob, "bob")),
        "Cannot demote the last admin"
    );
}

#[test]
fn demoting_a_member_is_allowed_with_a_single_admin() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    sim.reply(demote(alice, "bob"));
    assert_eq!(sim.role("bob"), Role::Member);
    assert_eq!(sim.role("alice"), Role::Admin);
}

#[test]
fn admin_cannot_kick_itself() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    assert_eq!(sim.error(kick(alice, "alice")), "Cannot kick yourself");
    assert!(sim.room.agent_by_name("alice").is_some());
}

// ---------------------------------------------------------------------------------------
// room.update

#[test]
fn update_without_fields_is_refused_before_the_token_is_checked() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    let nothing = "At least one of description or type must be provided";
    assert_eq!(sim.error(update_cmd(unknown_token(), None, None)), nothing);
    assert_eq!(sim.error(update_cmd(bob, None, None)), nothing);
    assert_eq!(sim.error(update_cmd(alice, None, None)), nothing);
}

#[test]
fn update_of_the_description_only() {
    let (mut sim, alice) = Sim::new("alice");
    assert_eq!(
        sim.reply(update_cmd(alice, Some("Backend crew"), None)),
        Reply::Updated {
            changes: vec!["description".into()]
        }
    );
    assert_eq!(sim.room.description, "Backend crew");
    assert_eq!(sim.room.kind, RoomType::Group);
    assert_eq!(sim.last_body(), "alice updated room description");
    assert_eq!(sim.log.last().unwrap().from, ROOM_BOT);
}

#[test]
fn update_of_the_type_only() {
    let (mut sim, alice) = Sim::new("alice");
    assert_eq!(
        sim.reply(update_cmd(alice, None, Some("channel"))),
        Reply::Updated {
            changes: vec!["type to channel".into()]
        }
    );
    assert_eq!(sim.room.kind, RoomType::Channel);
    assert_eq!(sim.room.description, "");
    assert_eq!(sim.last_body(), "alice updated room type to channel");
}

#[test]
fn update_of_description_and_type() {
    let (mut sim, alice) = Sim::new("alice");
    sim.reply(update_cmd(alice, None, Some("channel")));
    let reply = sim.reply(update_cmd(alice, Some("Open again"), Some("group")));
    assert_eq!(
        reply,
        Reply::Updated {
            changes: vec!["description".into(), "type to group".into()]
        }
    );
    // The wire text joins the changes: `Room updated: description, type to group`.
    if let Reply::Updated { changes } = &reply {
        assert_eq!(changes.join(", "), "description, type to group");
    }
    assert_eq!(sim.room.kind, RoomType::Group);
    assert_eq!(sim.room.description, "Open again");
    assert_eq!(
        sim.last_body(),
        "alice updated room description and type to group"
    );
}

#[test]
fn description_limit_is_5000_characters() {
    let (mut sim, alice) = Sim::new("alice");
    // Characters, not bytes: 5000 two-byte characters fit.
    let fits = "é".repeat(5000);
    sim.reply(update_cmd(alice, Some(&fits), None));
    assert_eq!(sim.room.description, fits);

    let too_long = "d".repeat(5001);
    let err = sim
        .run(update_cmd(alice, Some(&too_long), None))
        .unwrap_err();
    assert!(
        matches!(err, RoomError::TooLong { limit: 5000, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("5000"), "{err}");
    assert_eq!(sim.room.description, fits);
}

#[test]
fn bad_room_type_is_a_validation_error() {
    let (mut sim, alice) = Sim::new("alice");
    let log_len = sim.log.len();
    let err = sim
        .run(update_cmd(alice, Some("desc"), Some("public")))
        .unwrap_err();
    assert!(matches!(err, RoomError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("public"), "{err}");
    assert_eq!(sim.room.kind, RoomType::Group);
    assert_eq!(
        sim.room.description, "",
        "nothing of a refused update applies"
    );
    assert_eq!(sim.log.len(), log_len);
    // Type names are exact.
    assert!(sim.run(update_cmd(alice, None, Some("Channel"))).is_err());
}

// ---------------------------------------------------------------------------------------
// message.send

#[test]
fn seq_is_gapless_from_one_across_notices_and_messages() {
    let (mut sim, alice) = Sim::new("alice");
    sim.send(alice, "first");
    let bob = sim.join("bob");
    sim.dm(bob, "alice", "psst");
    sim.reply(promote(alice, "bob"));
    sim.reply(update_cmd(alice, Some("d"), Some("channel")));
    sim.send(bob, "as admin");
    sim.reply(demote(alice, "bob"));
    let carol = sim.join("carol");
    sim.reply(kick(alice, "carol"));
    let _ = carol;
    sim.reply(Command::Leave { token: bob });

    let seqs: Vec<Seq> = sim.log.iter().map(|m| m.seq).collect();
    let expected: Vec<Seq> = (1..=sim.log.len() as u64).map(Seq::new).collect();
    assert_eq!(seqs, expected);
    assert_eq!(sim.room.last_seq, sim.log.len() as u64);
}

fn keyed(token: TokenDigest, body: &str, to: Option<&str>, key: &str) -> Command {
    match send_cmd(token, body, to) {
        Command::Send {
            token, body, to, ..
        } => Command::Send {
            token,
            body,
            to,
            key: Some(key.into()),
            earlier: None,
        },
        other => other,
    }
}

#[test]
fn a_retried_send_under_its_message_id_answers_the_first_seq_and_stores_nothing() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    let first = sim.reply(keyed(alice, "hello", Some("bob"), "m-1"));
    let Reply::Sent { seq, .. } = first else {
        panic!("{first:?}")
    };
    sim.send(bob, "meanwhile");
    let (log, room) = (sim.log.clone(), sim.room.clone());

    let retry = sim.run(keyed(alice, "hello", Some("BOB"), "m-1")).unwrap();
    assert!(retry.events.is_empty(), "{:?}", retry.events);
    assert_eq!(
        retry.reply,
        Reply::Sent {
            seq,
            missed: Missed::default()
        }
    );
    assert_eq!(
        (&sim.log, &sim.room),
        (&log, &room),
        "a retry changed the room"
    );
    assert_eq!(sim.log[seq.get() as usize - 1].key.as_deref(), Some("m-1"));
}

#[test]
fn a_message_id_is_one_message_per_sender_and_text() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.reply(keyed(alice, "hello", None, "m-1"));
    let reused = "messageId already used for another message";
    assert_eq!(sim.error(keyed(alice, "other text", None, "m-1")), reused);
    assert_eq!(sim.error(keyed(alice, "hello", Some("bob"), "m-1")), reused);

    // Another agent's key is its own.
    let before = sim.log.len();
    sim.reply(keyed(bob, "hello", None, "m-1"));
    assert_eq!(sim.log.len(), before + 1);
    // Without a key, every send is new.
    sim.send(alice, "hello");
    sim.send(alice, "hello");
    assert_eq!(sim.log.len(), before + 3);
}

#[test]
fn a_message_id_is_bounded_and_printable() {
    let (mut sim, alice) = Sim::new("alice");
    let long = "k".repeat(validate::MAX_MESSAGE_ID_BYTES + 1);
    assert_eq!(
        sim.error(keyed(alice, "x", None, &long)),
        "messageId is too long: the limit is 128 bytes"
    );
    assert!(sim.run(keyed(alice, "x", None, "line\nbreak")).is_err());
    let fits = "k".repeat(validate::MAX_MESSAGE_ID_BYTES);
    sim.reply(keyed(alice, "x", None, &fits));
}

#[test]
fn send_replies_with_the_seq_of_the_new_message() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    let reply = sim.send(alice, "hello");
    assert!(
        matches!(reply, Reply::Sent { seq, .. } if seq == 2),
        "{reply:?}"
    );
    let m = sim.log.last().unwrap();
    assert_eq!(m.seq, 2);
    assert_eq!(m.body, "hello");
    assert_eq!(m.from, "alice");
    assert_eq!(m.from_member, sim.member("alice"));
    assert_eq!(m.to, None);
    assert_eq!(m.to_member, None);
    assert_eq!(m.room_id, sim.room.id);
    assert_eq!(m.timestamp, Timestamp::from_millis(sim.now));
}

#[test]
fn every_message_has_a_unique_id() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    for i in 0..20 {
        sim.send(alice, &format!("m{i}"));
    }
    let mut ids: Vec<&str> = sim.log.iter().map(|m| m.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), sim.log.len());
}

#[test]
fn send_with_an_unknown_token_is_invalid() {
    let (mut sim, _) = Sim::new("alice");
    assert_eq!(
        sim.error(send_cmd(unknown_token(), "hi", None)),
        "Invalid agentToken"
    );
    assert!(sim.log.is_empty());
}

#[test]
fn only_admins_post_in_a_channel() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.reply(update_cmd(alice, None, Some("channel")));
    let log_len = sim.log.len();
    assert_eq!(
        sim.error(send_cmd(bob, "can I?", None)),
        "Only admins can post in channels"
    );
    assert_eq!(sim.log.len(), log_len);
    assert!(matches!(
        sim.send(alice, "announcement"),
        Reply::Sent { .. }
    ));
    sim.reply(promote(alice, "bob"));
    assert!(matches!(sim.send(bob, "now I can"), Reply::Sent { .. }));
}

#[test]
fn members_cannot_dm_in_a_channel_either() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.reply(update_cmd(alice, None, Some("channel")));
    assert_eq!(
        sim.error(send_cmd(bob, "private word", Some("alice"))),
        "Only admins can post in channels"
    );
    assert!(matches!(
        sim.dm(alice, "bob", "admin DM"),
        Reply::Sent { .. }
    ));
}

#[test]
fn members_post_again_when_the_channel_becomes_a_group() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.reply(update_cmd(alice, None, Some("channel")));
    sim.reply(update_cmd(alice, None, Some("group")));
    assert!(matches!(sim.send(bob, "free speech"), Reply::Sent { .. }));
}

#[test]
fn channel_members_still_join_read_and_leave_with_notices() {
    let (mut sim, alice) = Sim::new("alice");
    sim.reply(update_cmd(alice, None, Some("channel")));
    let bob = sim.join("bob");
    assert_eq!(sim.last_body(), "bob joined the room");
    sim.send(alice, "announcement");
    assert_eq!(bodies(&sim.unread(bob)), ["announcement"]);
    sim.reply(Command::Leave { token: bob });
    assert_eq!(sim.last_body(), "bob left the room");
}

#[test]
fn dm_to_a_non_member_is_refused() {
    let (mut sim, alice) = Sim::new("alice");
    let log_len = sim.log.len();
    assert_eq!(
        sim.error(send_cmd(alice, "hello?", Some("nobody"))),
        "Agent \"nobody\" not found in room"
    );
    assert_eq!(
        sim.error(send_cmd(alice, "hello?", Some(ROOM_BOT))),
        "Agent \"room-bot\" not found in room"
    );
    assert_eq!(sim.log.len(), log_len);
}

#[test]
fn dm_to_a_departed_agent_is_refused() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.reply(Command::Leave { token: bob });
    assert_eq!(
        sim.error(send_cmd(alice, "come back", Some("bob"))),
        "Agent \"bob\" not found in room"
    );
}

#[test]
fn dm_names_and_identifies_its_recipient() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    sim.dm(alice, "bob", "secret");
    let m = sim.log.last().unwrap();
    assert_eq!(m.to.as_deref(), Some("bob"));
    assert_eq!(m.to_member, Some(sim.member("bob")));
    assert_eq!(m.from_member, sim.member("alice"));
    assert_eq!(m.to_json()["to"], "bob");
}

#[test]
fn message_of_64_kib_is_accepted_and_one_byte_more_is_refused() {
    let (mut sim, alice) = Sim::new("alice");
    let fits = "x".repeat(65536);
    assert!(matches!(sim.send(alice, &fits), Reply::Sent { .. }));
    assert_eq!(sim.last_body().len(), 65536);

    let too_big = "x".repeat(65537);
    let err = sim.run(send_cmd(alice, &too_big, None)).unwrap_err();
    assert!(
        matches!(err, RoomError::TooLong { limit: 65536, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Message text is too long: the limit is 65536 bytes"
    );
    assert_eq!(sim.log.len(), 1);
}

#[test]
fn message_limit_counts_bytes_not_characters() {
    let (mut sim, alice) = Sim::new("alice");
    // 16385 four-byte characters: far fewer than 65536 characters, but 65540 bytes.
    let emoji = "🦀".repeat(16385);
    assert!(emoji.chars().count() < 65536);
    assert!(sim.run(send_cmd(alice, &emoji, None)).is_err());
    assert!(matches!(
        sim.send(alice, &"🦀".repeat(16384)),
        Reply::Sent { .. }
    ));
}

#[test]
fn message_limit_applies_to_dms() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    let too_big = "x".repeat(65537);
    assert!(
        sim.error(send_cmd(alice, &too_big, Some("bob")))
            .contains("65536")
    );
}

#[test]
fn send_returns_missed_messages_and_moves_the_cursor_past_its_own_message() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.send(alice, "are you there?");
    sim.send(alice, "bob?");

    let cmd = send_cmd(bob, "yes", None);
    assert_eq!(
        sim.room.log_read(&cmd, &sim.limits),
        Some(LogRead {
            viewer: sim.member("bob"),
            after: sim.cursor("bob"),
            limit: sim.limits.max_page,
        })
    );
    let reply = sim.reply(cmd);
    let Reply::Sent { seq, missed } = &reply else {
        panic!("expected Sent, got {reply:?}")
    };
    assert_eq!(bodies(missed), ["are you there?", "bob?"]);
    assert!(!missed.has_more);
    assert_eq!(sim.cursor("bob"), *seq);
    assert_eq!(sim.cursor("bob"), sim.room.last_seq);
    // Own message is not "unread".
    assert_eq!(sim.unread(bob), Missed::default());
}

#[test]
fn send_with_nothing_missed_moves_the_cursor_to_its_own_message() {
    let (mut sim, alice) = Sim::new("alice");
    let reply = sim.send(alice, "talking to myself");
    assert_eq!(missed_of(&reply), &Missed::default());
    assert_eq!(sim.cursor("alice"), 1);
}

#[test]
fn send_with_more_missed_than_a_page_moves_the_cursor_to_the_last_handed_out() {
    let limits = Limits {
        max_page: 3,
        ..Limits::default()
    };
    let (mut sim, alice) = Sim::with_limits("alice", limits);
    let bob = sim.join("bob");
    for body in ["m1", "m2", "m3", "m4", "m5"] {
        sim.send(alice, body);
    }
    let reply = sim.send(bob, "catching up");
    let missed = missed_of(&reply);
    assert_eq!(bodies(missed), ["m1", "m2", "m3"]);
    assert!(missed.has_more);
    assert_eq!(sim.cursor("bob"), missed.messages[2].seq);
    // The rest is still unread, then bob's own message (past the cursor), nothing lost.
    let rest = sim.unread(bob);
    assert_eq!(bodies(&rest), ["m4", "m5", "catching up"]);
    assert!(!rest.has_more);
    assert_eq!(sim.cursor("bob"), sim.room.last_seq);
}

#[test]
fn missed_messages_of_a_send_hide_other_agents_dms() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.join("carol");
    sim.dm(alice, "carol", "for carol only");
    sim.send(alice, "for all");
    let reply = sim.send(bob, "hi");
    assert_eq!(
        bodies(missed_of(&reply)),
        ["carol joined the room", "for all"]
    );
}

// ---------------------------------------------------------------------------------------
// DM privacy

#[test]
fn dm_is_visible_to_sender_and_recipient_only() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    sim.join("carol");
    sim.dm(alice, "bob", "secret");
    let dm = sim.log.last().unwrap().clone();
    assert!(dm.visible_to(sim.member("alice")));
    assert!(dm.visible_to(sim.member("bob")));
    assert!(!dm.visible_to(sim.member("carol")));
    assert!(
        !dm.visible_to(MemberId::BOT),
        "not even the room-bot id sees it"
    );
}

#[test]
fn dm_is_invisible_to_a_third_agent() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    let carol = sim.join("carol");
    sim.dm(alice, "bob", "secret");
    sim.send(alice, "public");

    assert_eq!(bodies(&sim.unread(carol)), ["public"]);
    assert_eq!(
        bodies(&sim.unread(bob)),
        ["carol joined the room", "secret", "public"]
    );
    assert!(!sim.visible_bodies(sim.member("carol")).contains(&"secret"));
}

#[test]
fn dm_reply_is_visible_to_both_ends() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.join("carol");
    sim.dm(bob, "alice", "from bob");
    let alice_sees = sim.visible_bodies(sim.member("alice"));
    let bob_sees = sim.visible_bodies(sim.member("bob"));
    let carol_sees = sim.visible_bodies(sim.member("carol"));
    assert!(alice_sees.contains(&"from bob"));
    assert!(bob_sees.contains(&"from bob"));
    assert!(!carol_sees.contains(&"from bob"));
    assert_eq!(bodies(&sim.unread(alice)).last(), Some(&"from bob"));
}

#[test]
fn newcomer_taking_a_departed_recipients_name_does_not_see_old_dms() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.dm(alice, "bob", "for the first bob");
    sim.reply(Command::Leave { token: bob });
    let new_bob = sim.join("bob");
    let seen = sim.visible_bodies(sim.member("bob"));
    assert!(!seen.contains(&"for the first bob"), "{seen:?}");
    // Even reading from the very start of the log, as history would.
    let page = sim.page(LogRead {
        viewer: sim.member("bob"),
        after: Seq::ZERO,
        limit: 100,
    });
    assert!(!bodies(&page).contains(&"for the first bob"));
    assert_eq!(sim.unread(new_bob), Missed::default());
}

#[test]
fn newcomer_taking_a_departed_senders_name_does_not_see_old_dms() {
    let (mut sim, _) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.dm(bob, "alice", "from the first bob");
    sim.reply(Command::Leave { token: bob });
    sim.join("bob");
    let seen = sim.visible_bodies(sim.member("bob"));
    assert!(!seen.contains(&"from the first bob"), "{seen:?}");
    assert!(
        sim.visible_bodies(sim.member("alice"))
            .contains(&"from the first bob")
    );
}

#[test]
fn room_bot_notices_are_visible_to_everyone() {
    let (mut sim, _) = Sim::new("alice");
    sim.join("bob");
    let notice = sim.log.last().unwrap();
    assert_eq!(notice.from, ROOM_BOT);
    for viewer in [0, 1, 2, 99] {
        assert!(notice.visible_to(MemberId::new(viewer)));
    }
}

#[test]
fn reconnect_missed_messages_hide_other_agents_dms() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.join("carol");
    sim.dm(alice, "carol", "carol only");
    sim.dm(alice, "bob", "bob only");
    let reply = sim.join_with("bob", Some(bob)).unwrap().reply;
    assert_eq!(
        bodies(missed_of(&reply)),
        ["carol joined the room", "bob only"]
    );
}

// ---------------------------------------------------------------------------------------
// message.unread and the read cursor

#[test]
fn unread_asks_for_the_callers_messages_after_its_cursor() {
    let limits = Limits {
        max_page: 7,
        ..Limits::default()
    };
    let (mut sim, alice) = Sim::with_limits("alice", limits);
    let bob = sim.join("bob");
    sim.send(alice, "x");
    assert_eq!(
        sim.room
            .log_read(&Command::Unread { token: bob }, &sim.limits),
        Some(LogRead {
            viewer: sim.member("bob"),
            after: sim.cursor("bob"),
            limit: 7,
        })
    );
}

#[test]
fn log_is_read_only_for_commands_that_hand_out_messages() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    let l = sim.limits.clone();
    let none: [Command; 8] = [
        Command::Leave { token: bob },
        promote(alice, "bob"),
        demote(alice, "bob"),
        kick(alice, "bob"),
        update_cmd(alice, Some("d"), None),
        Command::Delivered {
            member: sim.member("bob"),
            seq: Seq::new(1),
            prev: Seq::ZERO,
        },
        // Refused anyway: no read needed.
        Command::Unread {
            token: unknown_token(),
        },
        join_cmd("bob", Some(alice), sim.mint(), None),
    ];
    for cmd in &none {
        assert_eq!(sim.room.log_read(cmd, &l), None, "{cmd:?}");
    }
    assert!(
        sim.room
            .log_read(&Command::Unread { token: bob }, &l)
            .is_some()
    );
    assert!(sim.room.log_read(&send_cmd(bob, "x", None), &l).is_some());
    let reconnect = join_cmd("bob", Some(bob), sim.mint(), None);
    assert!(sim.room.log_read(&reconnect, &l).is_some());
}

#[test]
fn unread_returns_messages_after_the_cursor_and_moves_it() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.send(alice, "one");
    sim.send(alice, "two");
    let unread = sim.unread(bob);
    assert_eq!(bodies(&unread), ["one", "two"]);
    assert!(!unread.has_more);
    assert_eq!(sim.cursor("bob"), sim.room.last_seq);
    assert_eq!(sim.unread(bob), Missed::default());
}

#[test]
fn creator_has_unread_notices_posted_after_creation() {
    // Alice's cursor is 0 after creation: the join notice that came later is unread.
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    assert_eq!(bodies(&sim.unread(alice)), ["bob joined the room"]);
}

#[test]
fn unread_with_nothing_new_is_ok_and_leaves_the_cursor() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.send(alice, "one");
    sim.unread(bob);
    let cursor = sim.cursor("bob");
    let decision = sim.run(Command::Unread { token: bob }).unwrap();
    assert_eq!(decision.reply, Reply::Unread(Missed::default()));
    assert!(decision.events.is_empty(), "{:?}", decision.events);
    assert_eq!(sim.cursor("bob"), cursor);
}

#[test]
fn unread_in_an_empty_room_is_ok() {
    let (mut sim, alice) = Sim::new("alice");
    let decision = sim.run(Command::Unread { token: alice }).unwrap();
    assert_eq!(decision.reply, Reply::Unread(Missed::default()));
    assert!(decision.events.is_empty());
    assert_eq!(sim.cursor("alice"), 0);
}

#[test]
fn unread_moves_past_dms_the_caller_cannot_see() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    let carol = sim.join("carol");
    sim.dm(alice, "bob", "not for carol");
    sim.dm(alice, "bob", "nor this");
    let unread = sim.unread(carol);
    assert!(unread.messages.is_empty());
    // Carol has read everything she may read: the DMs never come up later.
    assert_eq!(sim.cursor("carol"), sim.room.last_seq);
    sim.send(alice, "public");
    assert_eq!(bodies(&sim.unread(carol)), ["public"]);
}

#[test]
fn unread_in_pages_when_more_than_a_page_is_unread() {
    let limits = Limits {
        max_page: 2,
        ..Limits::default()
    };
    let (mut sim, alice) = Sim::with_limits("alice", limits);
    let bob = sim.join("bob");
    for body in ["m1", "m2", "m3", "m4", "m5"] {
        sim.send(alice, body);
    }
    let mut seen = vec![];
    let mut pages = 0;
    loop {
        let page = sim.unread(bob);
        pages += 1;
        seen.extend(page.messages.iter().map(|m| m.body.clone()));
        if page.has_more {
            assert_eq!(page.messages.len(), 2);
            assert_eq!(sim.cursor("bob"), page.messages.last().unwrap().seq);
        } else {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(sim.cursor("bob"), sim.room.last_seq);
}

#[test]
fn unread_with_an_unknown_token_is_invalid() {
    let (mut sim, _) = Sim::new("alice");
    assert_eq!(
        sim.error(Command::Unread {
            token: unknown_token()
        }),
        "Invalid agentToken"
    );
}

#[test]
fn cursors_are_per_agent() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    let carol = sim.join("carol");
    sim.send(alice, "hello all");
    assert_eq!(
        bodies(&sim.unread(bob)),
        ["carol joined the room", "hello all"]
    );
    assert_eq!(bodies(&sim.unread(carol)), ["hello all"]);
    assert_eq!(sim.unread(bob), Missed::default());
}

// ---------------------------------------------------------------------------------------
// Delivered: an acknowledged A2A push

#[test]
fn delivered_moves_the_cursor_forward() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.send(alice, "one");
    sim.send(alice, "two");
    let member = sim.member("bob");
    let one = sim.log[sim.log.len() - 2].seq;
    assert_eq!(
        sim.reply(Command::Delivered {
            member,
            seq: one,
            prev: Seq::ZERO
        }),
        Reply::Delivered
    );
    assert_eq!(sim.cursor("bob"), one);
    assert_eq!(bodies(&sim.unread(bob)), ["two"]);
}

#[test]
fn a_push_acknowledged_after_a_given_up_one_does_not_skip_it() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.send(alice, "lost in push");
    sim.send(alice, "pushed fine");
    let member = sim.member("bob");
    let lost = sim.log[sim.log.len() - 2].seq;
    let fine = sim.log[sim.log.len() - 1].seq;
    let before = sim.cursor("bob");
    // The push of `lost` was given up; `fine` (pushed after it) is acknowledged.
    sim.reply(Command::Delivered {
        member,
        seq: fine,
        prev: lost,
    });
    assert_eq!(
        sim.cursor("bob"),
        before,
        "the cursor does not jump the gap"
    );
    assert_eq!(bodies(&sim.unread(bob)), ["lost in push", "pushed fine"]);
    // Once bob has read past the gap, later acknowledgements move the cursor again.
    sim.send(alice, "next");
    let next = sim.log[sim.log.len() - 1].seq;
    sim.reply(Command::Delivered {
        member,
        seq: next,
        prev: fine,
    });
    assert_eq!(sim.cursor("bob"), next);
}

#[test]
fn delivered_never_moves_the_cursor_backwards() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    sim.send(alice, "one");
    sim.send(alice, "two");
    sim.unread(bob);
    let cursor = sim.cursor("bob");
    let member = sim.member("bob");
    let decision = sim
        .run(Command::Delivered {
            member,
            seq: Seq::new(1),
            prev: Seq::ZERO,
        })
        .unwrap();
    assert_eq!(decision.reply, Reply::Delivered);
    assert!(decision.events.is_empty());
    assert_eq!(sim.cursor("bob"), cursor);
    // The same seq again is no move either.
    let decision = sim
        .run(Command::Delivered {
            member,
            seq: cursor,
            prev: Seq::ZERO,
        })
        .unwrap();
    assert!(decision.events.is_empty());
}

#[test]
fn delivered_never_moves_the_cursor_past_the_log() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    sim.send(alice, "one");
    let member = sim.member("bob");
    let before = sim.cursor("bob");
    let seq = sim.room.last_seq.next();
    let decision = sim
        .run(Command::Delivered {
            member,
            seq,
            prev: Seq::ZERO,
        })
        .unwrap();
    assert_eq!(decision.reply, Reply::Delivered);
    assert!(decision.events.is_empty());
    assert_eq!(sim.cursor("bob"), before);
}

#[test]
fn delivered_for_a_departed_member_is_a_no_op() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    let member = sim.member("bob");
    sim.send(alice, "one");
    sim.reply(Command::Leave { token: bob });
    let seq = sim.room.last_seq;
    let decision = sim
        .run(Command::Delivered {
            member,
            seq,
            prev: Seq::ZERO,
        })
        .unwrap();
    assert_eq!(decision.reply, Reply::Delivered);
    assert!(decision.events.is_empty());
}

// ---------------------------------------------------------------------------------------
// Validation

#[test]
fn empty_agent_name_is_refused() {
    let (mut sim, _) = Sim::new("alice");
    for name in ["", "   "] {
        let err = sim.join_with(name, None).unwrap_err();
        assert!(matches!(err, RoomError::Invalid(_)), "{err:?}");
        assert!(err.to_string().contains("empty"), "{err}");
    }
}

#[test]
fn agent_name_with_control_characters_is_refused() {
    let (mut sim, _) = Sim::new("alice");
    for name in ["bob\n", "b\tob", "bo\u{7}b", "\u{0}", "bob\u{9f}"] {
        let err = sim.join_with(name, None).unwrap_err();
        assert!(matches!(err, RoomError::Invalid(_)), "{name:?}: {err:?}");
        assert!(err.to_string().contains("control"), "{err}");
    }
}

#[test]
fn agent_name_limit_is_100_characters() {
    let (mut sim, _) = Sim::new("alice");
    let fits = "ü".repeat(100);
    assert!(sim.join_with(&fits, None).is_ok());
    let err = sim.join_with(&"b".repeat(101), None).unwrap_err();
    assert!(
        matches!(err, RoomError::TooLong { limit: 100, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("100"), "{err}");
}

#[test]
fn room_bot_cannot_be_an_agent_name() {
    let (mut sim, _) = Sim::new("alice");
    let err = sim.join_with(ROOM_BOT, None).unwrap_err();
    assert!(matches!(err, RoomError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("room-bot"), "{err}");
    assert!(sim.room.agent_by_name(ROOM_BOT).is_none());
}

#[test]
fn a_refused_join_posts_nothing() {
    let (mut sim, _) = Sim::new("alice");
    sim.join("bob");
    let log_len = sim.log.len();
    let _ = sim.join_with("", None);
    let _ = sim.join_with("bob", None);
    let _ = sim.join_with(ROOM_BOT, None);
    assert_eq!(sim.log.len(), log_len);
    assert_eq!(sim.room.agents.len(), 2);
}

/// Names that read as `room-bot` would let anyone post what looks like a server notice.
#[test]
fn room_bot_look_alikes_cannot_be_agent_names() {
    let (mut sim, _) = Sim::new("alice");
    for name in [
        "Room-Bot",
        "ROOM-BOT",
        "room-bot\u{200B}",
        "room\u{2010}bot",
        "r\u{043E}om-bot",
        "\u{FF52}oom-bot",
    ] {
        let err = sim.join_with(name, None).unwrap_err();
        assert!(matches!(err, RoomError::Invalid(_)), "{name:?}: {err:?}");
        let text = err.to_string();
        assert!(
            text.contains("reads as \"room-bot\"") || text.contains("invisible formatting"),
            "{name:?}: {text}"
        );
    }
    assert_eq!(sim.room.agents.len(), 1);
}

#[test]
fn agent_name_with_invisible_formatting_characters_is_refused() {
    let (mut sim, _) = Sim::new("alice");
    for name in [
        "bob\u{200B}",
        "\u{FEFF}bob",
        "b\u{200D}ob",
        "bob\u{202E}",
        "\u{AD}bob",
    ] {
        let err = sim.join_with(name, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Agent name must not contain invisible formatting characters",
            "{name:?}"
        );
    }
    for name in ["\u{3164}", "\u{34F}\u{34F}"] {
        let err = sim.join_with(name, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Agent name must contain a visible character",
            "{name:?}"
        );
    }
    let err = validate::room_name("dev\u{200B}team", &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Room name must not contain invisible formatting characters"
    );
}

/// Uniqueness in a room uses the same fold as the `room-bot` check, or a member could be
/// impersonated by a name that merely looks like theirs.
#[test]
fn agent_names_are_unique_by_how_they_read() {
    let (mut sim, _) = Sim::new("alice");
    for name in ["Alice", "ALICE", "\u{0430}lice", " alice", "\u{FF41}lice"] {
        assert_eq!(
            sim.join_with(name, None).unwrap_err(),
            RoomError::NameTaken(name.into()),
            "{name:?}"
        );
    }
    assert_eq!(sim.room.agents.len(), 1);
    sim.join("bob");
    assert_eq!(sim.room.agents[1].name, "bob", "names are kept as given");
}

#[test]
fn reconnect_under_a_look_alike_of_ones_own_name_keeps_the_name() {
    let (mut sim, alice) = Sim::new("alice");
    match sim.reply(join_cmd(
        "Alice",
        Some(alice),
        fuzzing::token_number(99),
        None,
    )) {
        Reply::Joined {
            agent_name,
            reconnected,
            ..
        } => {
            assert!(reconnected);
            assert_eq!(agent_name, "alice");
        }
        other => panic!("expected Joined, got {other:?}"),
    }
    assert_eq!(sim.room.agents.len(), 1);
}

#[test]
fn dms_and_admin_targets_find_members_by_how_they_read() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    sim.join("carol");
    sim.dm(alice, "BOB", "psst");
    let dm = sim.log.last().unwrap();
    assert_eq!(
        dm.to.as_deref(),
        Some("bob"),
        "to names the member as it joined"
    );
    assert_eq!(dm.to_member, Some(sim.member("bob")));
    assert_eq!(
        sim.reply(promote(alice, "B\u{043E}b")),
        Reply::Promoted {
            target: "bob".into()
        }
    );
    assert_eq!(sim.role("bob"), Role::Admin);
    assert_eq!(
        sim.reply(kick(alice, "Carol")),
        Reply::Kicked {
            target: "carol".into()
        }
    );
    assert!(sim.room.agent_by_name("carol").is_none());
    assert_eq!(sim.last_body(), "alice kicked carol from the room");
}

/// Members that joined before names were folded may share a fold: each still finds
/// itself by its exact name.
#[test]
fn members_sharing_a_fold_from_before_keep_their_own_names() {
    let (mut sim, _) = Sim::new("alice");
    let mut twin = sim.room.agents[0].clone();
    twin.member = MemberId::new(2);
    twin.name = "Alice".into();
    twin.token = fuzzing::token_number(50);
    sim.room.apply(&Event::Joined(twin));
    assert_eq!(sim.member("alice"), 1);
    assert_eq!(sim.member("Alice"), 2);
    match sim.reply(join_cmd(
        "Alice",
        Some(fuzzing::token_number(50)),
        fuzzing::token_number(51),
        None,
    )) {
        Reply::Joined {
            member,
            reconnected,
            ..
        } => assert_eq!((member, reconnected), (MemberId::new(2), true)),
        other => panic!("expected Joined, got {other:?}"),
    }
}

#[test]
fn reserved_room_names_are_refused_lower_cased() {
    let l = Limits::default();
    for (given, reported) in [
        ("a2a", "a2a"),
        ("MCP", "mcp"),
        ("Docs", "docs"),
        ("API", "api"),
        ("rooms", "rooms"),
        ("Healthz", "healthz"),
        ("metrics", "metrics"),
    ] {
        let err = validate::room_name(given, &l).unwrap_err();
        assert_eq!(err, RoomError::ReservedName(reported.into()));
        assert_eq!(
            err.to_string(),
            format!("Room name \"{reported}\" is reserved.")
        );
    }
}

#[test]
fn room_names_are_lower_cased() {
    let l = Limits::default();
    assert_eq!(validate::room_name("Dev-Team", &l).unwrap(), "dev-team");
    assert_eq!(validate::room_name("docs2", &l).unwrap(), "docs2");
}

#[test]
fn bad_room_names_are_refused() {
    let l = Limits::default();
    assert!(matches!(
        validate::room_name("", &l),
        Err(RoomError::Invalid(_))
    ));
    assert!(matches!(
        validate::room_name("a\u{1b}b", &l),
        Err(RoomError::Invalid(_))
    ));
    assert!(validate::room_name(&"r".repeat(100), &l).is_ok());
    let err = validate::room_name(&"r".repeat(101), &l).unwrap_err();
    assert!(err.to_string().contains("the limit is 100"), "{err}");
}

#[test]
fn room_type_is_group_or_channel() {
    assert_eq!(validate::room_type("group"), Ok(RoomType::Group));
    assert_eq!(validate::room_type("channel"), Ok(RoomType::Channel));
    assert!(matches!(
        validate::room_type("broadcast"),
        Err(RoomError::Invalid(_))
    ));
    assert!(matches!(
        validate::room_type(""),
        Err(RoomError::Invalid(_))
    ));
}

#[test]
fn limits_are_configurable_and_named() {
    let limits = Limits {
        max_message_bytes: 10,
        max_name_chars: 5,
        max_description_chars: 3,
        ..Limits::default()
    };
    let (mut sim, alice) = Sim::with_limits("alice", limits);
    assert!(sim.run(send_cmd(alice, "0123456789", None)).is_ok());
    assert_eq!(
        sim.error(send_cmd(alice, "0123456789a", None)),
        "Message text is too long: the limit is 10 bytes"
    );
    assert!(
        sim.error(update_cmd(alice, Some("abcd"), None))
            .contains("limit is 3")
    );
    assert!(
        sim.join_with("sixsix", None)
            .unwrap_err()
            .to_string()
            .contains("limit is 5")
    );
    assert!(sim.join_with("five5", None).is_ok());
}

// ---------------------------------------------------------------------------------------
// The state machine itself

#[test]
fn decide_never_changes_the_room() {
    let (mut sim, alice) = Sim::new("alice");
    let bob = sim.join("bob");
    let before = sim.room.clone();
    let ctx = Ctx {
        now: Timestamp::from_millis(sim.now + 1),
        limits: &sim.limits,
        message_id: uuid::Uuid::new_v4(),
    };
    for cmd in [
        send_cmd(alice, "hi", None),
        promote(alice, "bob"),
        kick(alice, "bob"),
        Command::Leave { token: bob },
        update_cmd(alice, Some("d"), Some("channel")),
        Command::Unread { token: bob },
    ] {
        let decision = sim.room.decide(cmd, Missed::default(), ctx).unwrap();
        assert!(!decision.events.is_empty() || decision.reply == Reply::Unread(Missed::default()));
        assert_eq!(sim.room, before);
    }
}

#[test]
fn replaying_the_events_rebuilds_the_same_room() {
    let (mut sim, alice) = Sim::new("alice");
    let start = sim.room.clone();
    let mut events = vec![];
    let mut record = |sim: &mut Sim, cmd: Command| {
        let d = sim.run(cmd).unwrap();
        events.extend(d.events);
    };
    let bob_token = sim.mint();
    record(
        &mut sim,
        join_cmd("bob", None, bob_token, Some("https://b.example/")),
    );
    let carol_token = sim.mint();
    record(&mut sim, join_cmd("carol", None, carol_token, None));
    record(&mut sim, send_cmd(alice, "hello", None));
    record(&mut sim, send_cmd(bob_token, "psst", Some("carol")));
    record(&mut sim, promote(alice, "bob"));
    record(&mut sim, update_cmd(alice, Some("desc"), Some("channel")));
    record(&mut sim, Command::Unread { token: carol_token });
    record(&mut sim, kick(bob_token, "carol"));
    record(&mut sim, Command::Leave { token: alice });

    let mut replayed = start;
    for e in &events {
        replayed.apply(e);
    }
    assert_eq!(replayed, sim.room);
}

#[test]
fn events_survive_serialization() {
    let (mut sim, alice) = Sim::new("alice");
    sim.join("bob");
    let d = sim.run(send_cmd(alice, "hello", Some("bob"))).unwrap();
    for e in &d.events {
        let json = serde_json::to_string(e).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, e);
    }
}
