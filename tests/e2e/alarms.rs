//! Alarms a person can act on (issue 9): plain words with the next step, resolving a payment
//! the terminal could not, acknowledging, the history, and doctor's verdict.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::zvt::{ZvtTerminal, daemon_for};
use crate::zvt_recovery::kill_mid_sale;

const FINAL: Duration = Duration::from_secs(40);
const ANA_TOKEN: &str = "ana-admin-token-SECRET-41d2";

/// What an alarm text must never show: an internal error string instead of words.
const INTERNAL: [&str; 8] = [
    "Some(",
    "None",
    "ResultCode(",
    "Aborted(",
    "Refused(",
    "TimedOut",
    "Error(",
    "{",
];

fn alarms_json(daemon: &Daemon, all: bool) -> Vec<Value> {
    let mut args = vec!["--json"];
    if all {
        args.push("--all");
    }
    let (code, out) = daemon.admin_cli("alarms", &args);
    assert_eq!(code, Some(0), "{out}");
    let parsed: Value = serde_json::from_str(out.trim()).expect("alarms json");
    parsed["alarms"].as_array().expect("alarms").clone()
}

fn doctor(daemon: &Daemon) -> String {
    let (_, out) = daemon.admin_cli("doctor", &[]);
    out
}

fn assert_plain(text: &str) {
    for bad in INTERNAL {
        assert!(!text.contains(bad), "`{bad}` in an alarm text: {text}");
    }
}

/// A terminal that lost its memory leaves a payment unresolved; store IT checks the receipt
/// and resolves it by hand, as a named admin: the result and its callback go out, who/when/why
/// are recorded, the alarm is settled in their name, and doctor is content again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolved_payment_is_resolved_by_hand_and_called_back() {
    let old = ZvtTerminal::tcp(&["--approve-after-ms", "3000"]).await;
    let port = old.port();
    let daemon = daemon_for(
        &old,
        Options {
            admin: true,
            extra_config: format!(
                "[store]\ntimezone = \"America/Sao_Paulo\"\n\n[admin.tokens]\nana = \"{ANA_TOKEN}\"\n"
            ),
            ..Options::default()
        },
    )
    .await;
    let receiver = CallbackReceiver::start(0).await;
    assert_eq!(
        pay(&daemon, &receiver, "al-before", json!(10)).await["status"],
        "approved"
    );
    let lost = create_body(
        "al-lost",
        json!(42),
        "Venda Direta Credito",
        &receiver.url_for("al-lost"),
    );
    let daemon = kill_mid_sale(daemon, &lost).await;
    drop(old);
    let _reset = ZvtTerminal::tcp_at(port, &["--approve-after-ms", "300"]).await;
    let daemon = daemon.restart().await;
    assert!(
        daemon
            .wait_log("ALARM: the terminal can no longer tell", FINAL)
            .await
    );

    // What store IT reads: plain words, the amount as BRL writes it, the next step.
    let open = alarms_json(&daemon, false);
    let alarm = open
        .iter()
        .find(|a| a["paymentId"] == "al-lost")
        .unwrap_or_else(|| panic!("{open:?}"));
    assert_eq!(alarm["kind"], "unresolved");
    let text = alarm["text"].as_str().expect("text");
    assert!(
        text.contains("R$ 42,00") && text.contains("resolve as approved"),
        "{text}"
    );
    assert_plain(text);
    let (code, listed) = daemon.admin_cli("alarms", &[]);
    assert_eq!(code, Some(1), "something needs a person: {listed}");
    assert!(
        listed.contains("al-lost") && listed.contains(" -03 "),
        "{listed}"
    );
    assert!(
        doctor(&daemon).contains("FAIL  alarms"),
        "{}",
        doctor(&daemon)
    );

    // A reason is required; only an unresolved payment can be resolved.
    let (code, out) = daemon.admin_cli(
        "payments",
        &["resolve", "al-lost", "approved", "--reason", ""],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("reason"), "{out}");
    let (code, out) = daemon.admin_cli(
        "payments",
        &["resolve", "al-before", "denied", "--reason", "x"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("409") && out.contains("approved"), "{out}");

    let (code, out) = daemon.admin_cli(
        "payments",
        &[
            "resolve",
            "al-lost",
            "approved",
            "--reason",
            "receipt 0042 shows approved",
            "--as",
            "ana",
            "--card-brand",
            "Visa",
            "--first-digits",
            "444433",
            "--last-digits",
            "1111",
            "--authorization-id",
            "A001234",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let gateway = daemon.gateway();
    let answer = gateway.create(&lost).await;
    assert_eq!(answer["status"], "approved", "{answer}");
    assert_eq!(answer["authorizationId"], "A001234");
    assert_eq!(answer["lastDigits"], "1111");
    assert!(
        !answer.to_string().contains("ana") && !answer.to_string().contains("0042"),
        "the person and the reason stay in the store: {answer}"
    );
    let callbacks = receiver.wait_for("al-lost", FINAL).await;
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].2, answer);

    let (code, shown) = daemon.admin_cli("payments", &["show", "al-lost"]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("by hand as approved by ana")
            && shown.contains("receipt 0042 shows approved"),
        "{shown}"
    );
    assert!(!shown.contains(ANA_TOKEN), "never the token");

    // Settled in ana's name, kept in the history; nothing left open; doctor content.
    assert!(
        alarms_json(&daemon, false)
            .iter()
            .all(|a| a["paymentId"] != "al-lost")
    );
    let history = alarms_json(&daemon, true);
    let settled = history
        .iter()
        .find(|a| a["paymentId"] == "al-lost" && a["kind"] == "unresolved")
        .unwrap_or_else(|| panic!("{history:?}"));
    assert_eq!(settled["ackedBy"], "ana");
    assert!(
        doctor(&daemon).contains("ok    alarms"),
        "{}",
        doctor(&daemon)
    );
    let (code, again) = daemon.admin_cli(
        "payments",
        &[
            "resolve",
            "al-lost",
            "denied",
            "--reason",
            "changed my mind",
        ],
    );
    assert_eq!(
        code,
        Some(1),
        "a final payment is not resolved twice: {again}"
    );
}

