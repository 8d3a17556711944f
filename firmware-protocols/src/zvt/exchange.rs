//! ECR-side dialogue state machine (sans-I/O).
//!
//! The ECR sends a command; the PT answers `80 00 00` (accepted) or
//! `84 xx` (rejected), becomes master and streams `04 FF` intermediate
//! status, `04 0F` Status-Information, `06 D1` / `06 D3` receipts — each of
//! which the ECR acknowledges with `80 00 00` — and ends with `06 0F`
//! Completion or `06 1E` Abort.
//!
//! The machine never reads a clock: it asks the caller to start and stop
//! [`Timer`]s and the caller reports expiry with [`EcrExchange::on_timeout`].
//!
//! Actions must be carried out in the order returned. An event always comes
//! before the acknowledgement that answers it, so persisting a
//! Status-Information while handling its event satisfies "write the result
//! before acknowledging it". For full control, enable
//! [`ExchangeOptions::manual_status_confirmation`] and answer with
//! [`EcrExchange::accept_status_information`] or
//! [`EcrExchange::reject_status_information`] (a negative answer makes the
//! PT reverse the payment).

use std::time::Duration;

use crate::zvt::apdu::Apdu;
use crate::zvt::bmp::ResultCode;
use crate::zvt::error::{EncodeError, MessageError};
use crate::zvt::messages::{
    Abort, AbortCommand, Completion, IntermediateStatus, Message, NegativeAck, PrintLine,
    PrintTextBlock, StatusInformation,
};

/// Suggested T3 (command → `80 00` / `84 xx`), as used by ecrterm.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Suggested T4 (PT silence while it is master), as used by ecrterm and
/// Portalum.
pub const DEFAULT_COMPLETION_TIMEOUT: Duration = Duration::from_secs(180);

/// Timers the caller runs for the machine. At most one runs at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// T3: waiting for the PT to accept or reject the command.
    Ack,
    /// T4: waiting for the PT's next message while it is master. Restarted
    /// on every PT message.
    Completion,
}

impl Timer {
    pub fn default_duration(self) -> Duration {
        match self {
            Self::Ack => DEFAULT_ACK_TIMEOUT,
            Self::Completion => DEFAULT_COMPLETION_TIMEOUT,
        }
    }
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this APDU to the PT.
    Send(Apdu),
    /// Report this to the application.
    Event(ExchangeEvent),
    /// Start `timer`, replacing any running timer.
    StartTimer(Timer),
    /// Stop the running timer.
    StopTimer,
}

/// What happened in the dialogue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExchangeEvent {
    /// The PT accepted the command (`80 00`).
    Accepted,
    /// The PT rejected the command (`84 xx`); the exchange is over. While
    /// the PT is master this reports a refused ECR abort request instead and
    /// the exchange continues.
    NegativeAck(ResultCode),
    IntermediateStatus(IntermediateStatus),
    /// The transaction result. Persist it before the following ack is sent.
    StatusInformation(StatusInformation),
    PrintLine(PrintLine),
    PrintTextBlock(PrintTextBlock),
    /// `06 0F`; the exchange is over.
    Completed(Completion),
    /// `06 1E` with its result code; the exchange is over.
    Aborted(Abort),
    /// The running timer expired; the exchange is over with unknown outcome.
    TimedOut(Timer),
    /// A message that has no place here. While the PT is master it is
    /// answered with `84 83 00` (function not possible).
    Unexpected(Message),
    /// An APDU of a known type whose data could not be decoded.
    Undecodable(MessageError),
}

/// Options for an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExchangeOptions {
    /// The exchange ends when the PT accepts the command (no master phase).
    pub ends_on_ack: bool,
    /// Do not acknowledge Status-Information automatically; wait for
    /// [`EcrExchange::accept_status_information`] or
    /// [`EcrExchange::reject_status_information`].
    pub manual_status_confirmation: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingAck,
    PtIsMaster { status_unconfirmed: bool },
    Finished,
}

/// One ECR-initiated exchange.
#[derive(Debug, Clone)]
pub struct EcrExchange {
    state: State,
    options: ExchangeOptions,
    timer: Option<Timer>,
}

/// Result code used to refuse messages the ECR does not handle.
const FUNCTION_NOT_POSSIBLE: ResultCode = ResultCode(0x83);
/// Result code answering an undecodable message.
const PROTOCOL_ERROR: ResultCode = ResultCode(0x9A);

