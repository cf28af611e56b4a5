//! Every one-shot client command against a live server: human output, `--json`, and
//! failures (message on stderr, nothing on stdout, exit status 1).

use serde_json::Value;

use crate::support::Cli;
use huddle_testkit::Server;

const VERBS: &[&str] = &[
    "rooms", "create", "join", "info", "history", "unread", "send", "leave", "promote", "demote",
    "kick", "update",
];

#[tokio::test]
async fn every_command_has_help() {
    let cli = Cli::new("http://127.0.0.1:9");
    let top = cli.run(&["--help"]).await;
    for verb in VERBS {
        assert!(
            top.ok().contains(&format!("  {verb} ")),
            "`huddle --help` lists {verb}: {}",
            top.stdout
        );
        let run = cli.run(&[verb, "--help"]).await;
        let out = run.ok();
        assert!(
            out.contains(&format!("Usage: huddle {verb}")),
            "huddle {verb} --help: {out}"
        );
        assert!(
            out.contains("--url"),
            "huddle {verb} --help names --url: {out}"
        );
        assert!(
            out.contains("--json"),
            "huddle {verb} --help names --json: {out}"
        );
    }
}

#[tokio::test]
async fn usage_errors_exit_1_on_stderr() {
    let cli = Cli::new("http://127.0.0.1:9");
    let err = cli.run(&["send", "lobby", "hi"]).await;
    assert!(err.fails().contains("--name"), "{err:?}");
    // Refused before any request: the server at port 9 is never asked.
    let err = cli.run(&["update", "lobby", "--name", "a"]).await;
    assert!(err.fails().contains("--description"), "{err:?}");
    let err = cli
        .run(&["create", "x", "--name", "a", "--type", "forum"])
        .await;
    assert!(err.fails().contains("forum"), "{err:?}");
}

#[tokio::test]
async fn unreachable_server_fails_with_status_1() {
    // Port 9 (discard) on loopback: nothing listens there.
    let cli = Cli::new("http://127.0.0.1:9");
    let err = cli.run(&["rooms"]).await;
    assert!(err.fails().starts_with("error: "), "{err:?}");
    let err = cli.run(&["rooms", "--url", "not a url"]).await;
    assert!(err.fails().contains("not a url"), "{err:?}");
}

#[tokio::test]
async fn rooms_lists_public_rooms_with_search_and_json() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    let empty = cli.run(&["rooms"]).await;
    assert_eq!(empty.ok(), "", "no rooms: nothing on stdout ({empty:?})");

    cli.run(&["create", "Lobby", "--description", "Say hi", "--name", "a"])
        .await
        .ok();
    cli.run(&["create", "lab", "--type", "channel", "--name", "a"])
        .await
        .ok();
    cli.run(&["create", "vault", "--password", "pw", "--name", "a"])
        .await
        .ok();

    let run = cli.run(&["rooms"]).await;
    let lines = run.lines();
    assert_eq!(lines.len(), 3, "a header and two rooms: {run:?}");
    assert!(lines[0].starts_with("NAME"), "{run:?}");
    assert!(
        lines[1].starts_with("lab ") && lines[1].contains("channel"),
        "{run:?}"
    );
    assert!(
        lines[2].starts_with("lobby ") && lines[2].contains("Say hi"),
        "names are lower-cased and sorted: {run:?}"
    );
    assert!(
        !run.stdout.contains("vault"),
        "protected rooms are not listed"
    );

    let run = cli.run(&["rooms", "--search", "lob"]).await;
    assert_eq!(run.lines().len(), 2, "{run:?}");
    assert!(run.lines()[1].starts_with("lobby"), "{run:?}");

    let data = cli.run(&["rooms", "--json"]).await.json();
    assert_eq!(data["total"], 2, "{data}");
    assert_eq!(data["rooms"][1]["name"], "lobby");
    assert_eq!(data["rooms"][1]["description"], "Say hi");
    assert_eq!(data["rooms"][1]["agents"], 1);
}

#[tokio::test]
async fn create_prints_the_room_and_joins_as_admin() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    let run = cli.run(&["create", "lobby", "--name", "alice"]).await;
    let out = run.ok();
    assert!(
        out.starts_with("Room created: ") && out.contains("Joined as alice (admin)."),
        "{run:?}"
    );

    let data = cli
        .run(&[
            "create", "vault", "-p", "s3cret", "-d", "Private", "-t", "channel", "--name", "bob",
            "--json",
        ])
        .await
        .json();
    assert_eq!(data["name"], "vault");
    assert_eq!(data["type"], "channel");
    assert_eq!(data["description"], "Private");
    assert_eq!(data["passwordProtected"], true);
    assert_eq!(data["agentName"], "bob");
    assert!(data["agentToken"].as_str().is_some_and(|t| !t.is_empty()));

    // The server agrees: bob is the admin of a protected channel.
    let info = cli.run(&["info", "vault:s3cret", "--json"]).await.json();
    assert_eq!(info["type"], "channel");
    assert_eq!(info["agents"][0]["name"], "bob");
    assert_eq!(info["agents"][0]["role"], "admin");
}