/// While the terminal may still tell (`unknown`), a person cannot overrule it; once store IT
/// takes the terminal out of the configuration, what it had becomes `unresolved` (a person
/// decides from its receipts) and what never reached it is denied, both called back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_terminal_leaves_its_sale_to_a_person_never_a_guess() {
    let terminal = ZvtTerminal::tcp(&["--approve-after-ms", "4000"]).await;
    let daemon = daemon_for(
        &terminal,
        Options {
            admin: true,
            ..Options::default()
        },
    )
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let sent = create_body(
        "rm-sent",
        json!(42),
        "Venda Direta Credito",
        &receiver.url_for("rm-sent"),
    );
    start_charge(&daemon.gateway(), &sent).await;
    assert!(
        daemon
            .wait_log("sale sent to the terminal", Duration::from_secs(10))
            .await
    );
    // Queued behind it on the same lane: charging, never sent.
    let queued = create_body(
        "rm-queued",
        json!(7),
        "Venda Direta Credito",
        &receiver.url_for("rm-queued"),
    );
    start_charge(&daemon.gateway(), &queued).await;
    let mut daemon = daemon;
    daemon.kill();
    drop(terminal);

    // The terminal is gone from the line: unknown, and a person may not decide for it.
    let daemon = daemon.restart().await;
    assert!(
        daemon
            .wait_log("ALARM: cannot tell whether the terminal charged", FINAL)
            .await,
        "{}",
        daemon.logs()
    );
    let (code, out) = daemon.admin_cli(
        "payments",
        &["resolve", "rm-sent", "denied", "--reason", "no receipt"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("409") && out.contains("may still tell"),
        "{out}"
    );
    assert!(receiver.for_payment("rm-sent").is_empty());

    // Store IT removes the terminal from the configuration (here: renames it) and restarts.
    let daemon = daemon.restart_with(|o| o.terminal_id = "lane-9").await;
    let denied = receiver.wait_for("rm-queued", FINAL).await;
    assert_eq!(denied[0].2["status"], "denied", "never sent: never charged");
    assert!(
        daemon.logs().contains(
            "denied: its terminal was removed from the configuration before the sale was sent"
        ),
        "{}",
        daemon.logs()
    );
    let open = alarms_json(&daemon, false);
    let about_sent: Vec<_> = open
        .iter()
        .filter(|a| a["paymentId"] == "rm-sent")
        .collect();
    assert_eq!(about_sent.len(), 1, "{open:?}");
    assert_eq!(about_sent[0]["kind"], "unresolved");
    let text = about_sent[0]["text"].as_str().expect("text");
    assert!(
        text.contains("lane-1 is no longer in posbridge's configuration")
            && text.contains("R$ 42,00"),
        "{text}"
    );
    assert_plain(text);
    assert_eq!(
        daemon.gateway().create(&sent).await["status"],
        "undefined",
        "still undefined for the Gateway until a person decides"
    );
    let (code, out) = daemon.admin_cli(
        "payments",
        &[
            "resolve",
            "rm-sent",
            "denied",
            "--reason",
            "not on the acquirer's report",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let callbacks = receiver.wait_for("rm-sent", FINAL).await;
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].2["status"], "denied");
    assert!(alarms_json(&daemon, false).is_empty());
}

