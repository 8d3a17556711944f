//! End-to-end tests: the simulator in-process on real TCP (127.0.0.1:0) and a real pty, and a
//! small ECR built from `ZvtLink` and the codec's `EcrExchange`.

use std::time::Duration;

use clap::Parser;
use firmware_protocols::zvt::exchange::ExchangeOptions;
use firmware_protocols::zvt::messages::{
    Abort, Authorization, Completion, CompletionBody, EndOfDay, IntermediateStatus, PrintTextBlock,
    Registration, RepeatReceipt, Reversal, StatusEnquiry, StatusInformation, config_bits,
};
use firmware_protocols::zvt::tlv::receipt_type;
use firmware_protocols::zvt::{
    Action, Amount, Bmp, CurrencyCode, EcrExchange, ExchangeEvent, Message, Password, ResultCode,
    Timer,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::super::link::{Framing, LinkError, ZvtLink};
use super::*;

const FAST: Duration = Duration::from_millis(50);
/// The test ECR's T4: generous, the simulator answers in milliseconds.
const COMPLETION_WAIT: Duration = Duration::from_secs(8);

fn password() -> Password {
    Password::from_bytes([0, 0, 0])
}

/// A running simulator; aborted (and its symlink removed) on drop.
struct Sim {
    task: JoinHandle<anyhow::Result<()>>,
    line: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sim {
    async fn start(options: SimulatorOptions) -> Self {
        let (ready, announced) = oneshot::channel();
        let task = tokio::spawn(serve(options, ready));
        let line = tokio::time::timeout(Duration::from_secs(5), announced)
            .await
            .expect("the simulator announces itself")
            .expect("the simulator is running");
        Self { task, line }
    }

    async fn tcp(approve_after: Duration, faults: &[FaultKind]) -> Self {
        let mut options =
            SimulatorOptions::new(Endpoint::Tcp("127.0.0.1:0".parse().expect("address")));
        options.approve_after = approve_after;
        options.faults = faults.to_vec();
        Self::start(options).await
    }

    fn address(&self) -> String {
        self.line
            .strip_prefix("listening on tcp:")
            .expect("the TCP announcement")
            .to_string()
    }

    async fn connect(&self) -> Ecr<TcpStream> {
        let stream = TcpStream::connect(self.address()).await.expect("connect");
        Ecr::new(ZvtLink::new(stream, Framing::Tcp))
    }
}

/// Everything the PT said in one exchange.
#[derive(Debug, Default)]
struct Dialogue {
    accepted: bool,
    refused: Option<ResultCode>,
    /// `84 xx` answers to an `06 B0` while the PT was master.
    abort_refusals: Vec<ResultCode>,
    statuses: Vec<IntermediateStatus>,
    results: Vec<StatusInformation>,
    receipts: Vec<PrintTextBlock>,
    completed: Option<Completion>,
    aborted: Option<Abort>,
    timed_out: Option<Timer>,
    link_error: Option<LinkError>,
}

impl Dialogue {
    fn result(&self) -> &StatusInformation {
        self.results.first().expect("a Status-Information")
    }

    fn receipt_text(&self) -> String {
        self.receipts
            .iter()
            .flat_map(PrintTextBlock::lines)
            .map(|line| line.to_unicode() + "\n")
            .collect()
    }
}

struct Ecr<S> {
    link: ZvtLink<S>,
    completion_wait: Duration,
    /// Answer a Status-Information with `84 xx` instead of `80 00 00`.
    reject_results_with: Option<ResultCode>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Ecr<S> {
    fn new(link: ZvtLink<S>) -> Self {
        Self {
            link,
            completion_wait: COMPLETION_WAIT,
            reject_results_with: None,
        }
    }

    async fn exchange(&mut self, command: impl Into<Message>) -> Dialogue {
        self.exchange_aborting(command, None).await
    }

    /// Runs one exchange; sends `06 B0` after the `abort_after`-th intermediate status.
    async fn exchange_aborting(
        &mut self,
        command: impl Into<Message>,
        abort_after: Option<usize>,
    ) -> Dialogue {
        let options = ExchangeOptions {
            manual_status_confirmation: true,
            ..ExchangeOptions::default()
        };
        let (mut exchange, actions) =
            EcrExchange::start_with(&command.into(), options).expect("encode");
        let mut dialogue = Dialogue::default();
        let mut deadline = None;
        let mut pending = actions;
        loop {
            for action in std::mem::take(&mut pending) {
                match action {
                    Action::Send(apdu) => {
                        if let Err(error) = self.link.send(&apdu).await {
                            dialogue.link_error = Some(error);
                            return dialogue;
                        }
                    }
                    Action::StartTimer(timer) => {
                        let wait = match timer {
                            Timer::Ack => Duration::from_secs(5),
                            Timer::Completion => self.completion_wait,
                        };
                        deadline = Some((timer, Instant::now() + wait));
                    }
                    Action::StopTimer => deadline = None,
                    Action::Event(event) => {
                        let status_count = dialogue.statuses.len();
                        record(&mut dialogue, event);
                        if abort_after
                            .is_some_and(|n| dialogue.statuses.len() == n && status_count + 1 == n)
                        {
                            pending.extend(exchange.request_abort());
                        }
                        if exchange.status_confirmation_pending() {
                            pending.extend(match self.reject_results_with {
                                Some(code) => exchange.reject_status_information(code),
                                None => exchange.accept_status_information(),
                            });
                        }
                    }
                }
            }
            if exchange.is_finished() && pending.is_empty() {
                return dialogue;
            }
            if !pending.is_empty() {
                continue;
            }
            let Some((timer, at)) = deadline else {
                return dialogue;
            };
            tokio::select! {
                () = tokio::time::sleep_until(at) => pending = exchange.on_timeout(timer),
                received = self.link.recv() => match received {
                    Ok(apdu) => pending = exchange.on_apdu(&apdu),
                    Err(error) => {
                        dialogue.link_error = Some(error);
                        return dialogue;
                    }
                },
            }
        }
    }

    async fn sale(&mut self, minor: u64) -> Dialogue {
        self.exchange(sale(minor)).await
    }
}

fn sale(minor: u64) -> Message {
    Authorization::payment(
        Amount::from_minor_units(minor).expect("amount"),
        CurrencyCode::EUR,
    )
    .with(Bmp::PaymentType(0x40))
    .into()
}

fn record(dialogue: &mut Dialogue, event: ExchangeEvent) {
    match event {
        ExchangeEvent::Accepted => dialogue.accepted = true,
        ExchangeEvent::NegativeAck(code) if dialogue.accepted => {
            dialogue.abort_refusals.push(code);
        }
        ExchangeEvent::NegativeAck(code) => dialogue.refused = Some(code),
        ExchangeEvent::IntermediateStatus(status) => dialogue.statuses.push(status),
        ExchangeEvent::StatusInformation(info) => dialogue.results.push(info),
        ExchangeEvent::PrintTextBlock(block) => dialogue.receipts.push(block),
        ExchangeEvent::Completed(completion) => dialogue.completed = Some(completion),
        ExchangeEvent::Aborted(abort) => dialogue.aborted = Some(abort),
        ExchangeEvent::TimedOut(timer) => dialogue.timed_out = Some(timer),
        other => panic!("unexpected event {other:?}"),
    }
}

/// The checks every approved sale passes.
fn assert_approved(dialogue: &Dialogue, minor: u64) -> (u16, u32) {
    assert!(dialogue.accepted, "{dialogue:?}");
    assert!(dialogue.completed.is_some(), "{dialogue:?}");
    assert_eq!(dialogue.aborted, None);
    assert_eq!(
        dialogue.statuses.first().map(|s| s.status),
        Some(0x0A),
        "insert card first"
    );
    let fields = &dialogue.result().fields;
    assert!(fields.is_fully_decoded());
    assert_eq!(fields.result_code(), Some(ResultCode::SUCCESS));
    assert_eq!(fields.amount().map(Amount::minor_units), Some(minor));
    assert_eq!(fields.currency(), Some(CurrencyCode::EUR));
    assert_eq!(fields.terminal_id(), Some(TERMINAL_ID));
    let pan = fields.pan().expect("masked PAN");
    assert!(pan.is_masked());
    assert_eq!(pan.first6().as_deref(), Some("444433"));
    assert_eq!(pan.last4().as_deref(), Some("1111"));
    assert_eq!(
        fields.card_name().map(|n| n.to_unicode()).as_deref(),
        Some("Visa")
    );
    assert_eq!(fields.card_type(), Some(0x0A));
    assert_eq!(fields.aid().map(|a| a.trimmed().len()), Some(8));
    let time = fields.time().expect("time");
    assert!(time.hour < 24 && time.minute < 60 && time.second < 60);
    let date = fields.date().expect("date");
    assert!((1..=12).contains(&date.month) && (1..=31).contains(&date.day));
    let receipt = fields.receipt_number().expect("receipt number");
    let trace = fields.trace_number().expect("trace number");
    assert_eq!(
        dialogue
            .receipts
            .iter()
            .map(PrintTextBlock::receipt_type)
            .collect::<Vec<_>>(),
        vec![Some(receipt_type::MERCHANT), Some(receipt_type::CUSTOMER)]
    );
    let text = dialogue.receipt_text();
    assert!(text.contains("XXXXXXXXXXXX1111"), "{text}");
    assert!(text.contains(&format!("Receipt {receipt:04}")), "{text}");
    assert!(
        !text.contains("444433"),
        "receipts show only the last 4 digits"
    );
    (receipt, trace)
}

// ---- TCP ----

#[tokio::test]
async fn approved_sale_over_tcp() {
    let sim = Sim::tcp(FAST, &[]).await;
    let mut ecr = sim.connect().await;
    let dialogue = ecr.sale(1000).await;
    let (receipt, trace) = assert_approved(&dialogue, 1000);
    let statuses: Vec<u8> = dialogue.statuses.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [0x0A, 0x01, 0x04]);
    // The counters move on.
    let next = ecr.sale(2500).await;
    let (next_receipt, next_trace) = assert_approved(&next, 2500);
    assert_eq!(next_receipt, receipt + 1);
    assert_eq!(next_trace, trace + 1);
}

#[tokio::test]
async fn issuer_decline_and_shopper_cancel() {
    let sim = Sim::tcp(FAST, &[]).await;
    let mut ecr = sim.connect().await;
    let declined = ecr.sale(1001).await;
    assert!(declined.accepted);
    assert_eq!(declined.completed, None);
    assert_eq!(
        declined.aborted.as_ref().map(|a| a.result_code),
        Some(ResultCode(0x05))
    );
    let fields = &declined.result().fields;
    assert_eq!(fields.result_code(), Some(ResultCode(0x05)));
    assert_eq!(fields.amount().map(Amount::minor_units), Some(1001));
    assert_eq!(fields.receipt_number(), None);
    assert!(declined.receipt_text().contains("DECLINED"));

    let cancelled = ecr.sale(1002).await;
    assert!(cancelled.accepted);
    assert!(cancelled.results.is_empty());
    assert_eq!(
        cancelled.aborted.map(|a| a.result_code),
        Some(ResultCode(0x6C))
    );

    // The decline was the last completed transaction; the cancel is none.
    let repeated = ecr.exchange(RepeatReceipt::new(Some(password()))).await;
    assert_eq!(
        repeated.result().fields.result_code(),
        Some(ResultCode(0x05))
    );
    assert_eq!(
        repeated.result().fields.amount().map(Amount::minor_units),
        Some(1001)
    );
}

#[tokio::test]
async fn the_ecr_aborts_a_running_sale() {
    let sim = Sim::tcp(Duration::from_secs(3), &[]).await;
    let mut ecr = sim.connect().await;
    let started = Instant::now();
    let dialogue = ecr.exchange_aborting(sale(1000), Some(1)).await;
    assert!(started.elapsed() < Duration::from_secs(2), "aborted early");
    assert!(dialogue.results.is_empty());
    assert_eq!(dialogue.completed, None);
    assert_eq!(
        dialogue.aborted.map(|a| a.result_code),
        Some(ResultCode(0x6C))
    );
    // Not a transaction: nothing to repeat.
    let repeated = ecr.exchange(RepeatReceipt::new(Some(password()))).await;
    assert!(repeated.results.is_empty());
    assert_eq!(
        repeated.aborted.map(|a| a.result_code),
        Some(ResultCode(0x83))
    );
}

#[tokio::test]
async fn a_card_already_read_ignores_the_abort() {
    let sim = Sim::tcp(Duration::from_millis(400), &[]).await;
    let mut ecr = sim.connect().await;
    let dialogue = ecr.exchange_aborting(sale(1005), Some(1)).await;
    assert_eq!(dialogue.abort_refusals, vec![ResultCode(0x83)]);
    assert_approved(&dialogue, 1005);
}

#[tokio::test]
async fn repeat_receipt_returns_the_last_sale() {
    let sim = Sim::tcp(FAST, &[]).await;
    let mut ecr = sim.connect().await;
    let sold = ecr.sale(1234).await;
    let (receipt, trace) = assert_approved(&sold, 1234);
    // A fresh connection, as after an ECR restart.
    drop(ecr);
    let mut ecr = sim.connect().await;
    let repeated = ecr.exchange(RepeatReceipt::new(Some(password()))).await;
    assert!(repeated.completed.is_some());
    assert_eq!(
        repeated.result(),
        sold.result(),
        "the same Status-Information"
    );
    assert_eq!(repeated.result().fields.receipt_number(), Some(receipt));
    assert_eq!(repeated.result().fields.trace_number(), Some(trace));
    assert_eq!(repeated.receipts, sold.receipts);
}

#[tokio::test]
async fn reversal_once_then_refused_and_closed_by_end_of_day() {
    let sim = Sim::tcp(FAST, &[]).await;
    let mut ecr = sim.connect().await;
    let (first, first_trace) = assert_approved(&ecr.sale(1000).await, 1000);
    let (second, _) = assert_approved(&ecr.sale(2000).await, 2000);

    let reversed = ecr.exchange(Reversal::of_receipt(password(), first)).await;
    assert!(reversed.completed.is_some(), "{reversed:?}");
    let fields = &reversed.result().fields;
    assert_eq!(fields.result_code(), Some(ResultCode::SUCCESS));
    assert_eq!(fields.amount().map(Amount::minor_units), Some(1000));
    assert_eq!(fields.original_trace_number(), Some(first_trace));
    assert!(fields.trace_number().is_some_and(|t| t > first_trace));
    assert!(fields.receipt_number().is_some_and(|r| r > second));
    assert!(reversed.receipt_text().contains("REVERSAL"));

    let again = ecr.exchange(Reversal::of_receipt(password(), first)).await;
    assert_eq!(again.aborted.map(|a| a.result_code), Some(ResultCode(0xB4)));
    let unknown = ecr.exchange(Reversal::of_receipt(password(), 4321)).await;
    assert_eq!(
        unknown.aborted.map(|a| a.result_code),
        Some(ResultCode(0x83))
    );

    let closed = ecr.exchange(EndOfDay::new(Some(password()))).await;
    assert!(closed.completed.is_some(), "{closed:?}");
    assert_eq!(
        closed.result().fields.result_code(),
        Some(ResultCode::SUCCESS)
    );
    assert_eq!(
        closed.result().fields.amount().map(Amount::minor_units),
        Some(2000),
        "2000 + 1000 - 1000"
    );
    assert_eq!(
        closed
            .receipts
            .first()
            .and_then(PrintTextBlock::receipt_type),
        Some(receipt_type::ADMINISTRATION)
    );
    assert!(closed.receipt_text().contains("Total      20.00"));

    let too_late = ecr.exchange(Reversal::of_receipt(password(), second)).await;
    assert!(too_late.results.is_empty());
    assert_eq!(
        too_late.aborted.map(|a| a.result_code),
        Some(ResultCode(0xB5))
    );
}

#[tokio::test]
async fn a_sale_ending_in_06_cannot_be_reversed_and_refunds_need_the_card() {
    let sim = Sim::tcp(FAST, &[]).await;
    let mut ecr = sim.connect().await;
    let (receipt, _) = assert_approved(&ecr.sale(1006).await, 1006);
    let refused = ecr
        .exchange(Reversal::of_receipt(password(), receipt))
        .await;
    assert!(refused.accepted);
    assert!(refused.results.is_empty());
    assert_eq!(
        refused.aborted.map(|a| a.result_code),
        Some(ResultCode(0x65))
    );
    let refund = firmware_protocols::zvt::messages::Refund::new(Some(password()))
        .with(Bmp::Amount(Amount::from_minor_units(1006).expect("amount")));
    let refused = ecr.exchange(refund).await;
    assert_eq!(
        refused.aborted.map(|a| a.result_code),
        Some(ResultCode(0x65))
    );
}

#[tokio::test]
async fn status_enquiry_and_registration() {
    let sim = Sim::tcp(FAST, &[]).await;
    let mut ecr = sim.connect().await;
    let registration = Registration::new(
        password(),
        config_bits::ECR_PRINTS_PAYMENT_RECEIPTS
            | config_bits::INTERMEDIATE_STATUS
            | config_bits::RECEIPTS_VIA_PRINT_COMMANDS,
        Some(CurrencyCode::EUR),
    );
    let registered = ecr.exchange(registration).await;
    assert!(registered.accepted);
    let completion = registered.completed.expect("06 0F");
    assert_eq!(
        completion.fields().and_then(|f| f.terminal_id()),
        Some(TERMINAL_ID)
    );

    let status = ecr.exchange(StatusEnquiry::new(Some(password()))).await;
    assert_eq!(
        status.result().fields.result_code(),
        Some(ResultCode::SUCCESS)
    );
    assert_eq!(status.result().fields.terminal_id(), Some(TERMINAL_ID));
    assert!(matches!(
        status.completed.map(|c| c.body),
        Some(CompletionBody::SoftwareVersion { .. })
    ));

    // A wrong password is only logged.
    let wrong = Password::from_number(123_456).expect("password");
    let status = ecr.exchange(StatusEnquiry::new(Some(wrong))).await;
    assert!(status.completed.is_some());
}

#[tokio::test]
async fn garbage_is_refused_and_the_terminal_carries_on() {
    let sim = Sim::tcp(FAST, &[]).await;
    let mut raw = TcpStream::connect(sim.address()).await.expect("connect");
    // A Registration too short to decode, then a command nobody knows.
    raw.write_all(&[0x06, 0x00, 0x01, 0x00])
        .await
        .expect("write");
    let mut reply = [0u8; 3];
    raw.read_exact(&mut reply).await.expect("read");
    assert_eq!(reply, [0x84, 0x9A, 0x00]);
    raw.write_all(&[0x06, 0xEE, 0x00]).await.expect("write");
    raw.read_exact(&mut reply).await.expect("read");
    assert_eq!(reply, [0x84, 0x83, 0x00]);
    // An Abort with nothing running.
    raw.write_all(&[0x06, 0xB0, 0x00]).await.expect("write");
    raw.read_exact(&mut reply).await.expect("read");
    assert_eq!(reply, [0x84, 0x83, 0x00]);
    let mut ecr = Ecr::new(ZvtLink::new(raw, Framing::Tcp));
    assert_approved(&ecr.sale(700).await, 700);
}

#[tokio::test]
async fn a_silent_sale_never_completes_and_is_not_a_transaction() {
    let sim = Sim::tcp(FAST, &[]).await;
    let mut ecr = sim.connect().await;
    assert_approved(&ecr.sale(1000).await, 1000);
    ecr.completion_wait = Duration::from_millis(500);
    let silent = ecr.sale(1003).await;
    assert!(silent.accepted);
    assert_eq!(silent.statuses.len(), 1);
    assert!(silent.results.is_empty());
    assert_eq!(silent.timed_out, Some(Timer::Completion));
    // The terminal answers the next command; the silent sale is not the last transaction.
    ecr.completion_wait = COMPLETION_WAIT;
    let repeated = ecr.exchange(RepeatReceipt::new(Some(password()))).await;
    assert_eq!(
        repeated.result().fields.amount().map(Amount::minor_units),
        Some(1000)
    );
}

#[tokio::test]
async fn no_completion_fault_withholds_06_0f_once() {
    let sim = Sim::tcp(FAST, &[FaultKind::NoCompletion]).await;
    let mut ecr = sim.connect().await;
    ecr.completion_wait = Duration::from_millis(500);
    let first = ecr.sale(1000).await;
    assert_eq!(
        first.result().fields.result_code(),
        Some(ResultCode::SUCCESS)
    );
    assert_eq!(first.receipts.len(), 2);
    assert_eq!(first.completed, None);
    assert_eq!(first.timed_out, Some(Timer::Completion));
    ecr.completion_wait = COMPLETION_WAIT;
    assert_approved(&ecr.sale(1100).await, 1100);
}

#[tokio::test]
async fn drop_mid_sale_over_tcp_and_the_sale_is_repeated_after_reconnecting() {
    let sim = Sim::tcp(FAST, &[FaultKind::DropMidSale]).await;
    let mut ecr = sim.connect().await;
    let dropped = ecr.sale(4200).await;
    assert!(dropped.accepted);
    assert_eq!(dropped.statuses.len(), 1);
    assert!(dropped.results.is_empty());
    assert_eq!(dropped.link_error, Some(LinkError::Closed));

    let mut ecr = sim.connect().await;
    let repeated = ecr.exchange(RepeatReceipt::new(Some(password()))).await;
    assert!(repeated.completed.is_some(), "{repeated:?}");
    let fields = &repeated.result().fields;
    assert_eq!(fields.result_code(), Some(ResultCode::SUCCESS));
    assert_eq!(fields.amount().map(Amount::minor_units), Some(4200));
    assert!(fields.receipt_number().is_some());
    // The fault applied once: the next sale goes through.
    assert_approved(&ecr.sale(4300).await, 4300);
}

#[tokio::test]
async fn the_sale_completes_inside_the_terminal_when_the_ecr_goes_away() {
    let sim = Sim::tcp(Duration::from_millis(600), &[]).await;
    let mut ecr = sim.connect().await;
    let command = sale(5100).to_apdu().expect("encode");
    ecr.link.send(&command).await.expect("send");
    let accepted = ecr.link.recv().await.expect("80 00 00");
    assert_eq!(
        accepted.control(),
        firmware_protocols::zvt::ControlField::new(0x80, 0x00)
    );
    let status = ecr.link.recv().await.expect("04 FF");
    assert_eq!(status.control(), IntermediateStatus::CONTROL);
    // The ECR crashes without acknowledging; the terminal goes on with the sale.
    drop(ecr);
    let mut ecr = sim.connect().await;
    let early = ecr.exchange(RepeatReceipt::new(Some(password()))).await;
    assert!(
        early.results.is_empty() && early.aborted.is_some(),
        "nothing to repeat while the sale still runs: {early:?}"
    );
    let busy = ecr.sale(1000).await;
    assert_eq!(busy.refused, Some(ResultCode(0x9C)), "busy with the sale");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let repeated = ecr.exchange(RepeatReceipt::new(Some(password()))).await;
    assert_eq!(
        repeated.result().fields.amount().map(Amount::minor_units),
        Some(5100)
    );
    assert_eq!(
        repeated.result().fields.result_code(),
        Some(ResultCode::SUCCESS)
    );
}

#[tokio::test]
async fn an_abort_from_a_later_connection_stops_a_sale_that_went_on_without_its_ecr() {
    let sim = Sim::tcp(Duration::from_millis(600), &[]).await;
    let mut ecr = sim.connect().await;
    ecr.link
        .send(&sale(5100).to_apdu().expect("encode"))
        .await
        .expect("send");
    ecr.link.recv().await.expect("80 00 00");
    ecr.link.recv().await.expect("04 FF");
    drop(ecr);
    let mut ecr = sim.connect().await;
    let abort = firmware_protocols::zvt::messages::AbortCommand::default();
    let (mut exchange, actions) = EcrExchange::start_with(
        &Message::from(abort),
        ExchangeOptions {
            ends_on_ack: true,
            ..ExchangeOptions::default()
        },
    )
    .expect("abort");
    for action in actions {
        if let Action::Send(apdu) = action {
            ecr.link.send(&apdu).await.expect("send");
        }
    }
    let answer = ecr.link.recv().await.expect("answer");
    let events = exchange.on_apdu(&answer);
    assert!(
        events.contains(&Action::Event(ExchangeEvent::Accepted)),
        "{events:?}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let repeated = ecr.exchange(RepeatReceipt::new(Some(password()))).await;
    assert!(
        repeated.results.is_empty(),
        "aborted: never a transaction: {repeated:?}"
    );
}

#[tokio::test]
async fn a_refused_result_is_reversed_by_the_terminal() {
    let sim = Sim::tcp(FAST, &[]).await;
    let mut ecr = sim.connect().await;
    ecr.reject_results_with = Some(ResultCode(0x66));
    let refused = ecr.sale(1000).await;
    let receipt = refused
        .result()
        .fields
        .receipt_number()
        .expect("receipt number");
    assert_eq!(refused.statuses.last().map(|s| s.status), Some(0x05));
    assert_eq!(
        refused.aborted.map(|a| a.result_code),
        Some(ResultCode(0x66))
    );
    ecr.reject_results_with = None;
    let again = ecr
        .exchange(Reversal::of_receipt(password(), receipt))
        .await;
    assert_eq!(again.aborted.map(|a| a.result_code), Some(ResultCode(0xB4)));
}

#[tokio::test]
async fn slow_sales_and_the_slow_fault() {
    let mut options = SimulatorOptions::new(Endpoint::Tcp("127.0.0.1:0".parse().expect("address")));
    options.approve_after = FAST;
    options.slow_sale = Duration::from_millis(600);
    options.slow_delay = Duration::from_millis(100);
    options.faults = vec![FaultKind::Slow];
    let sim = Sim::start(options).await;
    let mut ecr = sim.connect().await;
    // The first sale: 100 ms before each of its 8 messages.
    let started = Instant::now();
    assert_approved(&ecr.sale(1000).await, 1000);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    // A `.04` sale takes the slow-sale time (20 s on the command line).
    let started = Instant::now();
    assert_approved(&ecr.sale(1004).await, 1004);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    // The slow fault applied once.
    let started = Instant::now();
    assert_approved(&ecr.sale(1000).await, 1000);
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

// ---- pty (serial framing) ----

async fn start_pty(dir: &tempfile::TempDir, faults: &[FaultKind]) -> (Sim, std::path::PathBuf) {
    let path = dir.path().join("zvt-pt");
    let mut options = SimulatorOptions::new(Endpoint::Pty(path.clone()));
    options.approve_after = FAST;
    options.faults = faults.to_vec();
    options.replug_delay = Duration::from_millis(200);
    let sim = Sim::start(options).await;
    assert_eq!(sim.line, path.display().to_string());
    (sim, path)
}

fn open_serial(path: &std::path::Path) -> Ecr<tokio_serial::SerialStream> {
    use tokio_serial::SerialPortBuilderExt;
    let target = std::fs::read_link(path).expect("a symlink");
    assert!(target.to_string_lossy().starts_with("/dev/"), "{target:?}");
    let port = tokio_serial::new(path.to_string_lossy(), 9600)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::Two)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .expect("open the pty");
    Ecr::new(ZvtLink::new(port, Framing::Serial))
}

#[tokio::test]
async fn approved_sale_over_a_pty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sim, path) = start_pty(&dir, &[]).await;
    let mut ecr = open_serial(&path);
    assert_approved(&ecr.sale(1000).await, 1000);
    let status = ecr.exchange(StatusEnquiry::new(Some(password()))).await;
    assert!(status.completed.is_some());
    // The ECR closes and reopens the line; the terminal is still there.
    drop(ecr);
    let mut ecr = open_serial(&path);
    let repeated = ecr.exchange(RepeatReceipt::new(Some(password()))).await;
    assert_eq!(
        repeated.result().fields.amount().map(Amount::minor_units),
        Some(1000)
    );
    drop(sim);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "the symlink is removed when the simulator stops"
    );
}