#[tokio::test]
async fn create_errors_go_to_stderr_with_status_1() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "a"]).await.ok();
    let err = cli.run(&["create", "lobby", "--name", "b"]).await;
    assert!(
        err.fails().contains(r#"Room "lobby" already exists."#),
        "{err:?}"
    );
    let err = cli.run(&["create", "docs", "--name", "b"]).await;
    assert!(err.fails().contains("is reserved"), "{err:?}");
}

#[tokio::test]
async fn info_shows_the_room_and_its_members() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "-d", "Say hi", "--name", "alice"])
        .await
        .ok();
    cli.run(&["send", "lobby", "hello", "--name", "bob"])
        .await
        .ok();

    let run = cli.run(&["info", "lobby"]).await;
    let out = run.ok();
    assert!(out.contains("name:        lobby"), "{run:?}");
    assert!(out.contains("type:        group"), "{run:?}");
    assert!(out.contains("description: Say hi"), "{run:?}");
    assert!(out.contains("agents:      2"), "{run:?}");
    assert!(out.contains("  alice  admin"), "{run:?}");
    assert!(out.contains("  bob    member"), "{run:?}");

    let data = cli.run(&["info", "lobby", "--json"]).await.json();
    let id = data["roomId"].as_str().unwrap().to_string();
    assert_eq!(data["agents"].as_array().unwrap().len(), 2);
    // By id too.
    let by_id = cli.run(&["info", &id, "--json"]).await.json();
    assert_eq!(by_id["name"], "lobby");

    let err = cli.run(&["info", "nowhere"]).await;
    assert!(err.fails().contains("Room not found: nowhere"), "{err:?}");
}

#[tokio::test]
async fn send_joins_first_then_history_shows_the_messages() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice"]).await.ok();

    let run = cli.run(&["send", "lobby", "first", "--name", "bob"]).await;
    assert_eq!(run.ok().trim(), "Message sent", "{run:?}");
    assert!(
        run.stderr.contains("Joined room "),
        "bob had no token: he joins first, and says so on stderr: {run:?}"
    );
    let run = cli.run(&["send", "lobby", "second", "--name", "bob"]).await;
    assert!(
        !run.stderr.contains("Joined room"),
        "the stored token is used: {run:?}"
    );

    let run = cli.run(&["history", "lobby", "--name", "alice"]).await;
    assert_eq!(
        run.lines(),
        [
            "[room-bot] bob joined the room",
            "[bob] first",
            "[bob] second"
        ],
        "{run:?}"
    );
    let run = cli
        .run(&["history", "lobby", "--name", "alice", "--limit", "1"])
        .await;
    assert_eq!(run.lines(), ["[bob] second"], "{run:?}");

    let data = cli
        .run(&["history", "lobby", "--name", "alice", "--json"])
        .await
        .json();
    assert_eq!(data["total"], 3, "{data}");
    let bodies: Vec<&str> = data["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["bob joined the room", "first", "second"]);

    let data = cli
        .run(&["send", "lobby", "third", "--name", "bob", "--json"])
        .await
        .json();
    assert!(
        data.is_object(),
        "send --json prints the reply's data: {data}"
    );
}

#[tokio::test]
async fn unread_returns_new_messages_once() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice"]).await.ok();
    cli.run(&["send", "lobby", "one", "--name", "bob"])
        .await
        .ok();
    cli.run(&["send", "lobby", "two", "--name", "bob"])
        .await
        .ok();

    let run = cli.run(&["unread", "lobby", "--name", "alice"]).await;
    assert_eq!(
        run.lines(),
        ["[room-bot] bob joined the room", "[bob] one", "[bob] two"],
        "{run:?}"
    );
    let run = cli.run(&["unread", "lobby", "--name", "alice"]).await;
    assert_eq!(run.ok().trim(), "No unread messages", "{run:?}");

    cli.run(&["send", "lobby", "three", "--name", "bob"])
        .await
        .ok();
    let data = cli
        .run(&["unread", "lobby", "--name", "alice", "--json"])
        .await
        .json();
    assert_eq!(data["total"], 1, "{data}");
    assert_eq!(data["messages"][0]["body"], "three");
    assert_eq!(data["messages"][0]["from"], "bob");
}

#[tokio::test]
async fn send_to_is_a_private_direct_message() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice"]).await.ok();
    cli.run(&["send", "lobby", "hi all", "--name", "bob"])
        .await
        .ok();
    cli.run(&["send", "lobby", "hi too", "--name", "carol"])
        .await
        .ok();
    cli.run(&["send", "lobby", "psst", "--name", "bob", "--to", "alice"])
        .await
        .ok();

    let alice = cli.run(&["history", "lobby", "--name", "alice"]).await;
    assert!(
        alice.lines().contains(&"[bob -> alice] psst"),
        "the recipient sees the DM: {alice:?}"
    );
    let carol = cli.run(&["history", "lobby", "--name", "carol"]).await;
    assert!(
        carol.lines().contains(&"[carol] hi too") && !carol.stdout.contains("psst"),
        "a third agent does not: {carol:?}"
    );

    let err = cli
        .run(&["send", "lobby", "hello?", "--name", "bob", "--to", "nobody"])
        .await;
    assert!(
        err.fails().contains(r#"Agent "nobody" not found in room"#),
        "{err:?}"
    );
}

