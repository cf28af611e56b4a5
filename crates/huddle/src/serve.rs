//! `huddle serve` (placeholder until written).
use clap::Args;

#[derive(Args, Debug)]
pub struct ServeArgs {}

pub async fn run(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