impl EcrExchange {
    /// Starts an exchange by sending `command` with default options.
    pub fn start(command: &Message) -> Result<(Self, Vec<Action>), EncodeError> {
        Self::start_with(command, ExchangeOptions::default())
    }

    /// Starts an exchange by sending `command`.
    pub fn start_with(
        command: &Message,
        options: ExchangeOptions,
    ) -> Result<(Self, Vec<Action>), EncodeError> {
        let apdu = command.to_apdu()?;
        let exchange = Self {
            state: State::AwaitingAck,
            options,
            timer: Some(Timer::Ack),
        };
        Ok((
            exchange,
            vec![Action::Send(apdu), Action::StartTimer(Timer::Ack)],
        ))
    }

    /// Whether the exchange has ended.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The timer that should be running, if any.
    pub fn active_timer(&self) -> Option<Timer> {
        self.timer
    }

    /// Whether a Status-Information awaits the caller's confirmation.
    pub fn status_confirmation_pending(&self) -> bool {
        matches!(
            self.state,
            State::PtIsMaster {
                status_unconfirmed: true
            }
        )
    }

    /// Handles one APDU received from the PT.
    pub fn on_apdu(&mut self, apdu: &Apdu) -> Vec<Action> {
        if self.state == State::Finished {
            return Vec::new();
        }
        let message = match Message::decode(apdu) {
            Ok(message) => message,
            Err(error) => return self.on_undecodable(error),
        };
        match self.state {
            State::AwaitingAck => self.on_reply_to_command(message),
            State::PtIsMaster { .. } => self.on_message_from_master(message),
            State::Finished => Vec::new(),
        }
    }

    /// Handles expiry of `timer`. Stale timers are ignored.
    pub fn on_timeout(&mut self, timer: Timer) -> Vec<Action> {
        if self.state == State::Finished || self.timer != Some(timer) {
            return Vec::new();
        }
        self.finish();
        vec![Action::Event(ExchangeEvent::TimedOut(timer))]
    }

    /// Asks the PT to abort the running transaction (`06 B0`). Only
    /// possible while the PT is master; the PT then ends with `06 1E`.
    pub fn request_abort(&mut self) -> Vec<Action> {
        if !matches!(self.state, State::PtIsMaster { .. }) {
            return Vec::new();
        }
        match Message::from(AbortCommand::default()).to_apdu() {
            Ok(apdu) => vec![Action::Send(apdu)],
            Err(_) => Vec::new(),
        }
    }

    /// Positively acknowledges a Status-Information held back by
    /// [`ExchangeOptions::manual_status_confirmation`].
    pub fn accept_status_information(&mut self) -> Vec<Action> {
        self.confirm_status(Message::ack())
    }

    /// Negatively acknowledges a held-back Status-Information with `code`;
    /// the PT then reverses the transaction.
    pub fn reject_status_information(&mut self, code: ResultCode) -> Vec<Action> {
        self.confirm_status(Message::NegativeAck(NegativeAck::new(code)))
    }

    fn confirm_status(&mut self, reply: Message) -> Vec<Action> {
        if !self.status_confirmation_pending() {
            return Vec::new();
        }
        self.state = State::PtIsMaster {
            status_unconfirmed: false,
        };
        let mut actions = Vec::new();
        push_send(&mut actions, &reply);
        actions.push(self.start_timer(Timer::Completion));
        actions
    }

    fn on_undecodable(&mut self, error: MessageError) -> Vec<Action> {
        let mut actions = vec![Action::Event(ExchangeEvent::Undecodable(error))];
        if matches!(self.state, State::PtIsMaster { .. }) {
            push_send(
                &mut actions,
                &Message::NegativeAck(NegativeAck::new(PROTOCOL_ERROR)),
            );
            actions.push(self.start_timer(Timer::Completion));
        }
        actions
    }

    fn on_reply_to_command(&mut self, message: Message) -> Vec<Action> {
        match message {
            Message::PositiveAck(_) => {
                let mut actions = vec![Action::Event(ExchangeEvent::Accepted)];
                if self.options.ends_on_ack {
                    self.finish();
                    actions.push(Action::StopTimer);
                } else {
                    self.state = State::PtIsMaster {
                        status_unconfirmed: false,
                    };
                    actions.push(self.start_timer(Timer::Completion));
                }
                actions
            }
            Message::NegativeAck(nack) => {
                self.finish();
                vec![
                    Action::StopTimer,
                    Action::Event(ExchangeEvent::NegativeAck(nack.code)),
                ]
            }
            // Some terminals abort without accepting first.
            Message::Abort(abort) => self.end_with(ExchangeEvent::Aborted(abort)),
            other => vec![Action::Event(ExchangeEvent::Unexpected(other))],
        }
    }