#[tokio::test]
async fn leave_leaves_the_room_and_forgets_the_token() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice"]).await.ok();
    cli.run(&["send", "lobby", "bye soon", "--name", "bob"])
        .await
        .ok();
    assert!(cli.stored_token("bob").is_some());

    let run = cli.run(&["leave", "lobby", "--name", "bob"]).await;
    assert!(run.ok().starts_with("Left room "), "{run:?}");
    assert_eq!(cli.stored_token("bob"), None, "the token is forgotten");
    let info = cli.run(&["info", "lobby", "--json"]).await.json();
    let names: Vec<&Value> = info["agents"].as_array().unwrap().iter().collect();
    assert_eq!(names.len(), 1, "bob is gone: {info}");
    let history = cli.run(&["history", "lobby", "--name", "alice"]).await;
    assert!(
        history.lines().contains(&"[room-bot] bob left the room"),
        "{history:?}"
    );
}

#[tokio::test]
async fn admin_verbs_promote_demote_kick_update() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice"]).await.ok();
    cli.run(&["send", "lobby", "hi", "--name", "bob"])
        .await
        .ok();
    cli.run(&["send", "lobby", "hi", "--name", "carol"])
        .await
        .ok();

    // A member may not.
    let err = cli
        .run(&["promote", "lobby", "carol", "--name", "bob"])
        .await;
    assert!(err.fails().contains("Admin role required"), "{err:?}");

    let run = cli
        .run(&["promote", "lobby", "bob", "--name", "alice"])
        .await;
    assert_eq!(run.ok().trim(), "Promoted bob to admin", "{run:?}");
    let run = cli.run(&["kick", "lobby", "carol", "--name", "bob"]).await;
    assert_eq!(run.ok().trim(), "Kicked carol from the room", "{run:?}");
    let run = cli
        .run(&["demote", "lobby", "bob", "--name", "alice"])
        .await;
    assert_eq!(run.ok().trim(), "Demoted bob to member", "{run:?}");
    let err = cli
        .run(&["demote", "lobby", "alice", "--name", "alice"])
        .await;
    assert!(
        err.fails().contains("Cannot demote the last admin"),
        "{err:?}"
    );
    let err = cli
        .run(&["kick", "lobby", "alice", "--name", "alice"])
        .await;
    assert!(err.fails().contains("Cannot kick yourself"), "{err:?}");
    let err = cli.run(&["kick", "lobby", "zed", "--name", "alice"]).await;
    assert!(
        err.fails().contains(r#"Agent "zed" not found in room"#),
        "{err:?}"
    );

    let run = cli
        .run(&[
            "update",
            "lobby",
            "--description",
            "Announcements",
            "--type",
            "channel",
            "--name",
            "alice",
        ])
        .await;
    assert!(run.ok().starts_with("Room updated: "), "{run:?}");
    let info = cli.run(&["info", "lobby", "--json"]).await.json();
    assert_eq!(info["description"], "Announcements");
    assert_eq!(info["type"], "channel");
    let err = cli.run(&["send", "lobby", "may I?", "--name", "bob"]).await;
    assert!(
        err.fails().contains("Only admins can post in channels"),
        "{err:?}"
    );
    let data = cli
        .run(&[
            "update", "lobby", "-t", "group", "--name", "alice", "--json",
        ])
        .await
        .json();
    assert!(
        data["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Room updated")),
        "a reply without data prints {{\"text\"}}: {data}"
    );

    let history = cli.run(&["history", "lobby", "--name", "alice"]).await;
    for notice in [
        "[room-bot] alice promoted bob to admin",
        "[room-bot] bob kicked carol from the room",
        "[room-bot] alice demoted bob to member",
    ] {
        assert!(history.lines().contains(&notice), "{notice}: {history:?}");
    }
}

#[tokio::test]
async fn a_send_whose_answer_is_lost_is_sent_again_under_its_id_and_stored_once() {
    let s = Server::start().await;
    let owner = s.create_room("lossy", "owner").await;
    let proxy = crate::support::Proxy::start(&s.base).await;
    let cli = Cli::new(&proxy.url);
    cli.run(&["join", "lossy", "--name", "alice"]).await.ok();

    proxy.lose_next_answer();
    let run = cli
        .run(&["send", "lossy", "only once", "--name", "alice"])
        .await;
    assert!(run.ok().contains("Message sent"), "{run:?}");
    assert_eq!(proxy.answers_lost(), 1, "the first answer was not lost");

    let history = s.history_all(&owner).await;
    let copies = history.iter().filter(|m| m["body"] == "only once").count();
    assert_eq!(
        copies, 1,
        "the resent message was stored twice: {history:?}"
    );
}
