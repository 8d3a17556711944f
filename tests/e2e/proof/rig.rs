//! A scenario's rig: the compiled daemon on a terminal under proof, a callback receiver, and
//! the Gateway and Sales App played so that the daemon may die at any step. A dead daemon is
//! started again on the same database and journals (as systemd does), after a pause chosen by
//! the seed, during which the terminal goes on.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::harness::*;
use crate::proof::Seed;
use crate::proof::drivers::{Driver, Replacement, Setup, TerminalUnderTest};

pub struct Rig {
    /// Always `Some` between calls (taken only to restart it).
    daemon: Option<Daemon>,
    pub terminal: Box<dyn TerminalUnderTest>,
    pub receiver: CallbackReceiver,
    pub seed: Seed,
    /// Driver, scenario and seed: every failure names them, to replay it.
    pub name: String,
    /// Every Create answer seen, per payment, in order.
    answers: HashMap<String, Vec<Value>>,
    pub restarts: usize,
    /// How long the daemon stays down after a death, at most.
    pub max_pause_ms: u64,
}

impl Rig {
    pub async fn start(
        scenario: &str,
        driver: &Driver,
        setup: Setup,
        options: Options,
        seed: Seed,
    ) -> Rig {
        let name = format!(
            "{} × {scenario} (POSBRIDGE_PROOF_SEED-derived seed {:#x})",
            driver.name, seed.value
        );
        let max_pause_ms = setup.approve_after_ms * 2;
        let terminal = (driver.start)(setup).await;
        let daemon = Daemon::start(terminal.configure(options)).await;
        Rig {
            daemon: Some(daemon),
            terminal,
            receiver: CallbackReceiver::start(0).await,
            seed,
            name,
            answers: HashMap::new(),
            restarts: 0,
            max_pause_ms,
        }
    }

    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("a daemon")
    }

    /// Fails the scenario with everything needed to understand and replay it.
    pub fn fail(&self, what: &str) -> ! {
        let tail = |text: &str, n: usize| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        panic!(
            "{}: {what}\n--- daemon log (tail) ---\n{}\n--- terminal log (tail) ---\n{}",
            self.name,
            tail(&self.daemon().logs(), 80),
            tail(&self.terminal.logs(), 30)
        );
    }

    /// Starts the daemon again if it died; true if it did.
    pub async fn revive(&mut self) -> bool {
        let dead = self.daemon.as_mut().is_some_and(Daemon::exited);
        if !dead {
            return false;
        }
        // Half the time back at once (the terminal is still at it), half after the sale's
        // time (it finished while nobody listened).
        let pause = if self.seed.chance(50) {
            self.seed.between(0, 150)
        } else {
            self.seed.between(self.max_pause_ms / 2, self.max_pause_ms)
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let daemon = self.daemon.take().expect("a daemon");
        self.daemon = Some(daemon.restart().await);
        self.restarts += 1;
        true
    }

    /// Store IT puts another terminal in the lane while the daemon is down (it must have died),
    /// then the daemon starts again.
    pub async fn replace_terminal(&mut self, how: Replacement) {
        if !self.daemon.as_mut().is_some_and(Daemon::exited) {
            self.fail(&format!(
                "the terminal is {how:?} only while the daemon is down"
            ));
        }
        self.terminal.replace(how).await;
        self.revive().await;
    }

    /// Waits (up to `limit`) for the daemon to die by itself (at its failpoint).
    pub async fn await_death(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.daemon.as_mut().is_some_and(Daemon::exited) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// SIGKILL `delay_ms` after the daemon's log first shows `needle` (from now on, at most
    /// within `limit`), by a watcher of its own: the kill lands wherever the daemon is then.
    pub fn kill_after_log(&self, needle: &str, delay_ms: u64, limit: Duration) {
        let logs = self.daemon().log_handle();
        let pid = self.daemon().pid();
        let seen_before = logs.lock().expect("logs").matches(needle).count();
        let needle = needle.to_string();
        tokio::spawn(async move {
            let deadline = Instant::now() + limit;
            while logs.lock().expect("logs").matches(needle.as_str()).count() <= seen_before {
                if Instant::now() > deadline {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
    }

    /// A Gateway request; `None` when the daemon died before it answered (it is revived by
    /// the caller's next step).
    pub async fn post(&mut self, path: &str, body: &Value) -> Option<(u16, Value)> {
        if self.revive().await {
            return None;
        }
        self.daemon().gateway().try_post(path, body).await
    }

    /// Create, as the Gateway repeats it: the answer, remembered for the invariants.
    pub async fn create(&mut self, body: &Value) -> Option<Value> {
        if self.revive().await {
            return None;
        }
        self.create_once(body).await
    }

    /// Create on the daemon as it is: `None` if it is dead (it is not started again).
    async fn create_once(&mut self, body: &Value) -> Option<Value> {
        let id = body["paymentId"].as_str().expect("paymentId").to_string();
        match self.daemon().gateway().try_post("/payments", body).await? {
            (200, answer) => {
                self.answers.entry(id).or_default().push(answer.clone());
                Some(answer)
            }
            // Shed or limited while busy (a restart's recovery): the Gateway asks again.
            (429 | 503, _) => None,
            (status, answer) => self.fail(&format!("Create answered {status}: {answer}")),
        }
    }

    /// Drives a payment through the POS flow (Create, the Sales App's serial scan, Create
    /// again, polls) to its final answer, whatever dies on the way.
    pub async fn pay(&mut self, body: &Value, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if Instant::now() > deadline {
                let last = self.last_answer(body);
                self.fail(&format!("not final after {limit:?}: last answer {last}"));
            }
            if let Some(answer) = self.create(body).await {
                if answer["status"] != "undefined" {
                    return answer;
                }
                if answer["paymentAppData"]["appName"] == "vtex.terminal-connector-app" {
                    self.scan_serial(&answer).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Drives a payment through the POS flow like [`Rig::pay`] until the daemon dies (a kill
    /// set up before, e.g. [`Rig::kill_after_log`]); the daemon stays down.
    pub async fn pay_until_death(&mut self, body: &Value, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.daemon.as_mut().is_some_and(Daemon::exited) {
            if Instant::now() > deadline {
                self.fail(&format!("the daemon was never killed within {limit:?}"));
            }
            if let Some(answer) = self.create_once(body).await {
                if answer["status"] != "undefined" {
                    self.fail(&format!("final before the kill: {answer}"));
                }
                if answer["paymentAppData"]["appName"] == "vtex.terminal-connector-app" {
                    self.scan_serial(&answer).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The Sales App submits the terminal's serial number.
    async fn scan_serial(&mut self, answer: &Value) {
        let url = submit_url(answer);
        let sent = reqwest::Client::new()
            .post(&url)
            .header("Content-Type", "text/plain")
            .body(json!({ "serialNumber": SERIAL }).to_string())
            .send()
            .await;
        let Ok(response) = sent else { return };
        let status = response.status().as_u16();
        // 409: the charge already started (a repeat after a restart): nothing to do.
        if !matches!(status, 200 | 409 | 429 | 503) {
            let text = response.text().await.unwrap_or_default();
            self.fail(&format!("the serial scan answered {status}: {text}"));
        }
    }

    /// Repeats a cancel, settle or refund (same requestId, as the Gateway does) until its
    /// answer is final: 200, or one of `also_final`.
    pub async fn operation(
        &mut self,
        path: &str,
        body: &Value,
        also_final: &[u16],
        limit: Duration,
    ) -> (u16, Value) {
        let deadline = Instant::now() + limit;
        loop {
            if Instant::now() > deadline {
                self.fail(&format!("{path} never final after {limit:?}"));
            }
            match self.post(path, body).await {
                Some((200, answer)) => return (200, answer),
                Some((status, answer)) if also_final.contains(&status) => return (status, answer),
                // Pending on the terminal, or shed while busy: asked again.
                Some((500, answer))
                    if answer["code"]
                        .as_str()
                        .is_some_and(|c| c.ends_with("-pending")) => {}
                Some((429 | 503, _)) | None => {}
                Some((status, answer)) => self.fail(&format!("{path} answered {status}: {answer}")),
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Remembers a Create answer received outside [`Rig::create`] (a concurrent burst).
    pub fn note_answer(&mut self, answer: &Value) {
        if let Some(id) = answer["paymentId"].as_str() {
            self.answers
                .entry(id.to_string())
                .or_default()
                .push(answer.clone());
        }
    }

    pub fn answers_of(&self, payment_id: &str) -> &[Value] {
        self.answers.get(payment_id).map_or(&[], Vec::as_slice)
    }

    fn last_answer(&self, body: &Value) -> Value {
        let id = body["paymentId"].as_str().unwrap_or_default();
        self.answers_of(id).last().cloned().unwrap_or(Value::Null)
    }
}
