//! `huddle store copy`: moves a node's embedded store into PostgreSQL (see
//! `huddle_store::copy`), printing each room as it is verified.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use huddle_store::{Durability, EmbeddedStore, PostgresOptions, PostgresStore};

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy a node's data (rooms, members, token digests, cursors, messages) from its
    /// embedded store into PostgreSQL. Stop the node first. A rerun goes on where an
    /// interrupted copy stopped; rooms already copied are skipped.
    Copy {
        /// The source: `sqlite:DIR`, DIR being the node's data dir (holding huddle.db).
        #[arg(long)]
        from: String,
        /// The destination: `postgres://user:password@host:port/database[?sslmode=...]`.
        #[arg(long)]
        to: String,
    },
}

/// The data dir named by `sqlite:DIR` (or `sqlite:DIR/huddle.db`).
fn sqlite_dir(from: &str) -> anyhow::Result<PathBuf> {
    let Some(path) = from.strip_prefix("sqlite:") else {
        bail!("--from must be sqlite:DIR (the data dir of a node), not {from:?}");
    };
    let path = PathBuf::from(path);
    if path.file_name().is_some_and(|f| f == "huddle.db") {
        return Ok(path.parent().map(PathBuf::from).unwrap_or_default());
    }
    Ok(path)
}

pub async fn run(command: StoreCommand) -> anyhow::Result<()> {
    let StoreCommand::Copy { from, to } = command;
    let dir = sqlite_dir(&from)?;
    if !dir.join("huddle.db").exists() {
        bail!("no huddle.db in {}", dir.display());
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!("--to must be a postgres:// URL");
    }
    let source = EmbeddedStore::open(&dir, Durability::Process)
        .with_context(|| format!("opening {}", dir.display()))?;
    let dest = PostgresStore::connect(&to, PostgresOptions::default())
        .await
        .context("connecting to PostgreSQL")?;
    let report = huddle_store::copy::copy(&source, &dest, |r| {
        println!(
            "room {} ({}): {} messages, last seq {}, {} members — {}",
            r.id,
            r.name,
            r.messages,
            r.last_seq,
            r.members,
            match r.copied {
                0 => "already copied, verified".to_string(),
                n => format!("copied {n}, verified"),
            }
        );
    })
    .await
    .context("copying")?;
    let messages: u64 = report.iter().map(|r| r.messages).sum();
    println!(
        "copied and verified {} rooms, {messages} messages",
        report.len()
    );
    Ok(())
}
