//! The `huddle` client commands: `rooms`, `create`, `join` (interactive), `info`,
//! `history`, `unread`, `send`, `leave`, `promote`, `demote`, `kick`, `update`.
//!
//! They speak only A2A `SendMessage` and the room SSE stream (join.cloud's surface), through
//! [`crate::client`], so they work against any join.cloud-compatible server. Data goes to
//! stdout (`--json` for machine-readable output), errors to stderr with exit status 1.
//!
//! Layout:
//! - `args`        — the command line (clap): one variant per verb, shared options.
//! - `tokens`      — agent tokens stored per (server, room, agent), file mode 0600.
//! - `commands`    — the one-shot commands and the "act as a member" rule they share.
//! - `interactive` — `huddle join`: live messages, typed lines, reconnect and resume.
//! - `output`      — printing: stdout lines, JSON, the `[from] body` message line.

mod args;
mod commands;
mod interactive;
mod output;
mod tokens;

pub use args::Command;

/// Runs a client command on `runtime`. A failure is printed on stderr as `error: ...`
/// and ends the process with status 1.
pub fn run(runtime: &tokio::runtime::Runtime, command: Command) -> anyhow::Result<()> {
    let result = runtime.block_on(async move {
        match command {
            Command::Rooms(a) => commands::rooms(a).await,
            Command::Create(a) => commands::create(a).await,
            Command::Join(a) => interactive::join(a).await,
            Command::Info(a) => commands::info(a).await,
            Command::History(a) => commands::history(a).await,
            Command::Unread(a) => commands::unread(a).await,
            Command::Send(a) => commands::send(a).await,
            Command::Leave(a) => commands::leave(a).await,
            Command::Promote(a) => commands::admin("room.promote", a).await,
            Command::Demote(a) => commands::admin("room.demote", a).await,
            Command::Kick(a) => commands::admin("room.kick", a).await,
            Command::Update(a) => commands::update(a).await,
        }
    });
    if let Err(e) = result {
        output::note(format!("error: {e:#}"));
        std::process::exit(1);
    }
    Ok(())
}
