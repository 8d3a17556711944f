//! The engine in-process: a scripted terminal that answers as each test says (or never), a real
//! SQLite file in a temp dir, and tokio's paused clock. What the end-to-end suite proves on the
//! compiled daemon, proven here at the engine's own door, in milliseconds.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::outcome::{
    CancelOutcome, DebugAnswers, RefundOutcome, RefundRefusal, Reply, SettleOutcome, SettleRefusal,
};
use super::{CreatePayment, Engine};
use crate::clock::TokioClock;
use crate::config::{Config, DEFAULT_CONFIG};
use crate::money::{Amount, Currency};
use crate::outbox::Outbox;
use crate::payment::{Payment, PaymentState, PppStatus};
use crate::store::Store;
use crate::terminal::scripted::{SaleAnswer, ScriptHandle, Scripted};
use crate::terminal::{Approval, DriverError, SaleOutcome, SaleQuery, Terminals, Verdict, spawn};

const MERCHANT: &str = "merchant-1";
const SERIAL: &str = "SCRIPT-1";

fn approval(reference: &str) -> SaleOutcome {
    SaleOutcome::Approved(Approval {
        authorization_code: "004711".into(),
        nsu: "000123".into(),
        acquirer: "scripted".into(),
        card_brand: "visa".into(),
        first_digits: "476173".into(),
        last_digits: "0119".into(),
        terminal_ref: format!("tx-{reference}"),
        message: "approved".into(),
        receipts: Vec::new(),
    })
}

/// An engine on a fresh database with one scripted terminal, started.
struct Rig {
    engine: Arc<Engine>,
    terminal: ScriptHandle,
    _dir: tempfile::TempDir,
    _shutdown: CancellationToken,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().expect("temp dir");
    // Inline: waiting on the writer thread would let paused time jump ahead.
    let store = Store::open_inline(&dir.path().join("posbridge.db")).expect("store");
    let config = Config::parse(DEFAULT_CONFIG, "test").expect("config");
    let (driver, terminal) = Scripted::new();
    let mut terminals = Terminals::default();
    let prompts = terminals.prompts("lane-1");
    terminals.add(
        spawn(
            "lane-1",
            "scripted",
            driver,
            prompts,
            Duration::from_secs(180),
        ),
        SERIAL,
    );
    let engine = Engine::new(
        &config,
        store.clone(),
        Outbox::new(store),
        Arc::new(TokioClock::starting_at(1_764_500_000_000)),
        Arc::new(DebugAnswers),
        terminals,
    )
    .expect("engine");
    let shutdown = CancellationToken::new();
    engine
        .start(&TaskTracker::new(), shutdown.clone())
        .await
        .expect("start");
    Rig {
        engine,
        terminal,
        _dir: dir,
        _shutdown: shutdown,
    }
}

fn create(id: &str, amount_minor: i64) -> CreatePayment {
    CreatePayment {
        payment_id: id.into(),
        transaction_id: format!("tx-{id}"),
        method: super::CREDIT_METHOD.into(),
        amount_minor,
        currency: Currency::parse("BRL").expect("BRL"),
        installments: None,
        callback_url: "http://127.0.0.1:9/callback".into(),
        test_card: None,
        is_test_suite: false,
        relay_assigned: None,
    }
}

fn amount(text: &str) -> Amount {
    Amount::Number(text.into())
}

fn decided<O: std::fmt::Debug>(reply: Reply<O>) -> O {
    match reply {
        Reply::Decided(outcome) => outcome,
        Reply::Replayed(answer) => panic!("a new request was replayed: {answer:?}"),
    }
}

/// A replay is the stored rendering of the first outcome, unchanged.
fn replays<O: std::fmt::Debug>(reply: Reply<O>, first: &O) {
    match reply {
        Reply::Replayed(answer) => {
            assert_eq!(answer.body["outcome"], format!("{first:?}"));
        }
        Reply::Decided(outcome) => panic!("decided again instead of replayed: {outcome:?}"),
    }
}

impl Rig {
    async fn payment(&self, id: &str) -> Payment {
        self.engine.payment(MERCHANT, id).await.expect("payment")
    }

    fn charges(&self) -> usize {
        self.terminal.lock().sale_requests.len()
    }

    fn reversed_minor(&self) -> Vec<i64> {
        let script = self.terminal.lock();
        script.reversals.iter().map(|r| r.amount_minor).collect()
    }

    fn refunded_minor(&self) -> Vec<i64> {
        let script = self.terminal.lock();
        script.refunds.iter().map(|r| r.amount_minor).collect()
    }

