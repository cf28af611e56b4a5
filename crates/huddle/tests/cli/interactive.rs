//! `huddle join` as a chat session on a pseudo-terminal: what one session types the others
//! print; `/dm` reaches only its recipient; `/history`, `/quit`; a cut connection is
//! resumed with nothing lost and nothing repeated. Every wait is for output, never a sleep.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{Cli, Proxy, WAIT};
use huddle_testkit::Server;

const READY: &str = "Type a message, or /help.";

#[tokio::test]
async fn lines_typed_in_one_session_appear_in_the_others() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice"]).await.ok();

    let mut alice = cli.pty(&["join", "lobby", "--name", "alice"]);
    alice.expect("Reconnected to room ").await;
    alice.expect(READY).await;
    let mut bob = cli.pty(&["join", "lobby", "--name", "bob"]);
    bob.expect("Joined room ").await;
    bob.expect(READY).await;
    alice.expect("[room-bot] bob joined the room").await;

    alice.type_line("hello from alice");
    bob.expect("[alice] hello from alice").await;
    alice.expect("[alice] hello from alice").await;

    bob.type_line("hi alice, bob here");
    alice.expect("[bob] hi alice, bob here").await;
    bob.expect("[bob] hi alice, bob here").await;

    // A third session that joins later sees the conversation as recent context.
    let mut carol = cli.pty(&["join", "lobby", "--name", "carol"]);
    carol.expect("[alice] hello from alice").await;
    carol.expect("[bob] hi alice, bob here").await;
    carol.expect(READY).await;
    carol.type_line("carol says hi");
    alice.expect("[carol] carol says hi").await;
    bob.expect("[carol] carol says hi").await;
    assert_eq!(
        alice.count("[alice] hello from alice"),
        1,
        "each message is printed once"
    );

    // One-shot commands and sessions see the same room.
    cli.run(&["send", "lobby", "from the shell", "--name", "dave"])
        .await
        .ok();
    alice.expect("[dave] from the shell").await;
}

#[tokio::test]
async fn dm_reaches_only_its_recipient() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice"]).await.ok();
    // One after the other, each live before the next joins.
    let mut alice = cli.pty(&["join", "lobby", "--name", "alice"]);
    alice.expect(READY).await;
    let mut bob = cli.pty(&["join", "lobby", "--name", "bob"]);
    bob.expect(READY).await;
    let mut carol = cli.pty(&["join", "lobby", "--name", "carol"]);
    carol.expect(READY).await;
    alice.expect("[room-bot] carol joined the room").await;
    bob.expect("[room-bot] carol joined the room").await;

    alice.type_line("/dm bob the password is swordfish");
    bob.expect("[alice -> bob] the password is swordfish").await;
    alice
        .expect("[alice -> bob] the password is swordfish")
        .await;

    // A public message after the DM: once carol has it, she would have had the DM.
    alice.type_line("public again");
    carol.expect("[alice] public again").await;
    bob.expect("[alice] public again").await;
    assert!(
        !carol.output().contains("swordfish"),
        "a third session must not see the DM:\n{}",
        carol.output()
    );

    // Nor does the DM show in carol's history.
    carol.type_line("/history");
    carol.expect("--- end of history ---").await;
    assert!(!carol.output().contains("swordfish"), "{}", carol.output());

    // Misuse gets a usage line, not a message.
    alice.type_line("/dm bob");
    alice.expect("usage: /dm AGENT TEXT").await;
    alice.type_line("/dm nobody hello?");
    alice
        .expect(r#"error: Agent "nobody" not found in room"#)
        .await;
}

#[tokio::test]
async fn history_help_and_quit() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice"]).await.ok();
    for n in 1..=25 {
        cli.run(&["send", "lobby", &format!("note {n}"), "--name", "bob"])
            .await
            .ok();
    }
    let mut alice = cli.pty(&["join", "lobby", "--name", "alice"]);
    alice.expect("--- 26 missed message(s) ---").await;
    alice.expect("[bob] note 25").await;
    alice.expect(READY).await;

    alice.type_line("/history 3");
    alice.expect("--- last 3 message(s) ---").await;
    alice
        .expect("[bob] note 23\n[bob] note 24\n[bob] note 25\n")
        .await;
    alice.expect("--- end of history ---").await;

    alice.type_line("/help");
    alice.expect("/dm AGENT TEXT").await;
    alice.type_line("/nonsense");
    alice.expect("Unknown command /nonsense").await;
    alice.type_line("//slash at the start");
    alice.expect("[alice] /slash at the start").await;

    alice.type_line("/quit");
    assert_eq!(alice.wait_exit().await, Some(0), "{}", alice.output());
    // Quitting is not leaving.
    let info = cli.run(&["info", "lobby", "--json"]).await.json();
    assert!(
        info["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "alice"),
        "{info}"
    );
}

