//! Figure: a sale's round trip through the ZVT driver over a pseudo-terminal, against the
//! terminal simulator answering at once (zero approval delay). What it measures is what
//! posbridge's side adds: framing, acknowledgements, the exchange machine, the journal
//! fsync before the sale, and the pty. Run: `cargo bench --bench zvt_roundtrip`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use posbridge::clock::SystemClock;
use posbridge::terminal::zvt::pt_simulator::{self, Endpoint, SimulatorOptions};
use posbridge::terminal::zvt::transport::Transport;
use posbridge::terminal::zvt::{ZvtDriver, ZvtSettings, driver};
use posbridge::terminal::{CardFunction, PromptSink, SaleOutcome, SaleRequest, TerminalDriver};
use tokio_util::sync::CancellationToken;

const SALES: usize = 300;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("zvt-bench-tty");
        let mut options = SimulatorOptions::new(Endpoint::Pty(link.clone()));
        options.approve_after = Duration::ZERO;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let simulator = tokio::spawn(pt_simulator::serve(options, ready_tx));
        let path = ready_rx.await.expect("simulator ready");
        let settings = ZvtSettings {
            transport: Transport::parse(&format!("serial:{path}")).expect("transport"),
            password: "000000".into(),
            config_byte: driver::DEFAULT_CONFIG_BYTE,
            timeouts: driver::timeouts(5_000, 30),
            sale_window: Duration::from_secs(180),
        };
        let mut zvt = ZvtDriver::new(
            "bench",
            settings,
            dir.path().join("zvt-bench.journal"),
            Arc::new(SystemClock),
        )
        .expect("driver");
        let prompts = PromptSink::new("bench", tokio::sync::broadcast::channel(1024).0);
        let abort = CancellationToken::new();
        let mut times = Vec::with_capacity(SALES);
        for i in 0..SALES + 10 {
            let request = SaleRequest {
                reference: format!("bench-{i}"),
                amount_minor: 1000,
                currency: posbridge::money::Currency::parse("EUR").expect("EUR"),
                function: CardFunction::Credit,
                installments: None,
            };
            let started = Instant::now();
            let outcome = zvt.sale(&request, &prompts, &abort).await.expect("sale");
            let elapsed = started.elapsed();
            assert!(matches!(outcome, SaleOutcome::Approved(_)));
            if i >= 10 {
                times.push(elapsed); // the first ten warm up (connect, registration)
            }
        }
        times.sort();
        println!("ZVT sale round trip over a pty, simulator at zero delay, {SALES} sales:");
        println!(
            "  p50 {:>8.3} ms",
            percentile(&times, 0.50).as_secs_f64() * 1e3
        );
        println!(
            "  p90 {:>8.3} ms",
            percentile(&times, 0.90).as_secs_f64() * 1e3
        );
        println!(
            "  p99 {:>8.3} ms",
            percentile(&times, 0.99).as_secs_f64() * 1e3
        );
        println!(
            "  max {:>8.3} ms",
            times.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        simulator.abort();
    });
}