    async fn name_terminal(&self, id: &str, amount_minor: i64) {
        self.engine
            .create(MERCHANT, create(id, amount_minor))
            .await
            .expect("first create");
        let token = self.payment(id).await.submit_token;
        self.engine
            .bind_terminal(id, &token, SERIAL)
            .await
            .expect("bind");
    }

    /// First Create, the terminal named, second Create: the one charge is under way.
    async fn start_sale(&self, id: &str, amount_minor: i64) {
        self.name_terminal(id, amount_minor).await;
        self.engine
            .create(MERCHANT, create(id, amount_minor))
            .await
            .expect("second create");
    }

    /// Lets the lane and the terminal work until `id` is in `state` (paused time moves on
    /// only when nothing else can run).
    async fn until(&self, id: &str, state: PaymentState) -> Payment {
        for _ in 0..2_000 {
            let p = self.payment(id).await;
            if p.state == state {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{id} never became {state}: {}",
            self.payment(id).await.state
        );
    }

    /// Lets the lane work until the sale `id` is handed to the terminal.
    async fn until_sent(&self, id: &str) -> Payment {
        for _ in 0..2_000 {
            let p = self.payment(id).await;
            if p.sent_to_terminal_at.is_some() {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{id} was never sent to the terminal");
    }

    async fn callbacks(&self, id: &str) -> usize {
        let id = id.to_string();
        self.engine
            .store
            .call(move |c| crate::store::outbox::states_of(c, &id))
            .await
            .expect("outbox")
            .len()
    }
}

#[tokio::test(start_paused = true)]
async fn racing_creates_charge_the_terminal_once() {
    let rig = rig().await;
    rig.terminal.answer_sale(SaleAnswer::After {
        delay: Duration::from_secs(5),
        outcome: approval("race"),
    });
    rig.name_terminal("race", 2_990).await;
    let creates = (0..16).map(|_| rig.engine.create(MERCHANT, create("race", 2_990)));
    for reply in futures_util::future::join_all(creates).await {
        reply.expect("every repeated Create is answered");
    }
    // And more while the terminal works.
    for _ in 0..4 {
        rig.engine
            .create(MERCHANT, create("race", 2_990))
            .await
            .expect("answered");
    }
    let p = rig.until("race", PaymentState::Approved).await;
    assert_eq!(rig.charges(), 1, "one charge for twenty Creates");
    assert_eq!(p.amount_minor, 2_990);
    assert_eq!(rig.callbacks("race").await, 1, "one callback");
}

#[tokio::test(start_paused = true)]
async fn a_cancel_racing_the_result_reverses_the_late_approval() {
    let rig = rig().await;
    // The shopper is still at the PIN pad when the Gateway cancels; the approval lands after.
    rig.terminal.answer_sale(SaleAnswer::After {
        delay: Duration::from_secs(20),
        outcome: approval("late"),
    });
    rig.start_sale("late", 1_000).await;
    rig.until_sent("late").await;
    let cancel = {
        let engine = rig.engine.clone();
        tokio::spawn(async move { engine.cancel(MERCHANT, "late", "rq-cancel").await })
    };
    let p = rig.until("late", PaymentState::Cancelled).await;
    cancel.await.expect("task").expect("cancel answered");
    assert_eq!(rig.charges(), 1);
    assert_eq!(
        rig.reversed_minor(),
        vec![1_000],
        "the approval that came after the cancel is given back at once"
    );
    assert_eq!(p.state.ppp_status(), PppStatus::Denied);
    assert!(
        !p.final_answer.unwrap_or_default().contains("\"approved\""),
        "never reported approved"
    );
    assert_eq!(rig.callbacks("late").await, 1);
    assert_eq!(
        rig.terminal.committed(),
        [("late".to_string(), Verdict::Undo)],
        "a two-phase terminal undoes the approval, never confirms it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_sale_the_terminal_never_finishes_is_aborted_by_a_cancel() {
    let rig = rig().await;
    rig.terminal.answer_sale(SaleAnswer::Never {
        honours_abort: true,
    });
    rig.start_sale("never", 500).await;
    rig.until("never", PaymentState::Charging).await;
    rig.engine
        .cancel(MERCHANT, "never", "rq-1")
        .await
        .expect("cancel answered");
    let p = rig.until("never", PaymentState::Cancelled).await;
    assert!(rig.reversed_minor().is_empty(), "nothing to give back");
    assert_eq!(rig.callbacks("never").await, 1);
    assert!(p.sale.authorization_id.is_none());
    let again = decided(
        rig.engine
            .cancel(MERCHANT, "never", "rq-2")
            .await
            .expect("answered"),
    );
    assert!(
        matches!(again, CancelOutcome::Cancelled { .. }),
        "{again:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unclear_sale_stays_undefined_until_the_terminal_tells() {
    let rig = rig().await;
    // The line drops mid-sale; the terminal completes the sale anyway and, once back, says so.
    rig.terminal
        .answer_sale(SaleAnswer::Fails(DriverError::Disconnected(
            "line dropped".into(),
        )));
    {
        let mut script = rig.terminal.lock();
        script
            .queries
            .push_back(Err(DriverError::Disconnected("still down".into())));
        script
            .queries
            .push_back(Ok(SaleQuery::Completed(approval("unclear"))));
    }
    rig.start_sale("unclear", 4_200).await;
    let unknown = rig.until("unclear", PaymentState::Unknown).await;
    assert_eq!(unknown.state.ppp_status(), PppStatus::Undefined);
    assert_eq!(
        rig.callbacks("unclear").await,
        0,
        "nothing reported on a guess"
    );
    let p = rig.until("unclear", PaymentState::Approved).await;
    assert_eq!(rig.charges(), 1, "recovery asks, it never charges again");
    assert!(
        rig.terminal.lock().queries.is_empty(),
        "asked until it told"
    );
    assert_eq!(p.sale.authorization_id.as_deref(), Some("004711"));
    assert_eq!(rig.callbacks("unclear").await, 1);
}

#[tokio::test(start_paused = true)]
async fn recovery_that_finds_no_transaction_denies() {
    let rig = rig().await;
    rig.terminal
        .answer_sale(SaleAnswer::Fails(DriverError::Timeout));
    rig.terminal
        .lock()
        .queries
        .push_back(Ok(SaleQuery::NotFound));
    rig.start_sale("lost", 700).await;
    let p = rig.until("lost", PaymentState::Denied).await;
    assert_eq!(p.sale.code.as_deref(), Some("no-transaction"));
    assert_eq!(rig.charges(), 1);
}

#[tokio::test(start_paused = true)]
async fn settle_and_refund_never_exceed_what_was_charged_and_replay() {
    let rig = rig().await;
    rig.terminal
        .answer_sale(SaleAnswer::Outcome(approval("money")));
    rig.start_sale("money", 10_000).await;
    rig.until("money", PaymentState::Approved).await;
    let settle = |request: &'static str, value: &'static str| {
        let engine = rig.engine.clone();
        async move {
            engine
                .settle(MERCHANT, "money", request, &amount(value))
                .await
                .expect("answered")
        }
    };
    let refund = |request: &'static str, value: &'static str| {
        let engine = rig.engine.clone();
        async move {
            engine
                .refund(MERCHANT, "money", request, &amount(value))
                .await
                .expect("answered")
        }
    };

    let above = decided(settle("rq-s0", "100.01").await);
    assert!(
        matches!(
            above,
            SettleOutcome::Refused {
                reason: SettleRefusal::ExceedsAuthorized,
                ..
            }
        ),
        "{above:?}"
    );
    assert_eq!(
        rig.payment("money").await.settled_minor,
        0,
        "a refusal changes nothing"
    );

    let settled = decided(settle("rq-s1", "60.00").await);
    assert!(
        matches!(
            settled,
            SettleOutcome::Settled {
                value_minor: 6_000,
                ..
            }
        ),
        "{settled:?}"
    );
    assert_eq!(rig.payment("money").await.settled_minor, 6_000);
    assert_eq!(
        rig.reversed_minor(),
        vec![4_000],
        "a partial settlement gives the rest back"
    );
    replays(settle("rq-s1", "60.00").await, &settled);
    let same_value = decided(settle("rq-s2", "60.00").await);
    assert!(
        matches!(
            same_value,
            SettleOutcome::Settled {
                value_minor: 6_000,
                ..
            }
        ),
        "{same_value:?}"
    );
    let other_value = decided(settle("rq-s3", "50.00").await);
    assert!(
        matches!(
            other_value,
            SettleOutcome::Refused {
                reason: SettleRefusal::Conflict,
                ..
            }
        ),
        "{other_value:?}"
    );

    let first = decided(refund("rq-r1", "40.00").await);
    assert!(
        matches!(
            first,
            RefundOutcome::Refunded {
                value_minor: 4_000,
                ..
            }
        ),
        "{first:?}"
    );
    replays(refund("rq-r1", "40.00").await, &first);
    let too_much = decided(refund("rq-r2", "20.01").await);
    assert!(
        matches!(
            too_much,
            RefundOutcome::Refused {
                reason: RefundRefusal::ExceedsSettled,
                ..
            }
        ),
        "{too_much:?}"
    );
    let rest = decided(refund("rq-r3", "20.00").await);
    assert!(
        matches!(
            rest,
            RefundOutcome::Refunded {
                value_minor: 2_000,
                ..
            }
        ),
        "{rest:?}"
    );
    assert_eq!(
        rig.refunded_minor(),
        vec![4_000, 2_000],
        "refunds on the terminal add up to what was settled, never more"
    );
    assert_eq!(rig.payment("money").await.refunded_minor, 6_000);
    assert_eq!(rig.charges(), 1);
}

/// A two-phase protocol confirms a sale only once its result is stored: the lane tells the
/// driver after each result's commit, once per sale, approved (keep it) or declined (undo).
#[tokio::test(start_paused = true)]
async fn the_driver_is_told_once_per_committed_sale() {
    let rig = rig().await;
    rig.terminal
        .answer_sale(SaleAnswer::Outcome(approval("p-1")));
    rig.terminal
        .answer_sale(SaleAnswer::Outcome(SaleOutcome::declined("05", "declined")));
    rig.start_sale("p-1", 1_000).await;
    rig.until("p-1", PaymentState::Approved).await;
    rig.start_sale("p-2", 1_000).await;
    rig.until("p-2", PaymentState::Denied).await;
    for _ in 0..100 {
        if rig.terminal.committed().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        rig.terminal.committed(),
        [
            ("p-1".to_string(), Verdict::Keep),
            ("p-2".to_string(), Verdict::Undo)
        ]
    );
}

/// The answer a Create got for a final payment.
fn final_answer(reply: &super::PaymentReply) -> super::PaymentAnswer {
    match &reply.next {
        super::NextStep::Final(answer) => answer.as_ref().clone(),
        other => panic!("not a final answer: {other:?}"),
    }
}

impl Rig {
    /// Changes a stored final answer behind the engine's back (the daemon never does): a Create
    /// that still answers the old one was answered from memory.
    /// Changes the stored answer on a connection of its own, which the store's log of written
    /// payments does not see (nothing in the daemon writes that way): a poll that still gets
    /// the old answer was answered from memory.
    async fn change_stored_answer_unlogged(&self, id: &str, answer: &super::PaymentAnswer) {
        let json = answer.to_json().expect("json");
        let behind = rusqlite::Connection::open(self.engine.store.path()).expect("open");
        behind
            .execute(
                "UPDATE payments SET final_answer = ?2 WHERE payment_id = ?1",
                rusqlite::params![id, json],
            )
            .expect("changed");
    }

    /// A change to the payment's row through the store (the message of its stored answer):
    /// logged, as every change the daemon makes.
    async fn change_stored_answer(&self, id: &str, answer: &super::PaymentAnswer) {
        let (id, json) = (id.to_string(), answer.to_json().expect("json"));
        self.engine
            .store
            .call(move |c| {
                c.execute(
                    "UPDATE payments SET final_answer = ?2 WHERE payment_id = ?1",
                    rusqlite::params![id, json],
                )?;
                Ok(())
            })
            .await
            .expect("changed");
    }
}

#[tokio::test(start_paused = true)]
async fn polls_of_a_final_payment_are_answered_from_memory_until_its_row_changes() {
    let rig = rig().await;
    rig.terminal
        .answer_sale(SaleAnswer::Outcome(approval("memo")));
    rig.start_sale("memo", 1_500).await;
    let p = rig.until("memo", PaymentState::Approved).await;
    let frozen = super::PaymentAnswer::final_of(&p).expect("final");
    // The first poll reads the row and keeps the reply.
    let poll = rig
        .engine
        .create(MERCHANT, create("memo", 1_500))
        .await
        .expect("poll");
    assert_eq!(final_answer(&poll), frozen);
    let mut unseen = frozen.clone();
    unseen.message = Some("changed behind the engine".into());
    rig.change_stored_answer_unlogged("memo", &unseen).await;
    let kept = rig
        .engine
        .create(MERCHANT, create("memo", 1_500))
        .await
        .expect("poll");
    assert_eq!(final_answer(&kept), frozen, "answered from memory");
    // A change through the store: the next poll reads the row again.
    let mut changed = frozen.clone();
    changed.message = Some("changed through the store".into());
    rig.change_stored_answer("memo", &changed).await;
    let read = rig
        .engine
        .create(MERCHANT, create("memo", 1_500))
        .await
        .expect("poll");
    assert_eq!(final_answer(&read), changed, "served after its row changed");
    // Not the same request: the engine decides, as without the memory.
    let mut other = create("memo", 1_500);
    other.transaction_id = "tx-another".into();
    let refused = rig.engine.create(MERCHANT, other).await;
    assert!(
        matches!(
            refused,
            Err(super::EngineError::Mismatch {
                field: "transactionId",
                ..
            })
        ),
        "{refused:?}"
    );
    // Another merchant's paymentId is another payment.
    let theirs = rig
        .engine
        .create("merchant-2", create("memo", 1_500))
        .await
        .expect("their create");
    assert_eq!(theirs.next, super::NextStep::NameTerminal);
}

#[tokio::test(start_paused = true)]
async fn a_kept_reply_never_keeps_a_named_terminal_from_its_charge() {
    let rig = rig().await;
    rig.terminal
        .answer_sale(SaleAnswer::Outcome(approval("named")));
    let first = rig
        .engine
        .create(MERCHANT, create("named", 900))
        .await
        .expect("create");
    assert_eq!(first.next, super::NextStep::NameTerminal);
    // Polled before the Sales App names the terminal: kept.
    let poll = rig
        .engine
        .create(MERCHANT, create("named", 900))
        .await
        .expect("poll");
    assert_eq!(poll.next, super::NextStep::NameTerminal);
    rig.engine
        .bind_terminal("named", &poll.payment.submit_token, SERIAL)
        .await
        .expect("bound");
    // The next poll is the one that starts the charge.
    let starts = rig
        .engine
        .create(MERCHANT, create("named", 900))
        .await
        .expect("poll");
    assert_eq!(starts.next, super::NextStep::AwaitResult);
    assert_eq!(starts.payment.state, PaymentState::Charging);
    rig.until("named", PaymentState::Approved).await;
    assert_eq!(rig.charges(), 1, "one charge");
}

#[tokio::test(start_paused = true)]
async fn a_final_payment_found_by_a_poll_is_kept_and_a_purged_one_never_served() {
    let rig = rig().await;
    rig.name_terminal("gone", 700).await;
    // Cancelled before its charge: final through the cancel, kept by the next poll.
    rig.engine
        .cancel(MERCHANT, "gone", "rq-1")
        .await
        .expect("cancelled");
    let poll = rig
        .engine
        .create(MERCHANT, create("gone", 700))
        .await
        .expect("poll");
    let frozen = final_answer(&poll);
    let mut changed = frozen.clone();
    changed.message = Some("changed behind the engine".into());
    rig.change_stored_answer_unlogged("gone", &changed).await;
    let kept = rig
        .engine
        .create(MERCHANT, create("gone", 700))
        .await
        .expect("poll");
    assert_eq!(final_answer(&kept), frozen, "answered from memory");
    // The retention purge deletes it: the next Create is a new payment, as without the memory.
    let purged = rig
        .engine
        .store
        .call(|c| {
            c.execute(
                "UPDATE outbox SET state = 'delivered', delivered_at = 0 WHERE payment_id = 'gone'",
                [],
            )?;
            crate::store::maintenance::purge(c, i64::MAX)
        })
        .await
        .expect("purged");
    assert_eq!(purged.payments, 1);
    let anew = rig
        .engine
        .create(MERCHANT, create("gone", 700))
        .await
        .expect("create");
    assert_eq!(anew.next, super::NextStep::NameTerminal);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_approval_answers_approved_from_memory_as_the_database_does() {
    let rig = rig().await;
    rig.terminal
        .answer_sale(SaleAnswer::Outcome(approval("undo")));
    rig.start_sale("undo", 2_000).await;
    rig.until("undo", PaymentState::Approved).await;
    rig.engine
        .cancel(MERCHANT, "undo", "rq-cancel")
        .await
        .expect("cancel");
    let p = rig.until("undo", PaymentState::Cancelled).await;
    let stored = super::PaymentAnswer::final_of(&p).expect("final");
    assert_eq!(
        stored.status,
        PppStatus::Approved,
        "the frozen answer stays"
    );
    let poll = rig
        .engine
        .create(MERCHANT, create("undo", 2_000))
        .await
        .expect("poll");
    assert_eq!(final_answer(&poll), stored);
}
