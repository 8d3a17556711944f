//! A ZVT payment terminal (the PT side) speaking the real wire protocol, for tests and demos:
//! `posbridge simulate-terminal zvt`.

/// Command-line options of `posbridge simulate-terminal zvt`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulatorArgs {
    /// `tcp:HOST:PORT` (port 0 allowed) to listen on.
    #[arg(long)]
    pub listen: Option<String>,
}

pub async fn run(_args: SimulatorArgs) -> anyhow::Result<()> {
    anyhow::bail!("the ZVT terminal simulator is not built yet")
}