#[tokio::test]
async fn nak_and_bad_crc_faults_still_end_in_a_completed_sale() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, path) = start_pty(&dir, &[FaultKind::NakNext, FaultKind::BadCrc]).await;
    let mut ecr = open_serial(&path);
    assert_approved(&ecr.sale(1000).await, 1000);
}

#[tokio::test]
async fn nak_fault_alone_and_bad_crc_fault_alone() {
    for fault in [FaultKind::NakNext, FaultKind::BadCrc] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_sim, path) = start_pty(&dir, &[fault]).await;
        let mut ecr = open_serial(&path);
        assert_approved(&ecr.sale(1000).await, 1000);
    }
}

#[tokio::test]
async fn drop_mid_sale_on_a_pty_replugs_the_line_behind_the_symlink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, path) = start_pty(&dir, &[FaultKind::DropMidSale]).await;
    use std::os::unix::fs::MetadataExt;
    let symlink_inode = |path: &std::path::Path| std::fs::symlink_metadata(path).map(|m| m.ino());
    let before = symlink_inode(&path).expect("symlink");
    let mut ecr = open_serial(&path);
    let dropped = ecr.sale(4200).await;
    assert!(dropped.accepted);
    assert!(dropped.results.is_empty());
    assert!(dropped.link_error.is_some(), "{dropped:?}");
    drop(ecr);
    // Plugged back in after the replug delay, behind the same path (a new symlink; the
    // kernel may well hand out the same /dev/pts number again).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if symlink_inode(&path).is_ok_and(|inode| inode != before) {
            break;
        }
        assert!(Instant::now() < deadline, "the line comes back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ecr = open_serial(&path);
    let repeated = ecr.exchange(RepeatReceipt::new(Some(password()))).await;
    assert_eq!(
        repeated.result().fields.amount().map(Amount::minor_units),
        Some(4200)
    );
    assert_eq!(
        repeated.result().fields.result_code(),
        Some(ResultCode::SUCCESS)
    );
}