#[tokio::test]
async fn a_cut_connection_resumes_without_gaps_or_repeats() {
    let server = Server::start().await;
    let proxy = Proxy::start(&server.base).await;
    let direct = Cli::new(&server.base);
    let via_proxy = Cli::new(&proxy.url);
    direct.run(&["create", "lobby", "--name", "bob"]).await.ok();

    let mut alice = via_proxy.pty(&["join", "lobby", "--name", "alice"]);
    alice.expect(READY).await;
    direct
        .run(&["send", "lobby", "before the cut", "--name", "bob"])
        .await
        .ok();
    alice.expect("[bob] before the cut").await;

    proxy.cut();
    alice.expect("Connection lost").await;
    for n in 1..=5 {
        direct
            .run(&[
                "send",
                "lobby",
                &format!("during the cut {n}"),
                "--name",
                "bob",
            ])
            .await
            .ok();
    }
    proxy.restore();
    alice.expect("Reconnected.").await;
    alice
        .expect(
            "[bob] during the cut 1\n[bob] during the cut 2\n[bob] during the cut 3\n\
             [bob] during the cut 4\n[bob] during the cut 5\n",
        )
        .await;
    direct
        .run(&["send", "lobby", "after the cut", "--name", "bob"])
        .await
        .ok();
    alice.expect("[bob] after the cut").await;
    for line in ["before the cut", "during the cut 3", "after the cut"] {
        assert_eq!(
            alice.count(&format!("[bob] {line}")),
            1,
            "{line:?} printed once:\n{}",
            alice.output()
        );
    }

    // And she can still talk.
    alice.type_line("I'm back");
    alice.expect("[alice] I'm back").await;
}

#[tokio::test]
async fn a_kicked_session_ends_with_status_1() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice"]).await.ok();
    let other = Cli::new(&server.base);
    let mut bob = other.pty(&["join", "lobby", "--name", "bob"]);
    bob.expect(READY).await;
    cli.run(&["kick", "lobby", "bob", "--name", "alice"])
        .await
        .ok();
    bob.expect("error: the room's stream refused bob").await;
    assert_eq!(bob.wait_exit().await, Some(1), "{}", bob.output());
    assert_eq!(
        other.stored_token("bob"),
        None,
        "the dead token is forgotten"
    );
}

#[tokio::test]
async fn join_json_prints_one_object_per_line_and_ends_with_its_input() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice"]).await.ok();

    let mut cmd = cli.command(&["join", "lobby", "--name", "bob", "--json"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn huddle join --json");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next = async || {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a line within the wait")
            .expect("read stdout")
            .expect("stdout still open");
        serde_json::from_str::<serde_json::Value>(&line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
    };

    let joined = next().await;
    assert_eq!(joined["event"], "joined", "{joined}");
    assert_eq!(joined["agentName"], "bob");
    assert_eq!(joined["role"], "member");
    assert_eq!(joined["reconnected"], false);
    // Wait until the stream is up (the ready notice on stderr), then talk to bob.
    loop {
        let line = tokio::time::timeout(WAIT, stderr.next_line())
            .await
            .expect("the ready notice")
            .unwrap()
            .expect("stderr open");
        if line.contains(READY) {
            break;
        }
    }
    cli.run(&["send", "lobby", "hi bob", "--name", "alice", "--to", "bob"])
        .await
        .ok();
    let mut message = next().await;
    while message["from"] == "room-bot" {
        message = next().await; // the recent context: bob's own join notice
    }
    assert_eq!(message["event"], "message", "{message}");
    assert_eq!(message["body"], "hi bob");
    assert_eq!(message["to"], "bob");
    assert!(message["seq"].is_u64(), "{message}");

    stdin.write_all(b"thanks\n").await.unwrap();
    let mine = next().await;
    assert_eq!(mine["from"], "bob", "{mine}");
    assert_eq!(mine["body"], "thanks");

    drop(stdin);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("join ends at the end of its input")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
