//! A test driver that answers as the test says — including never — and records what it was
//! asked and told. Spawn it with `terminal::spawn` to give the engine a terminal in a test.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{
    DriverError, OperationOutcome, OperationQuery, OperationRequest, PromptSink, SaleInquiry,
    SaleOutcome, SaleQuery, SaleRequest, SentRecord, TerminalDriver, Verdict,
};

/// How the scripted terminal answers a sale.
#[derive(Debug, Clone)]
pub(crate) enum SaleAnswer {
    Outcome(SaleOutcome),
    /// The outcome, after the shopper took `delay` at the PIN pad.
    After {
        delay: Duration,
        outcome: SaleOutcome,
    },
    Fails(DriverError),
    /// It never answers (until aborted, if `honours_abort`).
    Never {
        honours_abort: bool,
    },
}

/// The script and the record, shared between the test and the driver it spawned.
#[derive(Debug, Default)]
pub(crate) struct Script {
    /// Answers to the next sales, in order; none left: the sale fails as not sent.
    pub sales: VecDeque<SaleAnswer>,
    /// Answers to the next recovery queries; none left: no such transaction.
    pub queries: VecDeque<Result<SaleQuery, DriverError>>,
    /// Every sale it was asked for.
    pub sale_requests: Vec<SaleRequest>,
    /// Every reference it was told is committed, with the verdict, in order.
    pub committed: Vec<(String, Verdict)>,
    /// Every reversal and refund it carried out.
    pub reversals: Vec<OperationRequest>,
    pub refunds: Vec<OperationRequest>,
}

/// The test's side of a scripted terminal.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScriptHandle(Arc<Mutex<Script>>);

impl ScriptHandle {
    pub fn lock(&self) -> MutexGuard<'_, Script> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn answer_sale(&self, answer: SaleAnswer) {
        self.lock().sales.push_back(answer);
    }

    pub fn committed(&self) -> Vec<(String, Verdict)> {
        self.lock().committed.clone()
    }
}

pub(crate) struct Scripted {
    script: ScriptHandle,
}

impl Scripted {
    /// The driver and the test's handle on its script.
    pub fn new() -> (Self, ScriptHandle) {
        let script = ScriptHandle::default();
        (
            Self {
                script: script.clone(),
            },
            script,
        )
    }
}

impl TerminalDriver for Scripted {
    async fn sale(
        &mut self,
        request: &SaleRequest,
        _prompts: &PromptSink,
        abort: &CancellationToken,
    ) -> Result<SaleOutcome, DriverError> {
        let answer = {
            let mut script = self.script.lock();
            script.sale_requests.push(request.clone());
            script.sales.pop_front()
        };
        match answer {
            Some(SaleAnswer::Outcome(outcome)) => Ok(outcome),
            Some(SaleAnswer::After { delay, outcome }) => {
                tokio::time::sleep(delay).await;
                Ok(outcome)
            }
            Some(SaleAnswer::Fails(e)) => Err(e),
            Some(SaleAnswer::Never { honours_abort }) => {
                if honours_abort {
                    abort.cancelled().await;
                    Ok(SaleOutcome::declined("aborted", "aborted on the terminal"))
                } else {
                    std::future::pending().await
                }
            }
            None => Err(DriverError::NotSent("no answer scripted".into())),
        }
    }

    async fn query_sale(&mut self, _inquiry: &SaleInquiry) -> Result<SaleQuery, DriverError> {
        self.script
            .lock()
            .queries
            .pop_front()
            .unwrap_or(Ok(SaleQuery::NotFound))
    }

    async fn reverse(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        self.script.lock().reversals.push(request.clone());
        Ok(OperationOutcome::Done)
    }

    async fn refund(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        self.script.lock().refunds.push(request.clone());
        Ok(OperationOutcome::Done)
    }

    async fn query_operation(&mut self, reference: &str) -> Result<OperationQuery, DriverError> {
        let script = self.script.lock();
        let done = script
            .reversals
            .iter()
            .chain(&script.refunds)
            .any(|r| r.reference == reference);
        Ok(if done {
            OperationQuery::Done
        } else {
            OperationQuery::NotFound
        })
    }

    async fn probe(&mut self) -> Result<String, DriverError> {
        Ok("scripted terminal".into())
    }

    async fn end_of_day(&mut self) -> Result<String, DriverError> {
        Ok("scripted terminal: batch closed".into())
    }

    fn sent(&self) -> Result<Vec<SentRecord>, DriverError> {
        Ok(self
            .script
            .lock()
            .sale_requests
            .iter()
            .map(|r| SentRecord {
                reference: r.reference.clone(),
                amount_minor: Some(r.amount_minor),
                at_ms: 0,
            })
            .collect())
    }

    async fn committed(&mut self, reference: &str, verdict: Verdict) -> Result<(), DriverError> {
        self.script
            .lock()
            .committed
            .push((reference.to_string(), verdict));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::money::Currency;
    use crate::terminal::{CardFunction, TerminalError, spawn};

    fn sale(reference: &str) -> SaleRequest {
        SaleRequest {
            reference: reference.into(),
            amount_minor: 1000,
            currency: Currency::parse("BRL").expect("BRL"),
            function: CardFunction::Credit,
            installments: None,
        }
    }

    /// Through the actor: a failure as scripted, a sale that only an abort ends, and the
    /// commit told to the driver.
    #[tokio::test(start_paused = true)]
    async fn answers_as_scripted_and_hears_each_commit() {
        let (driver, script) = Scripted::new();
        script.answer_sale(SaleAnswer::Fails(DriverError::Timeout));
        script.answer_sale(SaleAnswer::Never {
            honours_abort: true,
        });
        let prompts = PromptSink::new("t", tokio::sync::broadcast::channel(4).0);
        let terminal = spawn("t", "scripted", driver, prompts, Duration::from_secs(60));
        assert_eq!(
            terminal.sale(sale("a")).await,
            Err(TerminalError::Driver(DriverError::Timeout))
        );
        let running = tokio::spawn({
            let terminal = terminal.clone();
            async move { terminal.sale(sale("b")).await }
        });
        while !terminal.abort("b") {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            running.await.expect("task"),
            Ok(SaleOutcome::Declined { .. })
        ));
        terminal
            .committed("b", Verdict::Keep)
            .await
            .expect("committed");
        assert_eq!(script.committed(), [("b".to_string(), Verdict::Keep)]);
        assert_eq!(script.lock().sale_requests.len(), 2);
    }
}
