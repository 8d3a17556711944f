//! What every protocol simulator's command does around its work: print its first line on
//! stdout once ready (tests and scripts read where it listens from it; the logs go to
//! stderr), then run until the work fails or the process is interrupted or terminated.

use std::future::Future;
use std::io::Write;

use anyhow::Context;
use tokio::sync::oneshot;

/// Runs `work` (a simulator's `serve`), announcing the line it sends on `announced`. `name`
/// says who stops in the log. Returning drops `work` (its own cleanup runs: a pty symlink).
pub async fn run_announced(
    name: &str,
    work: impl Future<Output = anyhow::Result<()>>,
    announced: oneshot::Receiver<String>,
) -> anyhow::Result<()> {
    tokio::pin!(work);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    tokio::select! {
        result = &mut work => return result,
        line = announced => {
            if let Ok(line) = line {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{line}").context("writing to stdout")?;
                stdout.flush().context("writing to stdout")?;
            }
        }
    }
    tokio::select! {
        result = &mut work => result,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("{name}: interrupted, stopping");
            Ok(())
        }
        _ = terminate.recv() => {
            tracing::info!("{name}: terminated, stopping");
            Ok(())
        }
    }
}
