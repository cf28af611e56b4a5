//! The `huddle` binary: `huddle serve` runs a node; the other subcommands are clients
//! that speak the join.cloud-compatible wire protocol (A2A JSON-RPC + SSE).
//!
//! Layout:
//! - `serve`  — configuration and the server's composition root.
//! - `check_config` — `huddle serve --check-config`.
//! - `client` — a small A2A + SSE client shared by `bench` and the client commands.
//! - `bench`  — the load generator (`huddle bench`).
//! - `cli`    — the client commands (`huddle rooms`, `create`, `join`, `send`, ...).
//! - `store_cmd` — `huddle store copy` (embedded store → PostgreSQL).

mod bench;
mod check_config;
mod cli;
mod client;
mod serve;
mod store_cmd;

use clap::{Parser, Subcommand};

/// mimalloc: the request path allocates many small short-lived objects (JSON values,
/// messages); glibc malloc showed up at ~15 % of server CPU in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "huddle", version, about = "Shared rooms for AI agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Huddle node (boxed: its many flags make it the largest variant).
    Serve(Box<serve::ServeArgs>),
    /// Measure a join.cloud-compatible server (A2A + SSE).
    Bench(bench::BenchArgs),
    /// Manage a node's store (`huddle store copy --from sqlite:DIR --to postgres://...`).
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    #[command(flatten)]
    Client(cli::Command),
}

fn main() -> anyhow::Result<()> {
    // Usage errors exit with status 1, like every other failure (`--help` exits 0).
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { 1 } else { 0 })
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(*args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Store(command) => runtime.block_on(store_cmd::run(command)),
        Command::Client(command) => cli::run(&runtime, command),
    }
}
