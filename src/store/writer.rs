//! The writer thread: runs every caller's work on the one connection that writes, batching
//! the work of concurrent callers into one transaction (one fsync for many). Each caller's
//! work runs in its own savepoint, so one failing caller never undoes another's.
//!
//! Work marked [`Order::Ahead`] (what a terminal has already done: its results, a sale it has
//! started) is taken before the rest and closes the batch it joins, so it waits only for the
//! job (or the commit) running when it came, not for a queue of Creates: the Gateway's
//! callback and the terminal's next step wait on it.

use std::collections::VecDeque;
use std::sync::mpsc;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::written::WrittenPayments;
use super::{StoreError, run};

pub(super) type Reply = Box<dyn FnOnce(Option<StoreError>) + Send>;
pub(super) type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// Where a caller's work goes in the writer's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// After the work already queued.
    InTurn,
    /// Before the work queued in turn, and committed as soon as it has run.
    Ahead,
}

/// What the writer thread is asked to do.
pub(super) enum Request {
    Job(Job, Order),
    /// Copy the write-ahead log into the database file and empty it (a clean stop: the
    /// database file alone then holds everything).
    Checkpoint(oneshot::Sender<Result<(), StoreError>>),
}

/// Jobs per transaction at most: a batch's callers all wait for its commit.
const MAX_BATCH: usize = 256;

/// The jobs taken off the channel and not yet run.
#[derive(Default)]
struct Queue {
    ahead: VecDeque<Job>,
    in_turn: VecDeque<Job>,
    /// A checkpoint asked for: it runs once the jobs sent before it have run, and nothing sent
    /// after it is taken until then.
    checkpoint: Option<oneshot::Sender<Result<(), StoreError>>>,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.ahead.is_empty() && self.in_turn.is_empty()
    }

    fn add(&mut self, request: Request) {
        match request {
            Request::Job(job, Order::Ahead) => self.ahead.push_back(job),
            Request::Job(job, Order::InTurn) => self.in_turn.push_back(job),
            Request::Checkpoint(reply) => self.checkpoint = Some(reply),
        }
    }

    /// Takes everything sent so far, up to a checkpoint.
    fn take_arrived(&mut self, requests: &mpsc::Receiver<Request>) {
        while self.checkpoint.is_none() {
            match requests.try_recv() {
                Ok(request) => self.add(request),
                Err(_) => return,
            }
        }
    }

    /// The next job to run, and whether it goes ahead.
    fn next(&mut self) -> Option<(Job, Order)> {
        if let Some(job) = self.ahead.pop_front() {
            return Some((job, Order::Ahead));
        }
        self.in_turn.pop_front().map(|job| (job, Order::InTurn))
    }
}

pub(super) fn writer_loop(
    mut conn: Connection,
    requests: mpsc::Receiver<Request>,
    written: &WrittenPayments,
) {
    let mut queue = Queue::default();
    loop {
        if queue.is_empty() {
            if let Some(reply) = queue.checkpoint.take() {
                let _ = reply.send(super::checkpoint(&conn));
                continue;
            }
            match requests.recv() {
                Ok(request) => queue.add(request),
                Err(_) => return,
            }
        }
        run_batch(&mut conn, &mut queue, &requests, written);
    }
}

/// Runs queued jobs in one transaction and commits it: up to [`MAX_BATCH`], taking what
/// arrives meanwhile, and closing early once the jobs that go ahead have run.
fn run_batch(
    conn: &mut Connection,
    queue: &mut Queue,
    requests: &mpsc::Receiver<Request>,
    written: &WrittenPayments,
) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let error = StoreError::from(e);
            queue.take_arrived(requests);
            let mut failed = 0;
            // Nothing ran: every caller of a batch's worth is answered with the error (its
            // reply dropped) without running its work.
            while failed < MAX_BATCH && queue.next().is_some() {
                failed += 1;
            }
            tracing::error!(%error, "cannot begin a transaction; {failed} requests failed");
            return;
        }
    };
    let mut replies = Vec::new();
    while replies.len() < MAX_BATCH {
        queue.take_arrived(requests);
        let Some((job, order)) = queue.next() else {
            break;
        };
        if let Err(e) = run(&tx, "SAVEPOINT job", []) {
            tracing::error!(error = %e, "cannot open a savepoint");
        }
        let (ok, reply) = job(&tx);
        let closed = if ok {
            run(&tx, "RELEASE job", []).map(|_| ())
        } else {
            tx.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = closed {
            tracing::error!(error = %e, "cannot close a savepoint");
        }
        replies.push(reply);
        if order == Order::Ahead && queue.ahead.is_empty() {
            break;
        }
    }
    let size = replies.len();
    let started = std::time::Instant::now();
    let commit_error = tx.commit().err().map(StoreError::from);
    // Before any caller is answered: a change shows from then on.
    written.transaction_ended();
    crate::observability::database_commit(started.elapsed().as_secs_f64(), size);
    if let Some(e) = &commit_error {
        tracing::error!(error = %e, "commit failed; {size} requests failed");
    }
    tracing::debug!(commits_per_fsync = size, "database commit");
    for reply in replies {
        reply(commit_error.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A job that records its name, in the order jobs run, and its batch: the value of
    /// `batch` (bumped after each commit) when it ran.
    fn job(name: &'static str, log: &Arc<Mutex<Vec<&'static str>>>, order: Order) -> Request {
        let log = log.clone();
        Request::Job(
            Box::new(move |_| {
                log.lock().expect("log").push(name);
                (true, Box::new(|_| {}))
            }),
            order,
        )
    }

    fn batches_of(queue: &mut Queue, requests: &mpsc::Receiver<Request>) -> Vec<usize> {
        let mut conn = Connection::open_in_memory().expect("open");
        let mut sizes = Vec::new();
        while !queue.is_empty() {
            let before = queue.ahead.len() + queue.in_turn.len();
            run_batch(&mut conn, queue, requests, &WrittenPayments::default());
            sizes.push(before - queue.ahead.len() - queue.in_turn.len());
        }
        sizes
    }

    #[test]
    fn work_that_goes_ahead_runs_first_and_closes_its_batch() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        for name in ["create 1", "create 2"] {
            tx.send(job(name, &log, Order::InTurn)).expect("send");
        }
        tx.send(job("result a", &log, Order::Ahead)).expect("send");
        tx.send(job("create 3", &log, Order::InTurn)).expect("send");
        tx.send(job("result b", &log, Order::Ahead)).expect("send");
        let mut queue = Queue::default();
        queue.take_arrived(&rx);
        let sizes = batches_of(&mut queue, &rx);
        assert_eq!(
            *log.lock().expect("log"),
            ["result a", "result b", "create 1", "create 2", "create 3"]
        );
        // The results were committed on their own, before any Create ran.
        assert_eq!(sizes, [2, 3]);
    }

    #[test]
    fn nothing_sent_after_a_checkpoint_runs_before_it() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        tx.send(job("before", &log, Order::InTurn)).expect("send");
        let (checkpoint, _answer) = oneshot::channel();
        tx.send(Request::Checkpoint(checkpoint)).expect("send");
        tx.send(job("after", &log, Order::Ahead)).expect("send");
        let mut queue = Queue::default();
        queue.take_arrived(&rx);
        assert!(queue.checkpoint.is_some());
        run_batch(
            &mut Connection::open_in_memory().expect("open"),
            &mut queue,
            &rx,
            &WrittenPayments::default(),
        );
        assert_eq!(*log.lock().expect("log"), ["before"]);
        assert!(queue.is_empty(), "the job after the checkpoint was taken");
    }
}