    fn on_message_from_master(&mut self, message: Message) -> Vec<Action> {
        let event = match message {
            Message::Completion(completion) => {
                return self.end_with(ExchangeEvent::Completed(completion));
            }
            Message::Abort(abort) => return self.end_with(ExchangeEvent::Aborted(abort)),
            Message::StatusInformation(status) if self.options.manual_status_confirmation => {
                self.state = State::PtIsMaster {
                    status_unconfirmed: true,
                };
                return vec![
                    Action::Event(ExchangeEvent::StatusInformation(status)),
                    self.start_timer(Timer::Completion),
                ];
            }
            Message::StatusInformation(status) => ExchangeEvent::StatusInformation(status),
            Message::IntermediateStatus(status) => ExchangeEvent::IntermediateStatus(status),
            Message::PrintLine(line) => ExchangeEvent::PrintLine(line),
            Message::PrintTextBlock(block) => ExchangeEvent::PrintTextBlock(block),
            // The PT's answer to our 06 B0: nothing to acknowledge.
            Message::PositiveAck(_) => return Vec::new(),
            Message::NegativeAck(nack) => {
                return vec![Action::Event(ExchangeEvent::NegativeAck(nack.code))];
            }
            other => {
                let mut actions = vec![Action::Event(ExchangeEvent::Unexpected(other))];
                push_send(
                    &mut actions,
                    &Message::NegativeAck(NegativeAck::new(FUNCTION_NOT_POSSIBLE)),
                );
                actions.push(self.start_timer(Timer::Completion));
                return actions;
            }
        };
        let mut actions = vec![Action::Event(event)];
        push_send(&mut actions, &Message::ack());
        actions.push(self.start_timer(Timer::Completion));
        actions
    }

    /// Acknowledges the final message and ends the exchange.
    fn end_with(&mut self, event: ExchangeEvent) -> Vec<Action> {
        self.finish();
        let mut actions = vec![Action::Event(event)];
        push_send(&mut actions, &Message::ack());
        actions.push(Action::StopTimer);
        actions
    }

    fn start_timer(&mut self, timer: Timer) -> Action {
        self.timer = Some(timer);
        Action::StartTimer(timer)
    }

    fn finish(&mut self) {
        self.state = State::Finished;
        self.timer = None;
    }
}

