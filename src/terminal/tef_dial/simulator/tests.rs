//! The simulated TEF client on real temporary folders, in paused time: the test plays
//! posbridge's side of the file exchange.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use firmware_protocols::tef_dial::message::field;
use firmware_protocols::tef_dial::{
    Answer, Cancellation, CardType, Confirmation, ConfirmationNeed, FieldId, Financing,
    Installments, Operation, ParseError, Record, Request, Sale, Status,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{FaultKind, SimulatorOptions, serve};

struct Harness {
    _dir: tempfile::TempDir,
    request_dir: PathBuf,
    response_dir: PathBuf,
    record: PathBuf,
    client: JoinHandle<anyhow::Result<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.client.abort();
    }
}

async fn start(faults: &[FaultKind]) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let request_dir = dir.path().join("req");
    let response_dir = dir.path().join("resp");
    std::fs::create_dir(&request_dir).unwrap();
    std::fs::create_dir(&response_dir).unwrap();
    let record = dir.path().join("client.jsonl");
    let options = SimulatorOptions {
        faults: faults.to_vec(),
        record: Some(record.clone()),
        ..SimulatorOptions::new(request_dir.clone(), response_dir.clone())
    };
    let (ready, announced) = oneshot::channel();
    let client = tokio::spawn(serve(options, ready));
    let line = announced.await.unwrap();
    assert!(line.starts_with("watching "), "{line}");
    Harness {
        _dir: dir,
        request_dir,
        response_dir,
        record,
        client,
    }
}

impl Harness {
    /// Writes the request as posbridge does: `IntPos.tmp`, renamed to `IntPos.001`.
    fn send(&self, request: &Request) {
        self.send_bytes(&request.to_record().encode().unwrap());
    }

    fn send_bytes(&self, bytes: &[u8]) {
        let temporary = self.request_dir.join("IntPos.tmp");
        std::fs::write(&temporary, bytes).unwrap();
        std::fs::rename(&temporary, self.request_dir.join("IntPos.001")).unwrap();
    }

    fn request_file(&self) -> PathBuf {
        self.request_dir.join("IntPos.001")
    }

    /// Waits for `IntPos.Sts`, reads and removes it.
    async fn status(&self) -> Status {
        let record = take_whole(&self.response_dir.join("IntPos.Sts")).await;
        Status::from_record(&record).unwrap()
    }

    /// Waits for a whole answer `IntPos.001`, reads and removes it.
    async fn answer(&self) -> (Answer, Record) {
        let record = take_whole(&self.response_dir.join("IntPos.001")).await;
        (Answer::from_record(&record).unwrap(), record)
    }

    /// Sends a request and waits for its acknowledgement (and answer, for CRT and CNC).
    async fn exchange(&self, request: &Request) -> Option<(Answer, Record)> {
        self.send(request);
        let status = self.status().await;
        assert_eq!(
            status,
            Status {
                operation: request.operation(),
                id: request.id()
            }
        );
        if request.expects_answer() {
            let (answer, record) = self.answer().await;
            assert_eq!(
                (answer.operation, answer.id),
                (request.operation(), request.id())
            );
            Some((answer, record))
        } else {
            None
        }
    }

