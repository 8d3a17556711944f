//! Runs one ZVT exchange (the codec's sans-I/O `EcrExchange`) over a live link: sends what it
//! says, feeds it what arrives, runs its timers, forwards an abort, and collects the result.

use std::time::Duration;

use firmware_protocols::zvt::exchange::ExchangeOptions;
use firmware_protocols::zvt::{
    Action, BmpList, EcrExchange, ExchangeEvent, Message, ResultCode, Timer,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::link::{LinkError, ZvtLink};
use crate::terminal::{PromptSink, Receipt, ReceiptKind};

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// T3: command → `80 00` / `84 xx`.
    pub ack: Duration,
    /// T4: silence while the terminal is master.
    pub completion: Duration,
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// `06 0F`.
    Completed,
    /// `06 1E` with its result code.
    Aborted(ResultCode),
    /// `84 xx`: the terminal did not take the command.
    Refused(ResultCode),
    /// T3 or T4 ran out: outcome unknown.
    TimedOut,
    /// `80 00 00` to a command that ends there (an ECR abort).
    Accepted,
}

impl std::fmt::Display for Ending {
    /// In words for store IT (alarms, `terminals list`): never a debug dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |code: &ResultCode| {
            code.text()
                .map_or_else(|| format!("result code {:#04x}", code.0), str::to_string)
        };
        match self {
            Ending::Completed => f.write_str("completed"),
            Ending::Aborted(code) => write!(f, "ended without a result ({})", text(code)),
            Ending::Refused(code) => write!(f, "refused ({})", text(code)),
            Ending::TimedOut => f.write_str("did not answer in time"),
            Ending::Accepted => f.write_str("accepted"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dialogue {
    pub ending: Ending,
    /// The last Status-Information (`04 0F`) fields, if any came.
    pub status: Option<BmpList>,
    pub receipts: Vec<Receipt>,
    /// Lines from `06 D1` print lines (collected into one receipt).
    pub print_lines: Vec<String>,
    /// The fields of the `06 0F` Completion (registration: the terminal ID).
    pub completion: Option<BmpList>,
}

/// Where prompts go while the exchange runs: the sink and the payment they belong to.
pub struct Prompts<'a> {
    pub sink: &'a PromptSink,
    pub reference: &'a str,
}

pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    link: &mut ZvtLink<S>,
    command: &Message,
    timeouts: Timeouts,
    prompts: Option<Prompts<'_>>,
    abort: Option<&CancellationToken>,
) -> Result<Dialogue, LinkError> {
    run_with(
        link,
        command,
        ExchangeOptions::default(),
        timeouts,
        prompts,
        abort,
    )
    .await
}

/// A command the terminal only accepts or refuses (`80 00 00` / `84 xx`), such as an abort.
pub async fn run_acknowledged<S: AsyncRead + AsyncWrite + Unpin>(
    link: &mut ZvtLink<S>,
    command: &Message,
    timeouts: Timeouts,
) -> Result<Dialogue, LinkError> {
    let options = ExchangeOptions {
        ends_on_ack: true,
        ..ExchangeOptions::default()
    };
    run_with(link, command, options, timeouts, None, None).await
}

async fn run_with<S: AsyncRead + AsyncWrite + Unpin>(
    link: &mut ZvtLink<S>,
    command: &Message,
    options: ExchangeOptions,
    timeouts: Timeouts,
    prompts: Option<Prompts<'_>>,
    abort: Option<&CancellationToken>,
) -> Result<Dialogue, LinkError> {
    let (mut exchange, actions) = EcrExchange::start_with(command, options)
        .map_err(|e| LinkError::Garbage(format!("cannot encode the command: {e}")))?;
    let mut dialogue = Dialogue {
        ending: Ending::TimedOut,
        status: None,
        receipts: Vec::new(),
        print_lines: Vec::new(),
        completion: None,
    };
    let mut deadline: Option<(tokio::time::Instant, Timer)> = None;
    let mut abort_sent = false;
    let mut pending = actions;
    loop {
        for action in std::mem::take(&mut pending) {
            match action {
                Action::Send(apdu) => link.send(&apdu).await?,
                Action::StartTimer(timer) => {
                    let length = match timer {
                        Timer::Ack => timeouts.ack,
                        Timer::Completion => timeouts.completion,
                    };
                    deadline = Some((tokio::time::Instant::now() + length, timer));
                }
                Action::StopTimer => deadline = None,
                Action::Event(ExchangeEvent::Accepted) if options.ends_on_ack => {
                    dialogue.ending = Ending::Accepted;
                }
                Action::Event(event) => handle_event(event, &mut dialogue, prompts.as_ref()),
            }
        }
        if exchange.is_finished() {
            if !dialogue.print_lines.is_empty() {
                let lines = std::mem::take(&mut dialogue.print_lines);
                dialogue
                    .receipts
                    .push(Receipt::masked(ReceiptKind::Other, lines));
            }
            return Ok(dialogue);
        }
        let sleep_until = deadline.map(|(at, _)| at);
        let aborting = abort.filter(|_| !abort_sent);
        tokio::select! {
            apdu = link.recv() => pending = exchange.on_apdu(&apdu?),
            () = async {
                match sleep_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((_, timer)) = deadline.take() {
                    pending = exchange.on_timeout(timer);
                }
            }
            () = async {
                match aborting {
                    Some(token) => token.cancelled().await,
                    None => std::future::pending().await,
                }
            } => {
                abort_sent = true;
                tracing::info!("ZVT: asking the terminal to abort the sale");
                pending = exchange.request_abort();
            }
        }
    }
}

fn handle_event(event: ExchangeEvent, dialogue: &mut Dialogue, prompts: Option<&Prompts<'_>>) {
    match event {
        ExchangeEvent::Accepted => {}
        ExchangeEvent::NegativeAck(code) => {
            // Before the terminal took the command this ends the exchange; later it only
            // refuses an abort request, and the exchange goes on.
            dialogue.ending = Ending::Refused(code);
        }
        ExchangeEvent::IntermediateStatus(status) => {
            if let (Some(p), Some(text)) = (prompts, status.text()) {
                p.sink.show(p.reference, text);
            }
        }
        ExchangeEvent::StatusInformation(info) => dialogue.status = Some(info.fields),
        ExchangeEvent::PrintLine(line) => dialogue.print_lines.push(line.text.trimmed()),
        ExchangeEvent::PrintTextBlock(block) => {
            let kind = match block.receipt_type() {
                Some(1) => ReceiptKind::Merchant,
                Some(2) => ReceiptKind::Customer,
                _ => ReceiptKind::Other,
            };
            let lines = block
                .lines()
                .iter()
                .map(|l| l.trimmed())
                .collect::<Vec<_>>();
            dialogue.receipts.push(Receipt::masked(kind, lines));
        }
        ExchangeEvent::Completed(completion) => {
            dialogue.completion = completion.fields().cloned();
            dialogue.ending = Ending::Completed;
        }
        ExchangeEvent::Aborted(abort) => dialogue.ending = Ending::Aborted(abort.result_code),
        ExchangeEvent::TimedOut(_) => dialogue.ending = Ending::TimedOut,
        ExchangeEvent::Unexpected(message) => {
            tracing::warn!(control = ?message.control(), "ZVT: unexpected message from the terminal");
        }
        ExchangeEvent::Undecodable(error) => {
            tracing::warn!(%error, "ZVT: undecodable message from the terminal")
        }
        _ => {}
    }
}