fn push_send(actions: &mut Vec<Action>, message: &Message) {
    // Acknowledgements are tiny and always encode; nothing to report if not.
    if let Ok(apdu) = message.to_apdu() {
        actions.push(Action::Send(apdu));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zvt::bmp::{Amount, Bmp, CurrencyCode};
    use crate::zvt::messages::Authorization;

    fn apdu(bytes: &[u8]) -> Apdu {
        Apdu::decode(bytes).unwrap()
    }

    fn ack_apdu() -> Apdu {
        apdu(&[0x80, 0x00, 0x00])
    }

    fn sale() -> Message {
        Authorization::payment(Amount::from_minor_units(1000).unwrap(), CurrencyCode::EUR).into()
    }

    #[test]
    fn successful_payment_dialogue() {
        let (mut exchange, actions) = EcrExchange::start(&sale()).unwrap();
        assert_eq!(
            actions,
            vec![
                Action::Send(apdu(&[
                    0x06, 0x01, 0x0A, 0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x49, 0x09, 0x78
                ])),
                Action::StartTimer(Timer::Ack),
            ]
        );

        let actions = exchange.on_apdu(&ack_apdu());
        assert_eq!(
            actions,
            vec![
                Action::Event(ExchangeEvent::Accepted),
                Action::StartTimer(Timer::Completion)
            ]
        );

        let actions = exchange.on_apdu(&apdu(&[0x04, 0xFF, 0x01, 0x0A]));
        assert!(matches!(
            &actions[0],
            Action::Event(ExchangeEvent::IntermediateStatus(status)) if status.status == 0x0A
        ));
        assert_eq!(actions[1], Action::Send(ack_apdu()));

        let status = apdu(&[0x04, 0x0F, 0x02, 0x27, 0x00]);
        let actions = exchange.on_apdu(&status);
        match &actions[0] {
            Action::Event(ExchangeEvent::StatusInformation(info)) => {
                assert_eq!(info.fields.result_code(), Some(ResultCode::SUCCESS));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(actions[1], Action::Send(ack_apdu()));

        let actions = exchange.on_apdu(&apdu(&[0x06, 0x0F, 0x00]));
        assert!(matches!(
            actions[0],
            Action::Event(ExchangeEvent::Completed(_))
        ));
        assert_eq!(actions[1], Action::Send(ack_apdu()));
        assert_eq!(actions[2], Action::StopTimer);
        assert!(exchange.is_finished());
        assert!(exchange.on_apdu(&ack_apdu()).is_empty());
    }

    #[test]
    fn rejected_command() {
        let (mut exchange, _) = EcrExchange::start(&sale()).unwrap();
        let actions = exchange.on_apdu(&apdu(&[0x84, 0x83, 0x00]));
        assert_eq!(
            actions,
            vec![
                Action::StopTimer,
                Action::Event(ExchangeEvent::NegativeAck(ResultCode(0x83)))
            ]
        );
        assert!(exchange.is_finished());
    }

    #[test]
    fn abort_with_result_code() {
        let (mut exchange, _) = EcrExchange::start(&sale()).unwrap();
        exchange.on_apdu(&ack_apdu());
        assert_eq!(
            exchange.request_abort(),
            vec![Action::Send(apdu(&[0x06, 0xB0, 0x00]))]
        );
        assert!(exchange.on_apdu(&ack_apdu()).is_empty());
        let actions = exchange.on_apdu(&apdu(&[0x06, 0x1E, 0x01, 0x6C]));
        assert_eq!(
            actions[0],
            Action::Event(ExchangeEvent::Aborted(Abort::new(ResultCode(0x6C))))
        );
        assert_eq!(actions[1], Action::Send(ack_apdu()));
        assert!(exchange.is_finished());
    }

    #[test]
    fn timeouts() {
        let (mut exchange, _) = EcrExchange::start(&sale()).unwrap();
        assert_eq!(exchange.active_timer(), Some(Timer::Ack));
        // A stale completion timer is ignored.
        assert!(exchange.on_timeout(Timer::Completion).is_empty());
        assert_eq!(
            exchange.on_timeout(Timer::Ack),
            vec![Action::Event(ExchangeEvent::TimedOut(Timer::Ack))]
        );
        assert!(exchange.is_finished());
    }

    #[test]
    fn manual_status_confirmation() {
        let options = ExchangeOptions {
            manual_status_confirmation: true,
            ..ExchangeOptions::default()
        };
        let (mut exchange, _) = EcrExchange::start_with(&sale(), options).unwrap();
        exchange.on_apdu(&ack_apdu());
        let actions = exchange.on_apdu(&apdu(&[0x04, 0x0F, 0x02, 0x27, 0x00]));
        assert!(!actions.iter().any(|a| matches!(a, Action::Send(_))));
        assert!(exchange.status_confirmation_pending());
        let actions = exchange.reject_status_information(ResultCode(0x66));
        assert_eq!(actions[0], Action::Send(apdu(&[0x84, 0x66, 0x00])));
        assert!(!exchange.status_confirmation_pending());
        assert!(exchange.accept_status_information().is_empty());
    }

    #[test]
    fn unexpected_message_while_master_is_refused() {
        let (mut exchange, _) = EcrExchange::start(&sale()).unwrap();
        exchange.on_apdu(&ack_apdu());
        let actions = exchange.on_apdu(&apdu(&[0x0F, 0xA1, 0x00]));
        assert!(matches!(
            actions[0],
            Action::Event(ExchangeEvent::Unexpected(Message::Vendor(_)))
        ));
        assert_eq!(actions[1], Action::Send(apdu(&[0x84, 0x83, 0x00])));
    }

    #[test]
    fn receipts_are_reported_and_acknowledged() {
        let (mut exchange, _) = EcrExchange::start(&sale()).unwrap();
        exchange.on_apdu(&ack_apdu());
        let line = apdu(&[0x06, 0xD1, 0x03, 0x00, b'O', b'K']);
        let actions = exchange.on_apdu(&line);
        match &actions[0] {
            Action::Event(ExchangeEvent::PrintLine(line)) => {
                assert_eq!(line.text.to_unicode(), "OK");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(actions[1], Action::Send(ack_apdu()));
        let _ = Bmp::Timeout(1);
    }
}