    /// The client's journal: (reference, approved, state) per sale.
    fn record(&self) -> Vec<(String, bool, String)> {
        std::fs::read_to_string(&self.record)
            .unwrap()
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(value["kind"], "sale");
                (
                    value["reference"].as_str().unwrap().to_owned(),
                    value["approved"].as_bool().unwrap(),
                    value["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// Polls until `path` holds a whole record (an incomplete one is waited out), then removes it.
async fn take_whole(path: &Path) -> Record {
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            match Record::parse(&bytes) {
                Ok(record) => {
                    std::fs::remove_file(path).unwrap();
                    return record;
                }
                Err(ParseError::Incomplete) => {}
                Err(error) => panic!("{}: {error}", path.display()),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sale(id: u64, reference: &str, amount_cents: u64, card_type: CardType) -> Request {
    Request::Crt(Sale {
        id,
        document: reference.to_owned(),
        amount_cents,
        card_type,
        installments: None,
    })
}

fn confirmation_of(id: u64, answer: &Answer) -> Confirmation {
    Confirmation {
        id,
        network: answer.network.clone().unwrap(),
        nsu: answer.nsu.clone().unwrap(),
        finalization: answer.finalization.clone(),
    }
}

fn entry(reference: &str, approved: bool, state: &str) -> (String, bool, String) {
    (reference.to_owned(), approved, state.to_owned())
}

#[tokio::test(start_paused = true)]
async fn atv_is_acknowledged_with_the_status_file_only() {
    let client = start(&[]).await;
    assert!(client.exchange(&Request::Atv { id: 1 }).await.is_none());
    assert!(!client.request_file().exists());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!client.response_dir.join("IntPos.001").exists());
}

#[tokio::test(start_paused = true)]
async fn an_approved_credit_sale_has_realistic_fields_and_waits_for_its_cnf() {
    let client = start(&[]).await;
    let (answer, record) = client
        .exchange(&sale(10, "pay-1", 1250, CardType::Credit))
        .await
        .unwrap();
    assert!(answer.approved());
    assert_eq!(answer.amount_cents, Some(1250));
    assert_eq!(answer.network.as_deref(), Some("REDECARD"));
    assert_eq!(answer.transaction_type.as_deref(), Some("10"));
    assert_eq!(answer.nsu.as_deref(), Some("000000001"));
    let authorization = answer.authorization_code.clone().unwrap();
    assert!(authorization.starts_with('0') && authorization.len() == 6);
    assert_eq!(answer.date.as_ref().map(String::len), Some(8));
    assert_eq!(answer.time.as_ref().map(String::len), Some(6));
    assert!(
        answer
            .finalization
            .as_deref()
            .unwrap()
            .ends_with("000000001")
    );
    assert_eq!(answer.brand.as_deref(), Some("VISA"));
    assert_eq!(answer.masked_pan.as_deref(), Some("476173******0010"));
    assert_eq!(answer.card_type, Some(CardType::Credit));
    assert_eq!(answer.confirmation, ConfirmationNeed::Required);
    assert!(!answer.receipt.is_empty());
    assert!(!answer.customer_receipt.is_empty());
    assert!(!answer.merchant_receipt.is_empty());
    assert!(
        answer
            .receipt
            .iter()
            .any(|line| line.contains("476173******0010")),
        "the receipt shows the masked card"
    );
    assert_eq!(record.get(field::DOCUMENT), Some("pay-1"));
    assert_eq!(client.record(), [entry("pay-1", true, "pending")]);

    client
        .exchange(&Request::Cnf(confirmation_of(11, &answer)))
        .await;
    assert_eq!(client.record(), [entry("pay-1", true, "confirmed")]);
}

#[tokio::test(start_paused = true)]
async fn debit_and_installments_are_echoed() {
    let client = start(&[]).await;
    let (debit, _) = client
        .exchange(&sale(1, "pay-d", 500, CardType::Debit))
        .await
        .unwrap();
    assert_eq!(debit.card_type, Some(CardType::Debit));
    assert_eq!(debit.transaction_type.as_deref(), Some("20"));
    assert_eq!(debit.masked_pan.as_deref(), Some("502121******0016"));
    client
        .exchange(&Request::Cnf(confirmation_of(2, &debit)))
        .await;

    let installments = Request::Crt(Sale {
        id: 3,
        document: "pay-i".to_owned(),
        amount_cents: 30_000,
        card_type: CardType::Credit,
        installments: Some(Installments {
            count: 3,
            financing: Financing::Issuer,
        }),
    });
    let (answer, record) = client.exchange(&installments).await.unwrap();
    assert!(answer.approved());
    assert_eq!(answer.transaction_type.as_deref(), Some("12"));
    assert_eq!(record.get(field::INSTALLMENTS), Some("3"));
    assert_eq!(record.get(field::FINANCING), Some("1"));
    assert_eq!(record.get(FieldId::new(732, 0)), Some("2"));
}

#[tokio::test(start_paused = true)]
async fn outcomes_follow_the_cents() {
    let client = start(&[]).await;
    let (declined, _) = client
        .exchange(&sale(1, "pay-01", 1001, CardType::Credit))
        .await
        .unwrap();
    assert!(!declined.approved());
    assert_eq!(declined.status, "5");
    assert_eq!(
        declined.operator_message.as_deref(),
        Some("TRANSACAO NEGADA PELO EMISSOR")
    );
    assert_eq!(declined.nsu, None);
    let (cancelled, _) = client
        .exchange(&sale(2, "pay-02", 1002, CardType::Credit))
        .await
        .unwrap();
    assert_eq!(cancelled.status, "9");

    // .03: acknowledged, never answered.
    client.send(&sale(3, "pay-03", 1003, CardType::Credit));
    assert_eq!(client.status().await.id, 3);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!client.response_dir.join("IntPos.001").exists());
    assert_eq!(
        client.record(),
        [
            entry("pay-01", false, "declined"),
            entry("pay-02", false, "declined"),
            entry("pay-03", false, "undone"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_crt_undoes_the_pending_approval_and_ncn_undoes_too() {
    let client = start(&[]).await;
    client
        .exchange(&sale(1, "pay-a", 1000, CardType::Credit))
        .await;
    let (second, _) = client
        .exchange(&sale(2, "pay-b", 2000, CardType::Credit))
        .await
        .unwrap();
    assert_eq!(
        client.record(),
        [
            entry("pay-a", true, "undone"),
            entry("pay-b", true, "pending")
        ]
    );
    client
        .exchange(&Request::Ncn(confirmation_of(3, &second)))
        .await;
    assert_eq!(client.record()[1], entry("pay-b", true, "undone"));
}

#[tokio::test(start_paused = true)]
async fn cnc_cancels_a_confirmed_sale_and_ncn_of_the_cnc_restores_it() {
    let client = start(&[]).await;
    let (sold, _) = client
        .exchange(&sale(1, "pay-c", 1250, CardType::Credit))
        .await
        .unwrap();
    client
        .exchange(&Request::Cnf(confirmation_of(2, &sold)))
        .await;
    let cancel = |id| {
        Request::Cnc(Cancellation {
            id,
            network: sold.network.clone().unwrap(),
            nsu: sold.nsu.clone().unwrap(),
            date: sold.date.clone().unwrap(),
            time: sold.time.clone().unwrap(),
            amount_cents: 1250,
        })
    };
    let (cancellation, record) = client.exchange(&cancel(3)).await.unwrap();
    assert!(cancellation.approved());
    assert_ne!(cancellation.nsu, sold.nsu);
    assert_eq!(record.get(FieldId::new(25, 0)), sold.nsu.as_deref());
    assert_eq!(client.record(), [entry("pay-c", true, "cancelled")]);

    client
        .exchange(&Request::Ncn(confirmation_of(4, &cancellation)))
        .await;
    assert_eq!(client.record(), [entry("pay-c", true, "confirmed")]);

    let (again, _) = client.exchange(&cancel(5)).await.unwrap();
    assert!(again.approved());
    client
        .exchange(&Request::Cnf(confirmation_of(6, &again)))
        .await;
    assert_eq!(client.record(), [entry("pay-c", true, "cancelled")]);
}

#[tokio::test(start_paused = true)]
async fn cnc_of_an_unknown_or_uncancellable_sale_is_declined() {
    let client = start(&[]).await;
    let unknown = Request::Cnc(Cancellation {
        id: 1,
        network: "REDECARD".to_owned(),
        nsu: "000000999".to_owned(),
        date: "01012026".to_owned(),
        time: "120000".to_owned(),
        amount_cents: 100,
    });
    let (answer, _) = client.exchange(&unknown).await.unwrap();
    assert!(!answer.approved());

    let (sold, _) = client
        .exchange(&sale(2, "pay-6", 1006, CardType::Credit))
        .await
        .unwrap();
    client
        .exchange(&Request::Cnf(confirmation_of(3, &sold)))
        .await;
    let needs_card = Request::Cnc(Cancellation {
        id: 4,
        network: sold.network.clone().unwrap(),
        nsu: sold.nsu.clone().unwrap(),
        date: sold.date.clone().unwrap(),
        time: sold.time.clone().unwrap(),
        amount_cents: 1006,
    });
    let (answer, _) = client.exchange(&needs_card).await.unwrap();
    assert!(!answer.approved());
    assert_eq!(client.record(), [entry("pay-6", true, "confirmed")]);
}

#[tokio::test(start_paused = true)]
async fn an_incomplete_request_is_left_until_it_is_whole() {
    let client = start(&[]).await;
    let bytes = sale(1, "pay-w", 1000, CardType::Credit)
        .to_record()
        .encode()
        .unwrap();
    let trailer = bytes.len() - b"999-999 = 0\r\n".len();
    std::fs::write(client.request_file(), &bytes[..trailer]).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        client.request_file().exists(),
        "left alone while incomplete"
    );
    assert!(!client.response_dir.join("IntPos.Sts").exists());

    std::fs::write(client.request_file(), &bytes).unwrap();
    assert_eq!(client.status().await.id, 1);
    assert!(client.answer().await.0.approved());
}

#[tokio::test(start_paused = true)]
async fn an_invalid_sale_is_acknowledged_and_declined() {
    let client = start(&[]).await;
    let record = Record::new()
        .with(field::HEADER, "CRT")
        .with(field::ID, "1")
        .with(field::DOCUMENT, "pay-usd")
        .with(field::AMOUNT, "1000")
        .with(field::CURRENCY, "1")
        .with(field::CARD_TYPE, "1");
    client.send_bytes(&record.encode().unwrap());
    assert_eq!(client.status().await.id, 1);
    let (answer, _) = client.answer().await;
    assert!(!answer.approved());
    assert_eq!(
        answer.operator_message.as_deref(),
        Some("REQUISICAO INVALIDA")
    );
}

#[tokio::test(start_paused = true)]
async fn fault_offline_leaves_one_request_alone_then_serves_the_next() {
    let client = start(&[FaultKind::Offline]).await;
    client.send(&Request::Atv { id: 1 });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(client.request_file().exists(), "never acknowledged");
    assert!(!client.response_dir.join("IntPos.Sts").exists());

    // posbridge gives up on it and removes its request; the next one is served.
    std::fs::remove_file(client.request_file()).unwrap();
    assert!(client.exchange(&Request::Atv { id: 2 }).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn fault_slow_ack_acknowledges_after_the_delay() {
    let client = start(&[FaultKind::SlowAck]).await;
    client.send(&Request::Atv { id: 1 });
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(!client.response_dir.join("IntPos.Sts").exists());
    assert_eq!(client.status().await.id, 1);
    // Once: the next one is acknowledged at once.
    client.exchange(&Request::Atv { id: 2 }).await;
}

#[tokio::test(start_paused = true)]
async fn fault_no_answer_acknowledges_a_sale_and_never_answers_it() {
    let client = start(&[FaultKind::NoAnswer]).await;
    client.exchange(&Request::Atv { id: 1 }).await;
    client.send(&sale(2, "pay-n", 1000, CardType::Credit));
    assert_eq!(client.status().await.id, 2);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!client.response_dir.join("IntPos.001").exists());
    assert_eq!(client.record(), [entry("pay-n", false, "undone")]);
}

#[tokio::test(start_paused = true)]
async fn fault_garbage_answer_writes_a_torn_answer_before_the_whole_one() {
    let client = start(&[FaultKind::GarbageAnswer]).await;
    client.send(&sale(1, "pay-g", 1000, CardType::Credit));
    client.status().await;
    let answer = client.response_dir.join("IntPos.001");
    let torn = loop {
        if let Ok(bytes) = std::fs::read(&answer) {
            break bytes;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(Record::parse(&torn), Err(ParseError::Incomplete));
    let (whole, _) = client.answer().await;
    assert!(whole.approved());
    assert_eq!(whole.operation, Operation::Crt);
}
