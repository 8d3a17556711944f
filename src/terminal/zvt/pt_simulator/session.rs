//! One ECR connection (or one stretch of a serial line): the PT side of the ZVT dialogues.

use std::time::Duration;

use firmware_protocols::zvt::messages::{
    Abort, AbortCommand, Authorization, Completion, CompletionBody, EndOfDay, IntermediateStatus,
    NegativeAck, Refund, Registration, RepeatReceipt, Reversal, StatusEnquiry, StatusInformation,
};
use firmware_protocols::zvt::{
    Amount, Apdu, Bmp, BmpList, CurrencyCode, Message, Password, ResultCode, Text,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::super::link::{LinkError, ZvtLink};
use super::terminal::{Orphan, OrphanAbort, Plan, Record, Terminal, codes};

/// Intermediate status codes (04 FF), from the codec's status table.
mod status {
    /// "Insert card"
    pub const INSERT_CARD: u8 = 0x0A;
    /// "Please watch PIN pad"
    pub const WATCH_PIN_PAD: u8 = 0x01;
    /// "PT is waiting for response from FEP"
    pub const WAITING_FOR_HOST: u8 = 0x04;
    /// "PT is sending auto-reversal"
    pub const AUTO_REVERSAL: u8 = 0x05;
    /// "Please wait"
    pub const PLEASE_WAIT: u8 = 0x0E;
}

/// The software version reported in the Status Enquiry completion.
const SOFTWARE_VERSION: &str = "posbridge-zvt-sim 1.0";
/// How many frames in a row the `nak-storm` fault refuses: more than the ECR sends one.
const NAK_STORM: usize = super::super::link::MAX_SENDS + 2;

#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub approve_after: Duration,
    pub slow_delay: Duration,
    pub slow_sale: Duration,
    pub late_approval: Duration,
    pub ack_timeout: Duration,
    pub password: Password,
}

/// Why a session ended.
#[derive(Debug)]
pub(super) enum SessionEnd {
    /// The `drop-mid-sale` fault: the caller drops the line.
    DropLine,
    /// The line failed, or the ECR stopped acknowledging (the dialogue is given up).
    Link(LinkError),
}

/// Why a dialogue stopped early.
#[derive(Debug)]
enum Stop {
    DropLine,
    Link(LinkError),
}

impl From<LinkError> for Stop {
    fn from(error: LinkError) -> Self {
        Self::Link(error)
    }
}

/// How an `06 B0` from the ECR is treated right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AbortPolicy {
    /// A sale that can still be aborted: `80 00 00`, then the sale ends with `06 1E 6C`.
    Accept,
    /// `84 83 00` (no sale, too late, or a `.05` sale).
    Refuse,
    /// No answer at all (a silent `.03` sale).
    Ignore,
}

/// The ECR's answer to a PT message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirmation {
    Positive,
    Negative(ResultCode),
}

pub(super) struct Session<'a, S> {
    link: &'a mut ZvtLink<S>,
    terminal: &'a mut Terminal,
    timing: Timing,
    abort_policy: AbortPolicy,
    abort_requested: bool,
    slow: bool,
    /// A command that arrived while a silent sale was hanging, processed next.
    next_command: Option<Apdu>,
    /// A sale has started and its outcome is not journaled yet.
    sale_open: bool,
}

#[derive(Debug, Clone, Copy)]
struct SaleInProgress {
    plan: Plan,
    amount: Amount,
    currency: CurrencyCode,
    no_completion: bool,
    /// How long the sale takes, from `started`.
    total: Duration,
    started: Instant,
}

