//! The driver on real folders, with the test playing the TEF client by hand (real time, short
//! acknowledgement limits: the files are real).

use std::sync::Arc;

use firmware_protocols::tef_dial::{Answer, Operation, Record, Request, Status};
use tokio::sync::broadcast;

use super::*;
use crate::clock::{Clock, SystemClock};
use crate::money::Currency;

struct Rig {
    dir: tempfile::TempDir,
    folders: Folders,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let (req, resp) = (dir.path().join("req"), dir.path().join("resp"));
        std::fs::create_dir(&req).expect("req");
        std::fs::create_dir(&resp).expect("resp");
        Rig {
            folders: Folders::new(req, resp),
            dir,
        }
    }

    fn driver(&self) -> TefDialDriver {
        TefDialDriver::new(
            "lane-3",
            self.folders.clone(),
            Duration::from_millis(600),
            self.dir.path().join("tef.journal"),
            Arc::new(SystemClock),
        )
        .expect("driver")
    }

    fn request_files(&self) -> Vec<String> {
        names(self.folders.request_dir())
    }

    fn response_files(&self) -> Vec<String> {
        names(self.folders.response_dir())
    }

    /// Writes a whole file in the response folder, as the client does.
    fn client_writes(&self, name: &str, record: &Record) {
        let tmp = self.folders.response_dir().join("client.tmp");
        std::fs::write(&tmp, record.encode().expect("encode")).expect("write");
        std::fs::rename(tmp, self.folders.response_dir().join(name)).expect("rename");
    }

    /// Plays the client for one request: takes it and acknowledges it; returns it.
    async fn acknowledge_next(&self) -> Request {
        let path = self.folders.request_dir().join("IntPos.001");
        for _ in 0..200 {
            if let Ok(bytes) = std::fs::read(&path)
                && let Ok(record) = Record::parse(&bytes)
            {
                std::fs::remove_file(&path).expect("take");
                let request = Request::from_record(&record).expect("a request");
                let status = Status {
                    operation: request.operation(),
                    id: request.id(),
                };
                self.client_writes("IntPos.Sts", &status.to_record());
                return request;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no request came");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

fn sale(reference: &str, amount_minor: i64) -> SaleRequest {
    SaleRequest {
        reference: reference.to_string(),
        amount_minor,
        currency: Currency::parse("BRL").expect("BRL"),
        function: CardFunction::Credit,
        installments: None,
    }
}

fn approval(id: RequestId, amount_cents: u64) -> Answer {
    let mut answer = Answer::new(Operation::Crt, id, "0");
    answer.network = Some("REDE".into());
    answer.nsu = Some("000123".into());
    answer.authorization_code = Some("001234".into());
    answer.amount_cents = Some(amount_cents);
    answer.finalization = Some("FIN-7".into());
    answer.brand = Some("VISA".into());
    answer.masked_pan = Some("476173******0010".into());
    answer.date = Some("30112026".into());
    answer.time = Some("101500".into());
    answer
}

fn prompts() -> PromptSink {
    PromptSink::new("lane-3", broadcast::channel(16).0)
}

#[test]
fn only_the_first_six_and_last_four_digits_are_kept() {
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        first_and_last_digits("476173******0010"),
        pair("476173", "0010")
    );
    assert_eq!(
        first_and_last_digits("4444333322221111"),
        pair("444433", "1111")
    );
    assert_eq!(first_and_last_digits("************0010"), pair("", ""));
    assert_eq!(first_and_last_digits("0010"), pair("", ""));
    assert_eq!(first_and_last_digits(""), pair("", ""));
}

/// Ids are above every journaled one and above the clock's seconds: never reused, across
/// restarts too, even with the journal lost.
#[test]
fn request_ids_are_never_reused() {
    let rig = Rig::new();
    let mut driver = rig.driver();
    let seconds = u64::try_from(SystemClock.now_ms() / 1000).expect("now");
    assert!(driver.next_id() >= seconds);
    let id = seconds + 1000;
    driver
        .record(Entry::Request {
            id,
            operation: "CRT".into(),
            reference: Some("p".into()),
            sale: None,
            amount_minor: Some(100),
            at: 0,
        })
        .expect("journal");
    assert_eq!(rig.driver().next_id(), id + 1, "after a restart");
}

/// A client that never acknowledges: the request is taken back, the sale is not sent.
#[tokio::test]
async fn an_unacknowledged_request_is_taken_back_and_not_sent() {
    let rig = Rig::new();
    let mut driver = rig.driver();
    let result = driver
        .sale(&sale("p-1", 1250), &prompts(), &CancellationToken::new())
        .await;
    assert!(
        matches!(&result, Err(DriverError::NotSent(why)) if why.contains("did not acknowledge")),
        "{result:?}"
    );
    assert!(rig.request_files().is_empty(), "{:?}", rig.request_files());
    assert!(driver.sent().expect("sent").is_empty(), "nothing was sent");
    // And again after a restart: the journal says it was withdrawn.
    let mut again = rig.driver();
    let inquiry = SaleInquiry {
        reference: "p-1".into(),
        amount_minor: 1250,
        currency: "BRL".into(),
        sent_at_ms: 0,
        cancel_requested: false,
    };
    assert_eq!(
        again.query_sale(&inquiry).await.expect("query"),
        SaleQuery::NotFound
    );
}

/// Killed while its request waited in the folder: recovery takes it back (the client never had
/// it) and the sale never happened. Once the client took it, recovery waits.
#[tokio::test]
async fn recovery_takes_back_a_request_never_taken_and_waits_for_one_taken() {
    let rig = Rig::new();
    let inquiry = |reference: &str| SaleInquiry {
        reference: reference.into(),
        amount_minor: 500,
        currency: "BRL".into(),
        sent_at_ms: 0,
        cancel_requested: false,
    };
    for (reference, taken) in [("waiting", false), ("taken", true)] {
        let mut driver = rig.driver();
        let id = driver.next_id();
        let request = Request::Crt(sale_request(id, &sale(reference, 500)));
        driver
            .send(&request, Some(reference), None, Some(500))
            .await
            .expect("sent");
        if taken {
            rig.acknowledge_next().await;
        }
        drop(driver);
        let mut restarted = rig.driver();
        let answer = restarted
            .query_sale(&inquiry(reference))
            .await
            .expect("query");
        if taken {
            assert_eq!(answer, SaleQuery::InProgress);
        } else {
            assert_eq!(answer, SaleQuery::NotFound);
            assert!(rig.request_files().is_empty(), "{:?}", rig.request_files());
        }
        std::fs::remove_file(rig.folders.response_dir().join("IntPos.Sts")).ok();
    }
}

/// An answer found at recovery is journaled, then its files removed; it stays provisional
/// (no new sale) until the database's verdict: keep → CNF echoing network, NSU and token.
#[tokio::test]
async fn an_approval_is_confirmed_only_with_the_verdict_and_blocks_new_sales_until_then() {
    let rig = Rig::new();
    let mut driver = rig.driver();
    let id = driver.next_id();
    let request = Request::Crt(sale_request(id, &sale("p-ok", 990)));
    driver
        .send(&request, Some("p-ok"), None, Some(990))
        .await
        .expect("sent");
    rig.acknowledge_next().await;
    rig.client_writes("IntPos.001", &approval(id, 990).to_record());
    let mut driver = rig.driver();
    let inquiry = SaleInquiry {
        reference: "p-ok".into(),
        amount_minor: 990,
        currency: "BRL".into(),
        sent_at_ms: 0,
        cancel_requested: false,
    };
    let SaleQuery::Completed(SaleOutcome::Approved(approved)) =
        driver.query_sale(&inquiry).await.expect("query")
    else {
        panic!("not an approval");
    };
    assert_eq!(approved.nsu, "000123");
    assert_eq!(approved.authorization_code, "001234");
    assert_eq!(
        (
            approved.first_digits.as_str(),
            approved.last_digits.as_str()
        ),
        ("476173", "0010")
    );
    assert!(
        rig.response_files().is_empty(),
        "{:?}",
        rig.response_files()
    );
    let journal = std::fs::read_to_string(rig.dir.path().join("tef.journal")).expect("journal");
    assert!(
        !journal.contains("476173******0010"),
        "only first/last kept"
    );
    assert_eq!(
        rig.driver().unconfirmed(),
        [("p-ok".to_string(), id.to_string())]
    );

    let refused = driver
        .sale(&sale("p-next", 100), &prompts(), &CancellationToken::new())
        .await;
    assert!(
        matches!(&refused, Err(DriverError::NotSent(why)) if why.contains("provisional")),
        "{refused:?}"
    );
    assert!(rig.request_files().is_empty(), "no CRT while one waits");

    let (confirmed, request) = tokio::join!(
        driver.committed("p-ok", Verdict::Keep),
        rig.acknowledge_next()
    );
    confirmed.expect("confirmed");
    let Request::Cnf(cnf) = request else {
        panic!("{request:?}");
    };
    assert_eq!(
        (
            cnf.network.as_str(),
            cnf.nsu.as_str(),
            cnf.finalization.as_deref()
        ),
        ("REDE", "000123", Some("FIN-7"))
    );
    assert!(driver.unconfirmed().is_empty());
    assert!(rig.driver().unconfirmed().is_empty(), "journaled");
}

/// An approval the database did not keep is undone (NCN), never confirmed.
#[tokio::test]
async fn an_approval_the_database_did_not_keep_is_undone() {
    let rig = Rig::new();
    let mut driver = rig.driver();
    let (request, sink, abort) = (sale("p-undo", 700), prompts(), CancellationToken::new());
    let (outcome, _) = tokio::join!(driver.sale(&request, &sink, &abort), async {
        let request = rig.acknowledge_next().await;
        rig.client_writes("IntPos.001", &approval(request.id(), 700).to_record());
    });
    assert!(
        matches!(outcome, Ok(SaleOutcome::Approved(_))),
        "{outcome:?}"
    );
    let (undone, request) = tokio::join!(
        driver.committed("p-undo", Verdict::Undo),
        rig.acknowledge_next()
    );
    undone.expect("undone");
    assert!(matches!(request, Request::Ncn(_)), "{request:?}");
    assert!(driver.unconfirmed().is_empty());
}

/// An approval of another amount than asked is never reported: the driver undoes it itself.
#[tokio::test]
async fn an_approval_of_another_amount_is_undone_and_declined() {
    let rig = Rig::new();
    let mut driver = rig.driver();
    let (request, sink, abort) = (sale("p-other", 800), prompts(), CancellationToken::new());
    let (outcome, undo) = tokio::join!(driver.sale(&request, &sink, &abort), async {
        let request = rig.acknowledge_next().await;
        rig.client_writes("IntPos.001", &approval(request.id(), 8000).to_record());
        rig.acknowledge_next().await
    });
    let outcome = outcome.expect("outcome");
    assert!(
        matches!(&outcome, SaleOutcome::Declined { code, .. } if code == "amount-mismatch"),
        "{outcome:?}"
    );
    assert!(matches!(undo, Request::Ncn(_)), "{undo:?}");
    assert!(driver.unconfirmed().is_empty());
}

/// Killed after journaling the intent, before the file was written: the client never
/// acknowledges what it never had, so after its acknowledgement time the sale never happened.
#[tokio::test]
async fn a_request_journaled_but_never_written_is_not_waited_for_forever() {
    let rig = Rig::new();
    let mut driver = rig.driver();
    let id = driver.next_id();
    driver
        .record(Entry::Request {
            id,
            operation: "CRT".into(),
            reference: Some("p-unwritten".into()),
            sale: None,
            amount_minor: Some(300),
            at: 0,
        })
        .expect("journal");
    let mut restarted = rig.driver();
    let inquiry = SaleInquiry {
        reference: "p-unwritten".into(),
        amount_minor: 300,
        currency: "BRL".into(),
        sent_at_ms: 0,
        cancel_requested: false,
    };
    assert_eq!(
        restarted.query_sale(&inquiry).await.expect("query"),
        SaleQuery::NotFound
    );
    assert!(restarted.sent().expect("sent").is_empty());
}

/// A keep verdict was journaled and its CNF may have reached the client (the daemon stopped
/// before its acknowledgement): a cancel then finishes the CNF and cancels the sale (CNC),
/// never an NCN the client would ignore while the sale stands.
#[tokio::test]
async fn a_cancel_after_a_keep_verdict_confirms_then_cancels() {
    let rig = Rig::new();
    let mut driver = rig.driver();
    let id = driver.next_id();
    driver
        .record(Entry::Request {
            id,
            operation: "CRT".into(),
            reference: Some("p-kept".into()),
            sale: None,
            amount_minor: Some(990),
            at: 0,
        })
        .expect("journal");
    driver
        .record(Entry::Answer {
            id,
            answer: Box::new(Kept::of(&approval(id, 990))),
        })
        .expect("journal");
    driver
        .record(Entry::Verdict {
            sale: id,
            keep: true,
            operation: None,
        })
        .expect("journal");
    let mut driver = rig.driver();
    let reversal = OperationRequest {
        reference: "rv-1".into(),
        sale_ref: id.to_string(),
        sale_amount_minor: 990,
        sale_at_ms: 0,
        amount_minor: 990,
        currency: "BRL".into(),
    };
    let (outcome, requests) = tokio::join!(driver.reverse(&reversal), async {
        let cnf = rig.acknowledge_next().await;
        let cnc = rig.acknowledge_next().await;
        let mut answer = approval(cnc.id(), 990);
        answer.operation = Operation::Cnc;
        answer.nsu = Some("000124".into());
        rig.client_writes("IntPos.001", &answer.to_record());
        let cnc_cnf = rig.acknowledge_next().await;
        [cnf.operation(), cnc.operation(), cnc_cnf.operation()]
    });
    assert_eq!(outcome.expect("reversal"), OperationOutcome::Done);
    assert_eq!(requests, [Operation::Cnf, Operation::Cnc, Operation::Cnf]);
}

/// Another currency than the real is declined without touching the client.
#[tokio::test]
async fn another_currency_is_declined_without_a_request() {
    let rig = Rig::new();
    let mut driver = rig.driver();
    let euros = SaleRequest {
        currency: Currency::parse("EUR").expect("EUR"),
        ..sale("p-eur", 1000)
    };
    let outcome = driver
        .sale(&euros, &prompts(), &CancellationToken::new())
        .await
        .expect("an answer");
    assert!(
        matches!(&outcome, SaleOutcome::Declined { code, .. } if code == "currency-unsupported"),
        "{outcome:?}"
    );
    assert!(rig.request_files().is_empty());
    assert!(driver.sent().expect("sent").is_empty());
}

/// An approval the client says is captured already (`729-000 = 1`) has no confirmation step:
/// kept, nothing is sent; not kept, only a cancellation (CNC) undoes it.
#[tokio::test]
async fn a_captured_approval_not_kept_is_cancelled() {
    let rig = Rig::new();
    let mut driver = rig.driver();
    let (request, sink, abort) = (sale("p-captured", 450), prompts(), CancellationToken::new());
    let (outcome, _) = tokio::join!(driver.sale(&request, &sink, &abort), async {
        let request = rig.acknowledge_next().await;
        let mut answer = approval(request.id(), 450);
        answer.confirmation = firmware_protocols::tef_dial::ConfirmationNeed::NotRequired;
        rig.client_writes("IntPos.001", &answer.to_record());
    });
    assert!(
        matches!(outcome, Ok(SaleOutcome::Approved(_))),
        "{outcome:?}"
    );
    assert!(driver.unconfirmed().is_empty(), "nothing to confirm");
    let (undone, requests) = tokio::join!(driver.committed("p-captured", Verdict::Undo), async {
        let cnc = rig.acknowledge_next().await;
        let mut answer = approval(cnc.id(), 450);
        answer.operation = Operation::Cnc;
        rig.client_writes("IntPos.001", &answer.to_record());
        let cnf = rig.acknowledge_next().await;
        [cnc.operation(), cnf.operation()]
    });
    undone.expect("undone");
    assert_eq!(requests, [Operation::Cnc, Operation::Cnf]);
}