// ---- options ----

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: SimulatorArgs,
}

#[test]
fn command_line_options() {
    let cli = Cli::try_parse_from([
        "zvt",
        "--listen",
        "tcp:127.0.0.1:0",
        "--approve-after-ms",
        "50",
        "--fault",
        "drop-mid-sale",
        "--fault",
        "nak-next",
        "--password",
        "123456",
    ])
    .expect("parse");
    let options = SimulatorOptions::from_args(&cli.args).expect("options");
    assert_eq!(
        options.endpoint,
        Endpoint::Tcp("127.0.0.1:0".parse().expect("address"))
    );
    assert_eq!(options.approve_after, Duration::from_millis(50));
    assert_eq!(
        options.faults,
        vec![FaultKind::DropMidSale, FaultKind::NakNext]
    );
    assert_eq!(options.password.number(), Some(123_456));

    let cli = Cli::try_parse_from(["zvt", "--pty"]).expect("parse");
    let options = SimulatorOptions::from_args(&cli.args).expect("options");
    let Endpoint::Pty(path) = options.endpoint else {
        panic!("a pty")
    };
    assert!(
        path.to_string_lossy()
            .ends_with(&format!("posbridge-zvt-{}", std::process::id()))
    );
    assert_eq!(options.approve_after, Duration::from_millis(1500));
    let cli = Cli::try_parse_from(["zvt", "--pty", "/tmp/x"]).expect("parse");
    assert_eq!(cli.args.pty, Some(Some("/tmp/x".into())));

    assert!(
        Cli::try_parse_from(["zvt"]).is_err(),
        "an endpoint is required"
    );
    assert!(
        Cli::try_parse_from(["zvt", "--listen", "tcp:127.0.0.1:0", "--pty"]).is_err(),
        "only one endpoint"
    );
    for bad in [
        ["zvt", "--listen", "127.0.0.1:1", "--password", "000000"],
        ["zvt", "--listen", "tcp:127.0.0.1:1", "--password", "12ab56"],
        ["zvt", "--listen", "tcp:localhost:1", "--password", "000000"],
    ] {
        let cli = Cli::try_parse_from(bad).expect("parse");
        assert!(SimulatorOptions::from_args(&cli.args).is_err(), "{bad:?}");
    }
}