/// "Please wait": the terminal is busy with a sale.
const BUSY: ResultCode = ResultCode(0x9C);

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
    pub(super) fn new(
        link: &'a mut ZvtLink<S>,
        terminal: &'a mut Terminal,
        timing: Timing,
    ) -> Self {
        Self {
            link,
            terminal,
            timing,
            abort_policy: AbortPolicy::Refuse,
            abort_requested: false,
            slow: false,
            next_command: None,
            sale_open: false,
        }
    }

    /// Serves commands until the line fails.
    pub(super) async fn run(mut self) -> SessionEnd {
        loop {
            let apdu = match self.next_command.take() {
                Some(apdu) => apdu,
                None => match self.link.recv().await {
                    Ok(apdu) => apdu,
                    Err(LinkError::Garbage(error)) => {
                        tracing::warn!(%error, "ZVT simulator: garbage from the ECR");
                        if let Err(stop) = self.send(nack(codes::PROTOCOL_ERROR)).await {
                            return stop.into_end();
                        }
                        continue;
                    }
                    Err(error) => return SessionEnd::Link(error),
                },
            };
            self.abort_policy = AbortPolicy::Refuse;
            self.abort_requested = false;
            self.slow = false;
            match self.command(apdu).await {
                Ok(()) => {}
                Err(Stop::DropLine) => return SessionEnd::DropLine,
                Err(Stop::Link(
                    error @ (LinkError::Closed | LinkError::Io(_) | LinkError::NotAcknowledged),
                )) => return SessionEnd::Link(error),
                Err(Stop::Link(error)) => {
                    tracing::warn!(%error, "ZVT simulator: dialogue given up");
                }
            }
            self.slow = false;
            self.abort_policy = AbortPolicy::Refuse;
        }
    }

    async fn command(&mut self, apdu: Apdu) -> Result<(), Stop> {
        let control = apdu.control();
        // What a sale left by its ECR did meanwhile.
        self.terminal.catch_up(Instant::now());
        let message = match Message::decode(&apdu) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, ?control, "ZVT simulator: undecodable command");
                return self.send(nack(codes::PROTOCOL_ERROR)).await;
            }
        };
        if !matches!(message, Message::AbortCommand(_)) {
            self.terminal.end_silent_orphan();
        }
        match message {
            Message::Registration(registration) => self.registration(registration).await,
            Message::Authorization(authorization) => self.sale(authorization).await,
            Message::StatusEnquiry(enquiry) => self.status_enquiry(enquiry).await,
            Message::RepeatReceipt(repeat) => self.repeat_receipt(repeat).await,
            Message::Reversal(reversal) => self.reversal(reversal).await,
            Message::Refund(refund) => self.refund(refund).await,
            Message::EndOfDay(end_of_day) => self.end_of_day(end_of_day).await,
            Message::AbortCommand(_) => match self.terminal.abort_orphan() {
                OrphanAbort::Aborted => self.send(Message::ack()).await,
                OrphanAbort::Ignored => {
                    tracing::info!("ZVT simulator: 06 B0 during a silent sale, ignored");
                    Ok(())
                }
                OrphanAbort::Refused => {
                    tracing::info!("ZVT simulator: 06 B0 refused: the card was read");
                    self.send(nack(codes::FUNCTION_NOT_POSSIBLE)).await
                }
                OrphanAbort::NoSale => {
                    tracing::info!("ZVT simulator: 06 B0 with no transaction running, refused");
                    self.send(nack(codes::FUNCTION_NOT_POSSIBLE)).await
                }
            },
            Message::PositiveAck(_) | Message::NegativeAck(_) => {
                tracing::debug!(?control, "ZVT simulator: stray acknowledgement ignored");
                Ok(())
            }
            other => {
                tracing::info!(control = ?other.control(), "ZVT simulator: unsupported command, refused");
                self.send(nack(codes::FUNCTION_NOT_POSSIBLE)).await
            }
        }
    }

    fn check_password(&self, command: &str, password: Option<Password>) {
        if let Some(password) = password
            && password != self.timing.password
        {
            tracing::warn!(command, "ZVT simulator: wrong password (ignored)");
        }
    }

    // ---- the dialogues ----

    async fn registration(&mut self, registration: Registration) -> Result<(), Stop> {
        self.check_password("registration", Some(registration.password));
        tracing::info!(
            config = format_args!("{:02X}", registration.config),
            currency = ?registration.currency.map(CurrencyCode::code),
            "ZVT simulator: registration"
        );
        self.send(Message::ack()).await?;
        let fields = BmpList::new()
            .with(Bmp::PaymentType(0x00))
            .with(Bmp::TerminalId(self.terminal.terminal_id))
            .with(Bmp::Currency(
                registration.currency.unwrap_or(CurrencyCode::EUR),
            ));
        self.send_confirmed(Completion {
            body: CompletionBody::Fields(fields),
        })
        .await
        .map(drop)
    }

    async fn status_enquiry(&mut self, enquiry: StatusEnquiry) -> Result<(), Stop> {
        self.check_password("status enquiry", enquiry.password);
        tracing::info!("ZVT simulator: status enquiry");
        self.send(Message::ack()).await?;
        let status = StatusInformation::default()
            .with(Bmp::ResultCode(ResultCode::SUCCESS))
            .with(Bmp::TerminalId(self.terminal.terminal_id));
        self.send_confirmed(status).await?;
        self.send_confirmed(Completion {
            body: CompletionBody::SoftwareVersion {
                version: Text::from_bytes(SOFTWARE_VERSION.as_bytes()),
                terminal_status: 0x00,
                fields: BmpList::new().with(Bmp::TerminalId(self.terminal.terminal_id)),
            },
        })
        .await
        .map(drop)
    }

    async fn repeat_receipt(&mut self, repeat: RepeatReceipt) -> Result<(), Stop> {
        self.check_password("repeat receipt", repeat.password);
        self.send(Message::ack()).await?;
        let Some(record) = self.terminal.last_completed().cloned() else {
            tracing::info!("ZVT simulator: repeat receipt, but no transaction yet");
            return self
                .send_confirmed(Abort::new(codes::FUNCTION_NOT_POSSIBLE))
                .await
                .map(drop);
        };
        tracing::info!(
            trace = record.trace,
            receipt = ?record.receipt_number,
            "ZVT simulator: repeating the last transaction"
        );
        self.send_result_and_receipts(&record).await?;
        self.send_confirmed(Completion::default()).await.map(drop)
    }

    async fn reversal(&mut self, reversal: Reversal) -> Result<(), Stop> {
        self.check_password("reversal", reversal.password);
        self.send(Message::ack()).await?;
        let Some(receipt) = reversal.fields.receipt_number() else {
            tracing::info!("ZVT simulator: reversal without a receipt number, refused");
            return self
                .send_confirmed(Abort::new(codes::FUNCTION_NOT_POSSIBLE))
                .await
                .map(drop);
        };
        match self.terminal.reverse(receipt) {
            Ok(record) => {
                tracing::info!(receipt, trace = record.trace, "ZVT simulator: reversed");
                self.send_result_and_receipts(&record).await?;
                self.send_confirmed(Completion::default()).await.map(drop)
            }
            Err(refusal) => {
                tracing::info!(receipt, ?refusal, "ZVT simulator: reversal refused");
                self.send_confirmed(Abort::new(refusal.code()))
                    .await
                    .map(drop)
            }
        }
    }

    async fn refund(&mut self, refund: Refund) -> Result<(), Stop> {
        self.check_password("refund", refund.password);
        tracing::info!("ZVT simulator: refund refused (it needs the card)");
        self.send(Message::ack()).await?;
        self.send_confirmed(IntermediateStatus::new(status::INSERT_CARD))
            .await?;
        self.send_confirmed(Abort::new(codes::NEEDS_CARD))
            .await
            .map(drop)
    }

    async fn end_of_day(&mut self, end_of_day: EndOfDay) -> Result<(), Stop> {
        self.check_password("end of day", end_of_day.password);
        self.send(Message::ack()).await?;
        self.send_confirmed(IntermediateStatus::new(status::PLEASE_WAIT))
            .await?;
        let (totals, fields, report) = self.terminal.end_of_day();
        tracing::info!(?totals, "ZVT simulator: end of day, batch closed");
        self.send_confirmed(StatusInformation::new(fields)).await?;
        self.send_confirmed(report).await?;
        self.send_confirmed(Completion::default()).await.map(drop)
    }

    async fn sale(&mut self, authorization: Authorization) -> Result<(), Stop> {
        let Some(amount) = authorization.fields.amount() else {
            tracing::info!("ZVT simulator: authorization without an amount, refused");
            return self.send(nack(codes::FUNCTION_NOT_POSSIBLE)).await;
        };
        if self.terminal.orphan_running() {
            tracing::info!("ZVT simulator: a sale is still running without its ECR: busy");
            return self.send(nack(BUSY)).await;
        }
        let currency = authorization.fields.currency().unwrap_or(CurrencyCode::EUR);
        let faults = self.terminal.take_sale_faults();
        let plan = if faults.late_approval {
            Plan::ApproveIgnoringAbort
        } else {
            Plan::for_amount(amount)
        };
        tracing::info!(
            amount = amount.minor_units(),
            currency = currency.code(),
            payment_type = ?authorization.fields.payment_type(),
            ?plan,
            ?faults,
            "ZVT simulator: sale"
        );
        if faults.slow {
            tracing::warn!(
                delay_ms = self.timing.slow_delay.as_millis(),
                "ZVT simulator: fault slow, waiting before each message of this sale"
            );
        }
        if faults.late_approval {
            tracing::warn!(
                after_ms = self.timing.late_approval.as_millis(),
                "ZVT simulator: fault late-approval, approving late whatever the ECR does"
            );
        }
        self.slow = faults.slow;
        self.link.faults.nak_next |= faults.nak_next;
        self.link.faults.bad_crc_next |= faults.bad_crc;
        self.link.faults.garbage_next |= faults.garbage;
        if faults.nak_storm {
            self.link.faults.nak_storm = NAK_STORM;
        }
        self.abort_policy = match plan {
            Plan::Silent => AbortPolicy::Ignore,
            _ if plan.honours_abort() => AbortPolicy::Accept,
            _ => AbortPolicy::Refuse,
        };
        let total = if faults.late_approval {
            self.timing.late_approval
        } else if plan == Plan::ApproveSlowly {
            self.timing.slow_sale
        } else {
            self.timing.approve_after
        };
        let sale = SaleInProgress {
            plan,
            amount,
            currency,
            no_completion: faults.no_completion,
            total,
            started: Instant::now(),
        };
        self.sale_open = plan != Plan::Silent;
        let result = self.sale_dialogue(&sale, faults.drop_mid_sale).await;
        if self.sale_open {
            // The line went away (or the ECR stopped answering) before the outcome was
            // decided: like a real terminal, it goes on with the sale and completes it on time.
            self.sale_open = false;
            if self.abort_requested {
                self.terminal.record_aborted(amount, currency);
            } else {
                self.terminal.adopt_orphan(Orphan {
                    plan,
                    amount,
                    currency,
                    completes_at: Some(sale.started + sale.total),
                    honours_abort: plan.honours_abort(),
                });
            }
        } else if plan == Plan::Silent && result.is_err() {
            // A silent sale whose ECR went away stays silent until the next command.
            self.terminal.adopt_orphan(Orphan {
                plan,
                amount,
                currency,
                completes_at: None,
                honours_abort: false,
            });
        }
        result
    }

    /// Journals the outcome of a sale the ECR is no longer listening to.
    fn finish_offline(&mut self, sale: &SaleInProgress) {
        match sale.plan {
            Plan::Silent => {}
            Plan::ShopperCancels => self.terminal.record_aborted(sale.amount, sale.currency),
            plan => {
                let record = self
                    .terminal
                    .complete_sale(plan, sale.amount, sale.currency);
                tracing::info!(
                    approved = plan.approves(),
                    trace = record.trace,
                    receipt = ?record.receipt_number,
                    "ZVT simulator: the sale completes while nobody listens"
                );
            }
        }
    }

    async fn sale_dialogue(
        &mut self,
        sale: &SaleInProgress,
        drop_mid_sale: bool,
    ) -> Result<(), Stop> {
        let SaleInProgress {
            plan,
            amount,
            currency,
            no_completion,
            total,
            ..
        } = *sale;
        self.send(Message::ack()).await?;
        self.send_confirmed(IntermediateStatus::new(status::INSERT_CARD))
            .await?;
        if drop_mid_sale {
            // The card was read; the terminal finishes the sale while the line is down.
            self.sale_open = false;
            self.finish_offline(sale);
            return Err(Stop::DropLine);
        }
        if plan == Plan::Silent {
            tracing::info!("ZVT simulator: going silent for this sale");
            return self.stay_silent().await;
        }
        let half = total / 2;
        if self.wait_watching_abort(half).await? {
            return self.abort_sale(amount, currency).await;
        }
        self.send_confirmed(IntermediateStatus::new(status::WATCH_PIN_PAD))
            .await?;
        if self.wait_watching_abort(total.saturating_sub(half)).await? {
            return self.abort_sale(amount, currency).await;
        }
        self.send_confirmed(IntermediateStatus::new(status::WAITING_FOR_HOST))
            .await?;
        if self.abort_requested {
            return self.abort_sale(amount, currency).await;
        }
        // From here on the outcome is decided.
        self.abort_policy = AbortPolicy::Refuse;
        self.sale_open = false;
        if plan == Plan::ShopperCancels {
            tracing::info!("ZVT simulator: the shopper cancels on the terminal");
            self.terminal.record_aborted(amount, currency);
            return self
                .send_confirmed(Abort::new(codes::ABORTED))
                .await
                .map(drop);
        }
        let record = self.terminal.complete_sale(plan, amount, currency);
        let approved = plan.approves();
        tracing::info!(
            approved,
            trace = record.trace,
            receipt = ?record.receipt_number,
            "ZVT simulator: sale finished"
        );
        let confirmation = self
            .send_confirmed(StatusInformation::new(record.status.clone()))
            .await?;
        if let Confirmation::Negative(code) = confirmation {
            tracing::warn!(
                code = format_args!("{:02X}", code.0),
                "ZVT simulator: the ECR refused the result; auto-reversal"
            );
            self.terminal.auto_reverse(record.trace);
            self.send_confirmed(IntermediateStatus::new(status::AUTO_REVERSAL))
                .await?;
            return self.send_confirmed(Abort::new(code)).await.map(drop);
        }
        for receipt in record.receipts.clone() {
            self.send_confirmed(receipt).await?;
        }
        if !approved {
            let code = record
                .status
                .result_code()
                .unwrap_or(codes::DECLINED_BY_ISSUER);
            return self.send_confirmed(Abort::new(code)).await.map(drop);
        }
        if no_completion {
            tracing::warn!("ZVT simulator: fault no-completion, not sending 06 0F");
            return Ok(());
        }
        self.send_confirmed(Completion::default()).await.map(drop)
    }

    async fn abort_sale(&mut self, amount: Amount, currency: CurrencyCode) -> Result<(), Stop> {
        tracing::info!("ZVT simulator: sale aborted by the ECR");
        self.abort_policy = AbortPolicy::Refuse;
        self.abort_requested = false;
        self.sale_open = false;
        self.terminal.record_aborted(amount, currency);
        self.send_confirmed(Abort::new(codes::ABORTED))
            .await
            .map(drop)
    }

    /// A `.03` sale: nothing more is ever sent for it. Acknowledgements and aborts are
    /// swallowed; the next real command ends the silence and is served.
    async fn stay_silent(&mut self) -> Result<(), Stop> {
        loop {
            let apdu = match self.link.recv().await {
                Ok(apdu) => apdu,
                Err(LinkError::Garbage(_)) => continue,
                Err(error) => return Err(Stop::Link(error)),
            };
            match Message::decode(&apdu) {
                Ok(
                    Message::AbortCommand(_) | Message::PositiveAck(_) | Message::NegativeAck(_),
                ) => {
                    tracing::debug!("ZVT simulator: silent sale, ignoring the ECR");
                }
                _ => {
                    tracing::info!("ZVT simulator: a new command ends the silent sale");
                    self.next_command = Some(apdu);
                    return Ok(());
                }
            }
        }
    }

    // ---- sending and acknowledgements ----

    async fn send_result_and_receipts(&mut self, record: &Record) -> Result<(), Stop> {
        self.send_confirmed(StatusInformation::new(record.status.clone()))
            .await?;
        for receipt in &record.receipts {
            self.send_confirmed(receipt.clone()).await?;
        }
        Ok(())
    }

    /// Sends one message (after the `slow` delay, if that fault is on).
    async fn send(&mut self, message: impl Into<Message>) -> Result<(), Stop> {
        let message = message.into();
        if self.slow {
            tokio::time::sleep(self.timing.slow_delay).await;
        }
        let apdu = message.to_apdu().map_err(|error| {
            tracing::error!(%error, "ZVT simulator: cannot encode a message");
            Stop::Link(LinkError::Io(format!("encoding: {error}")))
        })?;
        self.link.send(&apdu).await?;
        Ok(())
    }

    /// Sends a message while master and waits for the ECR's `80 00 00` (or `84 xx`).
    async fn send_confirmed(&mut self, message: impl Into<Message>) -> Result<Confirmation, Stop> {
        self.send(message).await?;
        let deadline = Instant::now() + self.timing.ack_timeout;
        loop {
            let received = tokio::time::timeout_at(deadline, self.link.recv()).await;
            let apdu = match received {
                Err(_) => {
                    tracing::warn!("ZVT simulator: the ECR did not acknowledge");
                    return Err(Stop::Link(LinkError::NotAcknowledged));
                }
                Ok(Err(LinkError::Garbage(error))) => {
                    tracing::warn!(%error, "ZVT simulator: garbage while waiting for an ack");
                    continue;
                }
                Ok(Err(error)) => return Err(Stop::Link(error)),
                Ok(Ok(apdu)) => apdu,
            };
            match Message::decode(&apdu) {
                Ok(Message::PositiveAck(_)) => return Ok(Confirmation::Positive),
                Ok(Message::NegativeAck(nack)) => return Ok(Confirmation::Negative(nack.code)),
                Ok(Message::AbortCommand(command)) => self.on_abort_command(command).await?,
                _ => tracing::warn!(
                    control = ?apdu.control(),
                    "ZVT simulator: ignoring a message while waiting for an ack"
                ),
            }
        }
    }

    /// Waits `duration` of the sale while listening for an `06 B0`; true if the sale is to be
    /// aborted.
    async fn wait_watching_abort(&mut self, duration: Duration) -> Result<bool, Stop> {
        let deadline = Instant::now() + duration;
        while !self.abort_requested {
            let received = tokio::select! {
                () = tokio::time::sleep_until(deadline) => return Ok(false),
                received = self.link.recv() => received,
            };
            let apdu = match received {
                Ok(apdu) => apdu,
                Err(LinkError::Garbage(_)) => continue,
                Err(error) => return Err(Stop::Link(error)),
            };
            match Message::decode(&apdu) {
                Ok(Message::AbortCommand(command)) => self.on_abort_command(command).await?,
                _ => tracing::warn!(
                    control = ?apdu.control(),
                    "ZVT simulator: ignoring a message during a sale"
                ),
            }
        }
        Ok(true)
    }

    async fn on_abort_command(&mut self, _command: AbortCommand) -> Result<(), Stop> {
        match self.abort_policy {
            AbortPolicy::Accept => {
                tracing::info!("ZVT simulator: 06 B0 accepted");
                self.abort_requested = true;
                self.send(Message::ack()).await
            }
            AbortPolicy::Refuse => {
                tracing::info!("ZVT simulator: 06 B0 refused");
                self.send(nack(codes::FUNCTION_NOT_POSSIBLE)).await
            }
            AbortPolicy::Ignore => Ok(()),
        }
    }
}

impl Stop {
    fn into_end(self) -> SessionEnd {
        match self {
            Self::DropLine => SessionEnd::DropLine,
            Self::Link(error) => SessionEnd::Link(error),
        }
    }
}

fn nack(code: ResultCode) -> Message {
    Message::NegativeAck(NegativeAck::new(code))
}
