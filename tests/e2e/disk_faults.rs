//! Disk and database faults: a full filesystem at each kind of write, a read-only database,
//! damaged files at start, and a backup taken at every step of a payment, restored.
//!
//! A full or read-only filesystem is a small tmpfs this test mounts (root only: elsewhere the
//! test says SKIPPED, and fails under CI=true). A fresh database on 2 MiB never reaches
//! SQLite's automatic checkpoint, so every commit appends to the write-ahead log and needs
//! new space: once the filler took the last page, every database write fails. A terminal
//! journal's small append may still fit in its last page: the test that fills the disk at a
//! journal write alone pads that page first, so the entry is torn exactly there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::zvt::{ZvtTerminal, daemon_for};

const FINAL: Duration = Duration::from_secs(40);
/// What SQLite says when a write finds no room (it is in the daemon's error line).
const DISK_FULL: &str = "database or disk is full";

fn credit(id: &str, receiver: &CallbackReceiver) -> Value {
    create_body(
        id,
        json!(12.5),
        "Venda Direta Credito",
        &receiver.url_for(id),
    )
}

/// A tmpfs of its own for the database directory; unmounted when dropped, even when the
/// test fails.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (with a visible message) where this process may not mount; under CI=true that
    /// fails the test instead.
    pub fn mount() -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot mount a tmpfs (needs root) and CI=true"
            );
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(SmallDisk { dir })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn filler(&self) -> PathBuf {
        self.dir.path().join("filler")
    }

    /// Takes every free page.
    pub fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", self.filler().display()))
            .output();
        let free = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.dir.path())
            .output()
            .expect("df");
        let avail = String::from_utf8_lossy(&free.stdout);
        assert!(
            avail.lines().nth(1).is_some_and(|n| n.trim() == "0"),
            "the disk is not full: {avail}"
        );
    }

    pub fn free(&self) {
        std::fs::remove_file(self.filler()).expect("free the disk");
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Every sale the terminal's journal holds is one the database knows it sent: no charge the
/// database does not know about.
fn assert_every_sale_is_known(daemon: &Daemon) {
    let db = rusqlite::Connection::open_with_flags(
        daemon.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database");
    for entry in daemon
        .journal()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "sale")
    {
        let id = entry["reference"].as_str().expect("reference");
        let sent: Option<i64> = db
            .query_row(
                "SELECT sent_to_terminal_at FROM payments WHERE payment_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("the terminal charged {id}, unknown to the database: {e}"));
        assert!(sent.is_some(), "{id} charged but not marked sent");
    }
}

/// The end of every scenario: approved once on the terminal, one callback body (however many
/// deliveries) that agrees with Create, and a database that passes its integrity check.
async fn assert_paid_once(daemon: &Daemon, receiver: &CallbackReceiver, body: &Value) {
    let id = body["paymentId"].as_str().expect("paymentId");
    let done = daemon.gateway().poll_final(body, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}");
    assert_eq!(daemon.charges_of(id), 1, "one charge");
    let callbacks = receiver.wait_for(id, FINAL).await;
    assert!(!callbacks.is_empty(), "called back");
    for (_, _, callback) in &callbacks {
        assert_eq!(callback["status"], done["status"], "{callback}");
        assert_eq!(callback["tid"], done["tid"], "{callback}");
        assert_eq!(callback["authorizationId"], done["authorizationId"]);
    }
    assert_every_sale_is_known(daemon);
    let db = rusqlite::Connection::open_with_flags(
        daemon.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(check, "ok", "nothing half-written");
}

/// Which write finds the disk full.
#[derive(Debug, Clone, Copy)]
enum FullAt {
    /// The first Create stores the payment.
    FirstCreate,
    /// The Sales App binds a terminal.
    Binding,
    /// The second Create starts the one charge (the compare-and-set).
    ChargeIntent,
    /// The terminal's result (held and retried: money_safety has the lane's side of it).
    Result,
    /// The approved payment's callback: its attempts and its delivery are recorded.
    Callback,
}

async fn full_disk_at(at: FullAt) {
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let receiver = CallbackReceiver::start(0).await;
    let daemon = Daemon::start(Options {
        // Long enough for the disk to fill while the terminal works.
        approve_after_ms: if matches!(at, FullAt::Result) {
            3000
        } else {
            300
        },
        database_dir: Some(disk.path()),
        ..Options::default()
    })
    .await;
    let gateway = daemon.gateway();
    let id = format!("full-{at:?}");
    let body = credit(&id, &receiver);
    let bind = json!({ "serialNumber": SERIAL }).to_string();
    let refused = |status: u16, answer: &Value| {
        assert_eq!(
            (status, &answer["code"]),
            (503, &json!("storage-unavailable")),
            "{at:?}: {answer}"
        );
    };
    match at {
        FullAt::FirstCreate => {
            disk.fill();
            let (status, answer) = gateway.post("/payments", &body).await;
            refused(status, &answer);
            disk.free();
            start_charge(&gateway, &body).await;
        }
        FullAt::Binding => {
            let first = gateway.create(&body).await;
            disk.fill();
            let (status, answer) = submit_serial(&submit_url(&first), &bind).await;
            assert_eq!(status, 500, "{answer}");
            assert_eq!(gateway.create(&body).await["status"], "undefined");
            disk.free();
            let (status, answer) = submit_serial(&submit_url(&first), &bind).await;
            assert_eq!(status, 200, "{answer}");
            gateway.create(&body).await;
        }
        FullAt::ChargeIntent => {
            let first = gateway.create(&body).await;
            let (status, answer) = submit_serial(&submit_url(&first), &bind).await;
            assert_eq!(status, 200, "{answer}");
            disk.fill();
            let (status, answer) = gateway.post("/payments", &body).await;
            refused(status, &answer);
            assert_eq!(
                daemon.charges_of(&id),
                0,
                "not charged while it cannot be recorded"
            );
            disk.free();
            gateway.create(&body).await;
        }
        FullAt::Result => {
            start_sale(&daemon, &body).await;
            disk.fill();
            assert!(
                daemon
                    .wait_log("ALARM: cannot store the terminal's result", FINAL)
                    .await,
                "{}",
                daemon.logs()
            );
            assert_eq!(gateway.create(&body).await["status"], "undefined");
            disk.free();
        }
        FullAt::Callback => {
            receiver.fail_always();
            start_charge(&gateway, &body).await;
            let done = gateway.poll_final(&body, FINAL).await;
            assert_eq!(done["status"], "approved", "{done}");
            let attempts = receiver.attempts();
            disk.fill();
            receiver.succeed_from_now();
            // Delivered while nothing can be recorded: it may go out again, never differently.
            let deadline = tokio::time::Instant::now() + FINAL;
            while receiver.attempts() == attempts {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no delivery attempt"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                daemon.wait_log(DISK_FULL, FINAL).await,
                "the outbox's bookkeeping must fail on a full disk: {}",
                daemon.logs()
            );
            assert_eq!(gateway.create(&body).await, done, "the answer stays");
            disk.free();
        }
    }
    assert!(
        daemon.logs().contains(DISK_FULL),
        "a log line names the full disk"
    );
    assert_paid_once(&daemon, &receiver, &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_the_first_create_refuses_it_until_there_is_room() {
    full_disk_at(FullAt::FirstCreate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_binding_refuses_it_until_there_is_room() {
    full_disk_at(FullAt::Binding).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_the_charge_intent_charges_nothing_until_there_is_room() {
    full_disk_at(FullAt::ChargeIntent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_the_result_keeps_it_until_there_is_room() {
    full_disk_at(FullAt::Result).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_the_callback_keeps_the_answer_and_delivers_it() {
    full_disk_at(FullAt::Callback).await;
}

/// `posbridge run` expected to stop by itself: (exit code, stderr).
fn run_refused(config: &Path) -> (Option<i32>, String) {
    let out = Command::new("timeout")
        .arg("30")
        .arg(env!("CARGO_BIN_EXE_posbridge"))
        .args(["run", "--config"])
        .arg(config)
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A daemon that approved one payment and stopped cleanly (the database file alone is
/// complete): its configuration and database, and the receiver its callback went to.
async fn stopped_with_one_payment(
    options: Options,
    id: &str,
) -> (Daemon, PathBuf, CallbackReceiver) {
    let mut daemon = Daemon::start(options).await;
    let receiver = CallbackReceiver::start(0).await;
    let done = pay(&daemon, &receiver, id, json!(12.5)).await;
    assert_eq!(done["status"], "approved", "{done}");
    assert_eq!(receiver.wait_for(id, FINAL).await.len(), 1);
    daemon.signal("TERM");
    assert!(
        daemon
            .wait_exit(Duration::from_secs(20))
            .await
            .is_some_and(|s| s.success())
    );
    let config = daemon.dir().join("posbridge.toml");
    (daemon, config, receiver)
}

/// Where in `file` the payment id's entry in the primary-key index of payments is.
fn index_entry(file: &[u8], id: &str) -> usize {
    let copy = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(copy.path(), file).expect("copy");
    let db = rusqlite::Connection::open(copy.path()).expect("open");
    let page_size: i64 = db
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page size");
    let page_size = usize::try_from(page_size).expect("page size");
    let pages: Vec<i64> = db
        .prepare("SELECT pageno FROM dbstat WHERE name = 'sqlite_autoindex_payments_1'")
        .expect("dbstat")
        .query_map([], |r| r.get(0))
        .expect("pages")
        .collect::<Result<_, _>>()
        .expect("pages");
    pages
        .iter()
        .find_map(|page| {
            let start = (usize::try_from(*page).expect("page") - 1) * page_size;
            file[start..start + page_size]
                .windows(id.len())
                .position(|w| w == id.as_bytes())
                .map(|at| start + at)
        })
        .expect("the id in its index")
}

/// A damaged database stops the start (exit 65: systemd does not restart it) with a message
/// naming the file and the way out; it is never served, whatever part is damaged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_at_start() {
    let id = "pay-DAMAGE-4f2a9c";
    let (daemon, config, _receiver) = stopped_with_one_payment(Options::default(), id).await;
    let db = daemon.db_path();
    let pristine = std::fs::read(&db).expect("db");
    let page = 4096;
    assert_eq!(pristine.len() % page, 0, "whole pages");
    let mut damages: Vec<(String, Vec<u8>)> = Vec::new();
    let mut header = pristine.clone();
    header[..16].copy_from_slice(b"not a database!\0");
    damages.push(("the header".into(), header));
    let mut last_page = pristine.clone();
    let end = last_page.len();
    last_page[end - page..].fill(0x5a);
    damages.push(("the last page".into(), last_page));
    // The payment id where it is a key, one bit changed: in the payment's row (the column
    // before the merchant's app key), in its primary-key index, and in its callback's row
    // (the column before the callback URL). A changed byte inside a value (the callback URL,
    // the transaction id, an amount) cannot be found: SQLite keeps no checksum of rows.
    let followed_by = |after: &str| -> Vec<usize> {
        pristine
            .windows(id.len() + after.len())
            .enumerate()
            .filter(|(_, w)| w.starts_with(id.as_bytes()) && w.ends_with(after.as_bytes()))
            .map(|(at, _)| at)
            .collect()
    };
    let row = followed_by(APP_KEY);
    // The URL is sealed: its row holds `sealed1:` right after the payment id.
    let callback_row = followed_by("sealed1:");
    assert_eq!(
        (row.len(), callback_row.len()),
        (1, 1),
        "{row:?} {callback_row:?}"
    );
    for (what, at) in [
        ("the payment's row", row[0]),
        ("the payment id index", index_entry(&pristine, id)),
        ("the callback's row", callback_row[0]),
    ] {
        let mut flipped = pristine.clone();
        flipped[at + id.len() - 1] ^= 0x01;
        damages.push((format!("a flipped byte in {what}"), flipped));
    }
    for (what, bytes) in damages {
        std::fs::write(&db, &bytes).expect("damage");
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let (code, stderr) = run_refused(&config);
        assert_eq!(code, Some(65), "{what}: {stderr}");
        assert!(
            stderr.contains(&db.display().to_string())
                && stderr.contains("damaged")
                && stderr.contains("restore the last backup"),
            "{what}: names the file and the way out: {stderr}"
        );
        assert!(!stderr.contains("listening"), "{what}: never served");
    }
    std::fs::write(&db, &pristine).expect("put back");
    let daemon = daemon.restart().await;
    let receiver = CallbackReceiver::start(0).await;
    let body = create_body(
        id,
        json!(12.5),
        "Venda Direta Credito",
        &receiver.url_for(id),
    );
    assert_eq!(daemon.gateway().create(&body).await["status"], "approved");
}

/// A database on a read-only filesystem stops the start with exit 65 and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_refused_at_start() {
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let options = Options {
        database_dir: Some(disk.path()),
        ..Options::default()
    };
    let (daemon, config, _) = stopped_with_one_payment(options, "pay-ro").await;
    disk.remount("ro");
    let (code, stderr) = run_refused(&config);
    disk.remount("rw");
    assert_eq!(code, Some(65), "{stderr}");
    assert!(
        stderr.contains(&daemon.db_path().display().to_string())
            && stderr.contains("read-only")
            && stderr.contains("writable"),
        "names the file, what is wrong and the way out: {stderr}"
    );
}

/// Where a payment is when a backup is taken.
const STEPS: [&str; 5] = ["stored", "bound", "charging", "approved", "called-back"];

/// A backup taken at every step of one payment, each restored beside the terminal's journal
/// as it is now: the restored daemon never charges again, recovers the terminal's approval,
/// and calls back what Create answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_from_every_step_of_a_payment_restores_without_a_second_charge() {
    let daemon = Daemon::start(Options {
        approve_after_ms: 1500,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let id = "pay-steps";
    let body = credit(id, &receiver);
    let backups = tempfile::tempdir().expect("tempdir");
    let copy = |step: &str| backups.path().join(format!("{step}.db"));

    receiver.fail_always();
    let first = gateway.create(&body).await;
    daemon.backup_to(&copy("stored"));
    let (status, answer) = submit_serial(
        &submit_url(&first),
        &json!({ "serialNumber": SERIAL }).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    daemon.backup_to(&copy("bound"));
    gateway.create(&body).await;
    assert!(
        daemon
            .wait_log(
                &format!("simulator: sale started terminal=lane-1 payment_id={id}"),
                FINAL
            )
            .await
    );
    daemon.backup_to(&copy("charging"));
    let done = gateway.poll_final(&body, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}");
    daemon.backup_to(&copy("approved"));
    receiver.succeed_from_now();
    assert_eq!(receiver.wait_for(id, FINAL).await.len(), 1);
    // Delivered is recorded after the receiver answered: wait until the row says so.
    let db = rusqlite::Connection::open_with_flags(
        daemon.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    let deadline = tokio::time::Instant::now() + FINAL;
    while db
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE payment_id = ?1 AND state = 'delivered'",
            [id],
            |r| r.get::<_, i64>(0),
        )
        .expect("outbox")
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.backup_to(&copy("called-back"));
    let journal = daemon.journal();
    // Restored elsewhere, a backup needs the key file that seals its callback URLs.
    let mut key_file = daemon.db_path().into_os_string();
    key_file.push(".key");
    let key = std::fs::read(&key_file).expect("the database's key file");
    assert_eq!(daemon.charges_of(id), 1);
    drop(daemon);

    for step in STEPS {
        let delivered_before = receiver.for_payment(id).len();
        let restored_dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(copy(step), restored_dir.path().join("posbridge.db")).expect("restore");
        std::fs::write(
            restored_dir.path().join("simulator-lane-1.journal"),
            &journal,
        )
        .expect("the terminal's journal, as the terminal keeps it");
        std::fs::write(restored_dir.path().join("posbridge.db.key"), &key).expect("the key");
        let restored = Daemon::start(Options {
            approve_after_ms: 1500,
            database_dir: Some(restored_dir.path().to_path_buf()),
            ..Options::default()
        })
        .await;
        let again = restored.gateway().poll_final(&body, FINAL).await;
        assert_eq!(again["status"], "approved", "{step}: {again}");
        assert_eq!(again["tid"], done["tid"], "{step}");
        assert_eq!(restored.charges_of(id), 1, "{step}: never charged again");
        if step == "called-back" {
            // Delivered in that copy: nothing is left to go out again.
            let db = rusqlite::Connection::open_with_flags(
                restored.db_path(),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .expect("open");
            let undelivered: i64 = db
                .query_row(
                    "SELECT COUNT(*) FROM outbox WHERE payment_id = ?1 AND state != 'delivered'",
                    [id],
                    |r| r.get(0),
                )
                .expect("outbox");
            assert_eq!(undelivered, 0, "{step}");
        } else {
            let deadline = tokio::time::Instant::now() + FINAL;
            while receiver.for_payment(id).len() == delivered_before {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{step}: not called back"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let (_, _, callback) = receiver.for_payment(id).pop().expect("callback");
            assert_eq!(callback["status"], again["status"], "{step}: {callback}");
            assert_eq!(callback["tid"], again["tid"], "{step}: {callback}");
        }
        let (code, report) = restored.alarms();
        assert_eq!(code, Some(0), "{step}: nothing left for a person: {report}");
    }
}

/// The smallest unit a tmpfs gives a file: a write that needs a new page finds the disk full.
const PAGE: usize = 4096;

/// A full disk at a terminal-journal write alone (the database has room): the ZVT driver's
/// journal is a symlink onto a small full tmpfs. The charge intent cannot be journaled, so the
/// sale is never sent (nothing charged) and the payment gets a clear answer; the entry torn by
/// the full disk is cut back (the file keeps its length), and the entries after it read well,
/// on the lane and at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_a_terminal_journal_write_sends_no_sale_and_leaves_no_torn_line() {
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let database_dir = tempfile::tempdir().expect("tempdir");
    let journal = disk.path().join("zvt-lane-1.journal");
    std::os::unix::fs::symlink(&journal, database_dir.path().join("zvt-lane-1.journal"))
        .expect("symlink the journal");
    let terminal = ZvtTerminal::tcp(&[]).await;
    let daemon = daemon_for(
        &terminal,
        Options {
            database_dir: Some(database_dir.path().to_path_buf()),
            ..Options::default()
        },
    )
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let before = pay(&daemon, &receiver, "journal-before", json!(10)).await;
    assert_eq!(before["status"], "approved", "{before}");
    let written = std::fs::read_to_string(&journal).expect("the journal on the small disk");
    assert!(written.contains("journal-before"), "{written}");
    // A line the reader skips fills the journal's last page up to a few bytes, and the filler
    // takes every other page: the next entry is written in part, then finds the disk full.
    let room = 16;
    let mut pad = PAGE - written.len() % PAGE - room;
    if pad < 2 {
        pad += PAGE;
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .expect("open the journal");
    std::io::Write::write_all(&mut file, format!("{}\n", "#".repeat(pad - 1)).as_bytes())
        .expect("pad the journal");
    drop(file);
    disk.fill();
    let full_length = std::fs::metadata(&journal).expect("journal").len();

    let gateway = daemon.gateway();
    let body = create_body(
        "journal-full",
        json!(11),
        "Venda Direta Credito",
        &receiver.url_for("journal-full"),
    );
    start_charge(&gateway, &body).await;
    assert!(
        daemon.wait_log("No space left on device", FINAL).await,
        "{}",
        daemon.logs()
    );
    // Never sent, so nothing can have been charged: denied is the true answer.
    let answer = gateway.poll_final(&body, FINAL).await;
    assert_eq!(answer["status"], "denied", "{answer}");
    // Said as what it is, for store IT: the disk, not the terminal.
    assert_eq!(answer["code"], "journal-unwritable", "{answer}");
    assert!(
        daemon
            .logs()
            .contains("ALARM: the terminal's journal cannot be written"),
        "{}",
        daemon.logs()
    );
    assert_eq!(
        std::fs::metadata(&journal).expect("journal").len(),
        full_length,
        "the torn entry is cut back"
    );
    assert_eq!(terminal.sales(), 1, "never sent: {}", terminal.logs());

    disk.free();
    let after = pay(&daemon, &receiver, "journal-after", json!(12)).await;
    assert_eq!(after["status"], "approved", "{after}");
    let entries = |text: &str| -> Vec<Value> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a torn line `{l}`: {e}")))
            .collect()
    };
    let text = std::fs::read_to_string(&journal).expect("journal");
    let entries = entries(&text);
    assert!(
        entries
            .iter()
            .any(|e| e.to_string().contains("journal-after")),
        "{text}"
    );
    // The next start reads the journal back (recovery) and the lane goes on.
    let daemon = daemon.restart().await;
    let restarted = pay(&daemon, &receiver, "journal-restarted", json!(13)).await;
    assert_eq!(restarted["status"], "approved", "{restarted}");
    assert_eq!(
        daemon.gateway().create(&body).await,
        answer,
        "the answer stays"
    );
    assert_eq!(terminal.sales(), 3, "only the sales journaled were sent");
}
