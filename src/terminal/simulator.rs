//! The built-in simulated terminal. Outcome by the cents of the amount:
//!
//! | cents | outcome |
//! |---|---|
//! | .01 | declined by the issuer |
//! | .02 | the shopper cancels on the terminal (declined) |
//! | .03 | the terminal goes silent; asked later, it has no such transaction |
//! | .04 | approved after 20 s |
//! | .05 | approved; ignores an abort (the card was already read) |
//! | .06 | approved; reversals and refunds need the card present (501 `*-manually`) |
//! | other | approved after `approve_after_ms` |
//!
//! Like a real terminal it keeps its own journal on disk and keeps working while posbridge is
//! down: a sale is journaled with the time it completes, so after a crash the recovery query
//! finds the approval the terminal made meanwhile.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{
    Approval, CardFunction, DriverError, OperationOutcome, OperationQuery, OperationRequest,
    PromptSink, Receipt, ReceiptKind, SaleInquiry, SaleOutcome, SaleQuery, SaleRequest, SentRecord,
    TerminalDriver, TerminalHandle,
};
use crate::clock::SharedClock;
use crate::terminal::protocol::{InvalidSetting, OpenError, Opening, Protocol};

const SLOW_SALE: Duration = Duration::from_secs(20);
/// `.07`: how many status lines a chatty terminal sends during the sale.
const CHATTY_LINES: usize = 20_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Entry {
    Sale {
        reference: String,
        amount_minor: i64,
        currency: String,
        started_at: i64,
        /// `None`: the terminal went silent and never completed it.
        completes_at: Option<i64>,
        outcome: Planned,
    },
    Aborted {
        reference: String,
        at: i64,
    },
    Reversal {
        reference: String,
        sale_ref: String,
        amount_minor: i64,
        at: i64,
    },
    Refund {
        reference: String,
        sale_ref: String,
        amount_minor: i64,
        at: i64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Planned {
    approved: bool,
    code: String,
    message: String,
    authorization_code: String,
    nsu: String,
    card_brand: String,
    first_digits: String,
    last_digits: String,
    honours_abort: bool,
}

pub struct Simulator {
    terminal_id: String,
    approve_after: Duration,
    journal: PathBuf,
    clock: SharedClock,
}

impl Simulator {
    pub fn new(
        terminal_id: &str,
        approve_after: Duration,
        journal: PathBuf,
        clock: SharedClock,
    ) -> Self {
        Self {
            terminal_id: terminal_id.to_string(),
            approve_after,
            journal,
            clock,
        }
    }

    /// Where the simulator of `terminal_id` keeps its journal, beside the database.
    pub fn journal_path(database: &Path, terminal_id: &str) -> PathBuf {
        super::journal::path_beside(database, "simulator", terminal_id)
    }

    fn read(&self) -> Result<Vec<Entry>, DriverError> {
        super::journal::read(&self.journal)
    }

    fn append(&self, entry: &Entry) -> Result<(), DriverError> {
        super::journal::append(&self.journal, entry)
    }

    fn plan(&self, request: &SaleRequest, serial: usize) -> (Option<Duration>, Planned) {
        let (card_brand, first_digits, last_digits) = match request.function {
            CardFunction::Credit => ("Visa", "444433", "1111"),
            CardFunction::Debit => ("Mastercard", "555566", "4444"),
        };
        let approved = |message: &str| Planned {
            approved: true,
            code: "00".into(),
            message: message.into(),
            authorization_code: format!("{:06}", (serial * 7919 + 1234) % 1_000_000),
            nsu: format!("{:09}", 100_000 + serial),
            card_brand: card_brand.into(),
            first_digits: first_digits.into(),
            last_digits: last_digits.into(),
            honours_abort: true,
        };
        let declined = |code: &str, message: &str| Planned {
            approved: false,
            code: code.into(),
            message: message.into(),
            authorization_code: String::new(),
            nsu: format!("{:09}", 100_000 + serial),
            card_brand: card_brand.into(),
            first_digits: first_digits.into(),
            last_digits: last_digits.into(),
            honours_abort: true,
        };
        match request.amount_minor.rem_euclid(100) {
            1 => (
                Some(self.approve_after),
                declined("51", "declined by the issuer"),
            ),
            2 => (
                Some(self.approve_after),
                declined("shopper-cancelled", "the shopper cancelled on the terminal"),
            ),
            3 => (
                None,
                declined("no-transaction", "the terminal has no such transaction"),
            ),
            4 => (Some(SLOW_SALE), approved("approved")),
            5 => (
                Some(self.approve_after),
                Planned {
                    honours_abort: false,
                    ..approved("approved")
                },
            ),
            _ => (Some(self.approve_after), approved("approved")),
        }
    }

    fn outcome(
        &self,
        reference: &str,
        amount_minor: i64,
        currency: &str,
        planned: &Planned,
    ) -> SaleOutcome {
        let receipt = |kind| {
            Receipt::masked(
                kind,
                [
                    "posbridge simulator".to_string(),
                    format!(
                        "{} {}",
                        if planned.approved {
                            "APPROVED"
                        } else {
                            "DECLINED"
                        },
                        planned.code
                    ),
                    format!("amount {amount_minor} {currency} (minor units)"),
                    format!(
                        "card {} {}******{}",
                        planned.card_brand, planned.first_digits, planned.last_digits
                    ),
                    format!("NSU {} AUTH {}", planned.nsu, planned.authorization_code),
                ],
            )
        };
        let receipts = vec![
            receipt(ReceiptKind::Merchant),
            receipt(ReceiptKind::Customer),
        ];
        if planned.approved {
            SaleOutcome::Approved(Approval {
                authorization_code: planned.authorization_code.clone(),
                nsu: planned.nsu.clone(),
                acquirer: "posbridge-simulator".into(),
                card_brand: planned.card_brand.clone(),
                first_digits: planned.first_digits.clone(),
                last_digits: planned.last_digits.clone(),
                terminal_ref: reference.to_string(),
                message: "approved".into(),
                receipts,
            })
        } else {
            SaleOutcome::Declined {
                code: planned.code.clone(),
                message: planned.message.clone(),
                receipts,
            }
        }
    }

    fn approved_sale(&self, entries: &[Entry], sale_ref: &str) -> bool {
        let aborted = entries
            .iter()
            .any(|e| matches!(e, Entry::Aborted { reference, .. } if reference == sale_ref));
        !aborted
            && entries.iter().any(|e| {
                matches!(e, Entry::Sale { reference, outcome, .. } if reference == sale_ref && outcome.approved)
            })
    }

    fn sale_amount(&self, entries: &[Entry], sale_ref: &str) -> Option<i64> {
        entries.iter().find_map(|e| match e {
            Entry::Sale {
                reference,
                amount_minor,
                ..
            } if reference == sale_ref => Some(*amount_minor),
            _ => None,
        })
    }

    fn operation(
        &self,
        request: &OperationRequest,
        refund: bool,
    ) -> Result<OperationOutcome, DriverError> {
        let entries = self.read()?;
        if entries.iter().any(|e| {
            matches!(e, Entry::Reversal { reference, .. } | Entry::Refund { reference, .. } if *reference == request.reference)
        }) {
            return Ok(OperationOutcome::Done);
        }
        if !self.approved_sale(&entries, &request.sale_ref) {
            return Ok(OperationOutcome::Failed(format!(
                "the terminal has no approved sale {}",
                request.sale_ref
            )));
        }
        if self
            .sale_amount(&entries, &request.sale_ref)
            .is_some_and(|a| a.rem_euclid(100) == 6)
        {
            return Ok(OperationOutcome::Unsupported(
                "this card must be present: do it on the terminal by hand".into(),
            ));
        }
        let at = self.clock.now_ms();
        let entry = if refund {
            Entry::Refund {
                reference: request.reference.clone(),
                sale_ref: request.sale_ref.clone(),
                amount_minor: request.amount_minor,
                at,
            }
        } else {
            Entry::Reversal {
                reference: request.reference.clone(),
                sale_ref: request.sale_ref.clone(),
                amount_minor: request.amount_minor,
                at,
            }
        };
        self.append(&entry)?;
        Ok(OperationOutcome::Done)
    }
}

impl TerminalDriver for Simulator {
    async fn sale(
        &mut self,
        request: &SaleRequest,
        prompts: &PromptSink,
        abort: &CancellationToken,
    ) -> Result<SaleOutcome, DriverError> {
        let serial = self.read()?.len() + 1;
        let (duration, planned) = self.plan(request, serial);
        let started_at = self.clock.now_ms();
        let completes_at =
            duration.map(|d| started_at + i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.append(&Entry::Sale {
            reference: request.reference.clone(),
            amount_minor: request.amount_minor,
            currency: request.currency.code().to_string(),
            started_at,
            completes_at,
            outcome: planned.clone(),
        })
        .map_err(DriverError::not_journaled)?;
        // The simulator's journal is the terminal's own record: it has the sale from here on.
        crate::failpoint::hit("after-charge-intent");
        tracing::info!(terminal = %self.terminal_id, payment_id = %request.reference, "simulator: sale started");
        prompts.show(&request.reference, "insert, tap or swipe card");
        let Some(duration) = duration else {
            // Silent: neither completes nor answers an abort.
            std::future::pending::<()>().await;
            return Err(DriverError::Timeout);
        };
        let steps = [
            (duration / 3, "enter PIN"),
            (duration / 3, "processing, please wait"),
        ];
        let chatty = request.amount_minor.rem_euclid(100) == 7;
        let work = async {
            for (pause, text) in steps {
                // At zero delay, none: a timer rounds even a zero wait up to its next tick.
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                prompts.show(&request.reference, text);
            }
            if chatty {
                // Like a ZVT terminal streaming intermediate status: many lines, in bursts.
                for burst in 0..CHATTY_LINES / 50 {
                    for i in 0..50 {
                        let n = burst * 50 + i + 1;
                        prompts.show(
                            &request.reference,
                            &format!("processing ({n}/{CHATTY_LINES})"),
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            let rest = duration - 2 * (duration / 3);
            if !rest.is_zero() {
                tokio::time::sleep(rest).await;
            }
        };
        let aborted = async {
            abort.cancelled().await;
            if !planned.honours_abort {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = work => {
                prompts.show(&request.reference, if planned.approved { "approved" } else { "declined" });
                Ok(self.outcome(&request.reference, request.amount_minor, request.currency.code(), &planned))
            }
            () = aborted => {
                self.append(&Entry::Aborted { reference: request.reference.clone(), at: self.clock.now_ms() })?;
                prompts.show(&request.reference, "cancelled");
                Ok(SaleOutcome::declined("aborted", "the sale was aborted on the terminal"))
            }
        }
    }

    async fn query_sale(&mut self, inquiry: &SaleInquiry) -> Result<SaleQuery, DriverError> {
        let reference = inquiry.reference.as_str();
        let entries = self.read()?;
        if entries
            .iter()
            .any(|e| matches!(e, Entry::Aborted { reference: r, .. } if r == reference))
        {
            return Ok(SaleQuery::Completed(SaleOutcome::declined(
                "aborted",
                "the sale was aborted on the terminal",
            )));
        }
        let sale = entries.iter().rev().find_map(|e| match e {
            Entry::Sale {
                reference: r,
                completes_at,
                outcome,
                ..
            } if r == reference => Some((*completes_at, outcome.clone())),
            _ => None,
        });
        Ok(match sale {
            None | Some((None, _)) => SaleQuery::NotFound,
            Some((Some(at), planned)) if self.clock.now_ms() >= at => SaleQuery::Completed(
                self.outcome(reference, inquiry.amount_minor, &inquiry.currency, &planned),
            ),
            // Still running: a cancel aborts it, as on a real terminal (unless the card was
            // already read).
            Some((Some(_), planned)) if inquiry.cancel_requested && planned.honours_abort => {
                self.append(&Entry::Aborted {
                    reference: reference.to_string(),
                    at: self.clock.now_ms(),
                })?;
                SaleQuery::Completed(SaleOutcome::declined(
                    "aborted",
                    "the sale was aborted on the terminal",
                ))
            }
            Some(_) => SaleQuery::InProgress,
        })
    }

    async fn reverse(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        self.operation(request, false)
    }

    async fn refund(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        self.operation(request, true)
    }

    async fn probe(&mut self) -> Result<String, DriverError> {
        let sales = self
            .read()?
            .iter()
            .filter(|e| matches!(e, Entry::Sale { .. }))
            .count();
        Ok(format!("simulator ready; {sales} sales in its journal"))
    }

    async fn end_of_day(&mut self) -> Result<String, DriverError> {
        let sales = self
            .read()?
            .iter()
            .filter(|e| matches!(e, Entry::Sale { .. }))
            .count();
        Ok(format!("simulator: batch closed ({sales} sales journaled)"))
    }

    fn sent(&self) -> Result<Vec<SentRecord>, DriverError> {
        Ok(self
            .read()?
            .into_iter()
            .filter_map(|entry| match entry {
                Entry::Sale {
                    reference,
                    amount_minor,
                    started_at,
                    ..
                } => Some(SentRecord {
                    reference,
                    amount_minor: Some(amount_minor),
                    at_ms: started_at,
                }),
                Entry::Reversal {
                    reference,
                    amount_minor,
                    at,
                    ..
                }
                | Entry::Refund {
                    reference,
                    amount_minor,
                    at,
                    ..
                } => Some(SentRecord {
                    reference,
                    amount_minor: Some(amount_minor),
                    at_ms: at,
                }),
                Entry::Aborted { .. } => None,
            })
            .collect())
    }

    async fn query_operation(&mut self, reference: &str) -> Result<OperationQuery, DriverError> {
        let done = self.read()?.iter().any(|e| {
            matches!(e, Entry::Reversal { reference: r, .. } | Entry::Refund { reference: r, .. } if r == reference)
        });
        Ok(if done {
            OperationQuery::Done
        } else {
            OperationQuery::NotFound
        })
    }
}

/// A simulator terminal's own keys in its `[[terminals]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSettings {
    /// How long an ordinary sale takes.
    #[serde(default = "default_approve_after_ms")]
    pub approve_after_ms: u64,
}

fn default_approve_after_ms() -> u64 {
    1_500
}

impl Protocol for SimulatorSettings {
    const NAME: &'static str = "simulator";
    const APPROVES_WITHOUT_A_CARD: bool = true;
    type Written = Self;

    fn check(written: Self) -> Result<Self, InvalidSetting> {
        Ok(written)
    }

    fn open(&self, terminal: Opening<'_>) -> Result<TerminalHandle, OpenError> {
        let driver = Simulator::new(
            terminal.id,
            Duration::from_millis(self.approve_after_ms),
            Simulator::journal_path(terminal.database, terminal.id),
            terminal.clock,
        );
        Ok(super::spawn(
            terminal.id,
            Self::NAME,
            driver,
            terminal.prompts,
            terminal.result_timeout,
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::money::Currency;
    use std::sync::Arc;

    use super::*;
    use crate::clock::TokioClock;

    fn sim(dir: &Path) -> Simulator {
        Simulator::new(
            "t",
            Duration::from_millis(1500),
            dir.join("sim.journal"),
            Arc::new(TokioClock::starting_at(1_000_000)),
        )
    }

    fn sale(reference: &str, amount_minor: i64) -> SaleRequest {
        SaleRequest {
            reference: reference.into(),
            amount_minor,
            currency: Currency::parse("BRL").expect("BRL"),
            function: CardFunction::Credit,
            installments: None,
        }
    }

    fn inquiry(reference: &str) -> SaleInquiry {
        SaleInquiry {
            reference: reference.into(),
            amount_minor: 1000,
            currency: "BRL".into(),
            sent_at_ms: 0,
            cancel_requested: false,
        }
    }

    fn sink() -> PromptSink {
        PromptSink::new("t", tokio::sync::broadcast::channel(16).0)
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_follow_the_cents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = sim(dir.path());
        let token = CancellationToken::new();
        let ok = s
            .sale(&sale("a", 1000), &sink(), &token)
            .await
            .expect("sale");
        assert!(matches!(ok, SaleOutcome::Approved(ref a) if a.last_digits == "1111"));
        let no = s
            .sale(&sale("b", 1001), &sink(), &token)
            .await
            .expect("sale");
        assert!(matches!(no, SaleOutcome::Declined { ref code, .. } if code == "51"));
        let silent = tokio::time::timeout(
            Duration::from_secs(300),
            s.sale(&sale("c", 1003), &sink(), &token),
        )
        .await;
        assert!(silent.is_err(), "a silent terminal never answers");
        assert_eq!(
            s.query_sale(&inquiry("c")).await.expect("query"),
            SaleQuery::NotFound
        );
        assert_eq!(
            s.query_sale(&inquiry("zzz")).await.expect("query"),
            SaleQuery::NotFound
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_sale_completes_while_nobody_listens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = sim(dir.path());
        let token = CancellationToken::new();
        // The caller gives up after 1 s (as a crashed posbridge would)...
        let gave_up = tokio::time::timeout(
            Duration::from_secs(1),
            s.sale(&sale("slow", 1004), &sink(), &token),
        )
        .await;
        assert!(gave_up.is_err());
        assert_eq!(
            s.query_sale(&inquiry("slow")).await.expect("query"),
            SaleQuery::InProgress
        );
        // ...but the terminal finishes the sale on its own.
        tokio::time::sleep(SLOW_SALE).await;
        assert!(matches!(
            s.query_sale(&inquiry("slow")).await.expect("query"),
            SaleQuery::Completed(SaleOutcome::Approved(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn abort_is_honoured_except_by_the_stubborn_card() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = sim(dir.path());
        let token = CancellationToken::new();
        token.cancel();
        let aborted = s
            .sale(&sale("x", 1000), &sink(), &token)
            .await
            .expect("sale");
        assert!(matches!(aborted, SaleOutcome::Declined { ref code, .. } if code == "aborted"));
        let stubborn = s
            .sale(&sale("y", 1005), &sink(), &token)
            .await
            .expect("sale");
        assert!(matches!(stubborn, SaleOutcome::Approved(_)));
        let reversal = OperationRequest {
            reference: "op1".into(),
            sale_ref: "y".into(),
            sale_amount_minor: 1005,
            sale_at_ms: 0,
            amount_minor: 1005,
            currency: "BRL".into(),
        };
        assert_eq!(
            s.reverse(&reversal).await.expect("reverse"),
            OperationOutcome::Done
        );
        assert_eq!(
            s.query_operation("op1").await.expect("q"),
            OperationQuery::Done
        );
        let bad = OperationRequest {
            reference: "op2".into(),
            sale_ref: "x".into(),
            sale_amount_minor: 1000,
            sale_at_ms: 0,
            amount_minor: 1,
            currency: "BRL".into(),
        };
        assert!(matches!(
            s.reverse(&bad).await.expect("reverse"),
            OperationOutcome::Failed(_)
        ));
    }
}
