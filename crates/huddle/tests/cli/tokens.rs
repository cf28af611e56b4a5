//! The token store: per (server, room, agent), mode 0600, reused by later commands so
//! they act (and reconnect) as the same agent; `--no-persist`; stale tokens.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::support::Cli;
use huddle_testkit::Server;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn tokens_are_stored_privately_per_server_room_and_agent() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    let created = cli
        .run(&["create", "lobby", "--name", "alice", "--json"])
        .await
        .json();
    cli.run(&["create", "vault", "-p", "hunter2", "--name", "alice"])
        .await
        .ok();

    assert_eq!(mode(&cli.tokens_file()), 0o600, "tokens.json is private");
    let text = std::fs::read_to_string(cli.tokens_file()).unwrap();
    assert!(
        !text.contains("hunter2"),
        "room passwords are not stored: {text}"
    );
    let stored = cli.stored();
    assert_eq!(stored.len(), 2, "{stored:?}");
    let lobby = stored
        .iter()
        .find(|e| e["roomId"] == created["roomId"])
        .unwrap();
    assert_eq!(lobby["agent"], "alice");
    assert_eq!(lobby["token"], created["agentToken"]);
    assert_eq!(lobby["server"], format!("{}/", server.base));

    // The stored token is alice's identity: she posts as alice without joining again,
    // and the protected room's token works with its name alone.
    let run = cli.run(&["send", "vault", "hi", "--name", "alice"]).await;
    run.ok();
    assert!(!run.stderr.contains("Joined"), "{run:?}");
    let history = cli.run(&["history", "vault", "--name", "alice"]).await;
    assert_eq!(history.lines(), ["[alice] hi"], "{history:?}");

    // `join name:password` stores bob's token too; later commands find it by name.
    let run = cli.run(&["join", "vault:hunter2", "--name", "bob"]).await;
    assert!(run.stderr.contains("Joined room "), "{run:?}");
    assert!(
        run.ok().contains("[alice] hi"),
        "joining shows recent messages: {run:?}"
    );
    let err = cli.run(&["join", "vault:wrong", "--name", "carol"]).await;
    assert!(err.fails().contains("Invalid room password"), "{err:?}");
    let run = cli.run(&["send", "vault", "hello", "--name", "bob"]).await;
    run.ok();
    assert!(!run.stderr.contains("Joined"), "{run:?}");
    let history = cli.run(&["history", "vault", "--name", "alice"]).await;
    assert_eq!(history.lines().last(), Some(&"[bob] hello"), "{history:?}");
}

#[tokio::test]
async fn a_later_join_reconnects_as_the_same_agent() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice"]).await.ok();
    let token = cli.stored_token("alice").expect("stored by create");

    // `join` with stdin at its end: joins, prints, and ends the session.
    let run = cli.run(&["join", "lobby", "--name", "alice"]).await;
    run.ok();
    assert!(
        run.stderr.contains("Reconnected to room ") && run.stderr.contains(" as alice"),
        "{run:?}"
    );
    assert_eq!(cli.stored_token("alice"), Some(token.clone()), "same token");

    // Another user (another config dir) cannot take the name.
    let other = Cli::new(&server.base);
    let err = other.run(&["join", "lobby", "--name", "alice"]).await;
    assert!(
        err.fails()
            .contains(r#"Agent name "alice" is already taken"#),
        "{err:?}"
    );
    // Unless they hold the token.
    let run = other
        .run(&["join", "lobby", "--name", "alice", "--token", &token])
        .await;
    run.ok();
    assert!(run.stderr.contains("Reconnected to room "), "{run:?}");

    // `--json` tells it too.
    let mut cmd = cli.command(&["join", "lobby", "--name", "alice", "--json"]);
    cmd.stdin(Stdio::null());
    let run = cli.run_with(cmd).await;
    let first: serde_json::Value =
        serde_json::from_str(run.ok().lines().next().expect("a joined line")).unwrap();
    assert_eq!(first["event"], "joined", "{run:?}");
    assert_eq!(first["reconnected"], true);
    assert_eq!(first["role"], "admin");
    assert_eq!(first["agentToken"], token.as_str());

    let info = cli.run(&["info", "lobby", "--json"]).await.json();
    assert_eq!(
        info["agents"].as_array().unwrap().len(),
        1,
        "still one alice: {info}"
    );
}

#[tokio::test]
async fn no_persist_neither_stores_nor_reads_tokens() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    cli.run(&["create", "lobby", "--name", "alice", "--no-persist"])
        .await
        .ok();
    cli.run(&["send", "lobby", "hi", "--name", "bob", "--no-persist"])
        .await
        .ok();
    assert!(
        !cli.tokens_file().exists(),
        "--no-persist writes nothing: {:?}",
        cli.stored()
    );

    // With tokens stored, --no-persist does not use them: carol is a stranger again.
    cli.run(&["send", "lobby", "hi", "--name", "carol"])
        .await
        .ok();
    let err = cli
        .run(&["send", "lobby", "again", "--name", "carol", "--no-persist"])
        .await;
    assert!(err.fails().contains("already taken"), "{err:?}");
}

#[tokio::test]
async fn the_config_dir_falls_back_to_xdg_config_home() {
    let server = Server::start().await;
    let cli = Cli::new(&server.base);
    let xdg = tempfile::tempdir().unwrap();
    let mut cmd = cli.command(&["create", "lobby", "--name", "alice"]);
    cmd.env_remove("HUDDLE_CONFIG_DIR")
        .env("XDG_CONFIG_HOME", xdg.path());
    cli.run_with(cmd).await.ok();
    let file = xdg.path().join("huddle").join("tokens.json");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&xdg.path().join("huddle")), 0o700);
    assert!(!cli.tokens_file().exists());
}

#[tokio::test]
async fn a_stale_stored_token_is_replaced_by_a_fresh_join() {
    let server = Server::start().await;
    let admin = Cli::new(&server.base);
    let carol = Cli::new(&server.base);
    admin
        .run(&["create", "lobby", "--name", "alice"])
        .await
        .ok();
    carol
        .run(&["send", "lobby", "hi", "--name", "carol"])
        .await
        .ok();
    let old = carol.stored_token("carol").unwrap();
    admin
        .run(&["kick", "lobby", "carol", "--name", "alice"])
        .await
        .ok();

    let run = carol
        .run(&["send", "lobby", "back again", "--name", "carol"])
        .await;
    run.ok();
    assert!(
        run.stderr.contains("no longer valid") && run.stderr.contains("Joined room"),
        "{run:?}"
    );
    let new = carol.stored_token("carol").unwrap();
    assert_ne!(new, old);
    let history = admin.run(&["history", "lobby", "--name", "alice"]).await;
    assert_eq!(history.lines().last(), Some(&"[carol] back again"));

    // Leaving with a stale token does not join only to leave again.
    admin
        .run(&["kick", "lobby", "carol", "--name", "alice"])
        .await
        .ok();
    let err = carol.run(&["leave", "lobby", "--name", "carol"]).await;
    assert!(err.fails().contains("Invalid agentToken"), "{err:?}");
    assert_eq!(
        carol.stored_token("carol"),
        None,
        "the stale token is forgotten"
    );
}