/// A callback the Gateway never accepted: the alarm says what to check; acknowledging it
/// takes it off the list and out of doctor's failure, and keeps it in the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_is_acknowledged_and_kept_in_the_history() {
    let daemon = Daemon::start(Options {
        admin: true,
        give_up_after_s: 2,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    receiver.fail_always();
    let done = pay(&daemon, &receiver, "al-cb", json!(7.5)).await;
    assert_eq!(done["status"], "approved");
    assert!(
        daemon
            .wait_log("ALARM: giving up on a callback", FINAL)
            .await
    );
    let open = alarms_json(&daemon, false);
    assert_eq!(open.len(), 1, "{open:?}");
    let alarm = &open[0];
    assert_eq!(alarm["kind"], "callback-given-up");
    let text = alarm["text"].as_str().expect("text");
    assert!(
        text.contains("R$ 7,50") && text.contains("posbridge callbacks retry"),
        "{text}"
    );
    assert_plain(text);
    assert!(doctor(&daemon).contains("FAIL  alarms"));
    let id = alarm["id"].as_i64().expect("id").to_string();

    let (code, out) = daemon.admin_cli("alarms", &["ack", "999999"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("404"), "{out}");
    let (code, out) = daemon.admin_cli(
        "alarms",
        &["ack", &id, "--note", "told the merchant by phone"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(alarms_json(&daemon, false).is_empty());
    let (code, listed) = daemon.admin_cli("alarms", &[]);
    assert_eq!(code, Some(0), "{listed}");
    assert!(
        !doctor(&daemon).contains("FAIL  alarms"),
        "{}",
        doctor(&daemon)
    );
    let history = alarms_json(&daemon, true);
    assert_eq!(history[0]["ackedBy"], "admin");
    assert_eq!(history[0]["ackNote"], "told the merchant by phone");
    let (code, listed) = daemon.admin_cli("alarms", &["--all"]);
    assert_eq!(code, Some(0), "{listed}");
    assert!(listed.contains("acknowledged by admin"), "{listed}");
    let (code, out) = daemon.admin_cli("alarms", &["ack", &id]);
    assert_eq!(code, Some(1), "twice: {out}");

    // The page's route does the same with the cookie and its header; a cookie without the
    // header is refused (a cross-site form cannot add it).
    let admin = daemon.admin.clone().expect("admin");
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{admin}/status/api/alarms/{id}/ack"))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 401);
}
