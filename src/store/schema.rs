//! Schema migrations, applied at open. Append new migrations; never edit a released one.

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

const V1: &str = "
CREATE TABLE payments (
    payment_id            TEXT PRIMARY KEY,
    merchant              TEXT NOT NULL,          -- app key of the credentials that created it
    transaction_id        TEXT NOT NULL,
    method                TEXT NOT NULL,
    amount_minor          INTEGER NOT NULL CHECK (amount_minor > 0),
    currency              TEXT NOT NULL,
    installments          INTEGER,
    callback_url          TEXT NOT NULL,          -- kept verbatim: delivery must survive restarts
    submit_token          TEXT NOT NULL,
    tid                   TEXT NOT NULL,
    state                 TEXT NOT NULL,
    terminal_id           TEXT,
    seconds_waiting       INTEGER NOT NULL,
    delay_to_cancel       INTEGER NOT NULL,
    delay_to_auto_settle  INTEGER NOT NULL,
    delay_to_auto_settle_after_antifraud INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    charge_started_at     INTEGER,                -- the compare-and-set that queued the one charge
    sent_to_terminal_at   INTEGER,                -- intent journaled: from here only recovery may tell
    cancel_requested_at   INTEGER,
    authorization_id      TEXT,
    nsu                   TEXT,
    acquirer              TEXT,
    code                  TEXT,
    message               TEXT,
    card_brand            TEXT,
    first_digits          TEXT,
    last_digits           TEXT,
    terminal_ref          TEXT,
    settle_id             TEXT,
    settled_minor         INTEGER NOT NULL DEFAULT 0,
    refunded_minor        INTEGER NOT NULL DEFAULT 0, -- includes refunds still on the terminal
    cancellation_id       TEXT,
    first_answer_undefined INTEGER NOT NULL DEFAULT 0, -- Test Suite async cards
    alarm                 TEXT
);
CREATE INDEX payments_by_state ON payments (state, charge_started_at);

CREATE TABLE operations (
    op_id          TEXT PRIMARY KEY,
    payment_id     TEXT NOT NULL REFERENCES payments (payment_id),
    kind           TEXT NOT NULL,     -- reversal | settle-reversal | refund
    request_id     TEXT,
    amount_minor   INTEGER NOT NULL,
    state          TEXT NOT NULL,     -- pending | sent | done | failed | unsupported
    detail         TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX operations_by_payment ON operations (payment_id);

-- Final PPP answers to cancel / settle / refund, replayed for a repeated requestId.
CREATE TABLE answers (
    payment_id     TEXT NOT NULL REFERENCES payments (payment_id),
    kind           TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    http_status    INTEGER NOT NULL,
    body           TEXT NOT NULL,
    PRIMARY KEY (payment_id, kind, request_id)
);

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    payment_id       TEXT NOT NULL REFERENCES payments (payment_id),
    url              TEXT NOT NULL,
    body             TEXT NOT NULL,
    state            TEXT NOT NULL,  -- pending | delivered | given_up
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    delivered_at     INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- Merchants onboarded through the configuration flow; only a hash of the token is kept.
CREATE TABLE merchants (
    app_key     TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
";

/// Receipts the terminal printed, kept with the payment (card numbers masked).
const V2: &str = "
CREATE TABLE receipts (
    id          INTEGER PRIMARY KEY,
    payment_id  TEXT NOT NULL REFERENCES payments (payment_id),
    kind        TEXT NOT NULL,      -- merchant | customer | other
    text        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX receipts_by_payment ON receipts (payment_id);
";

/// The Payment App feed: every event of a payment with its sequence number, so a client can
/// resume (`?after=SEQ`) without loss or duplicates, across restarts too.
const V3: &str = "
CREATE TABLE payment_events (
    payment_id  TEXT NOT NULL REFERENCES payments (payment_id),
    seq         INTEGER NOT NULL,      -- 1, 2, 3… per payment
    kind        TEXT NOT NULL,         -- state | prompt | result | error
    body        TEXT NOT NULL,         -- the JSON frame sent to clients, seq included
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (payment_id, seq)
) WITHOUT ROWID;
";

/// Money-safety columns (issue 8):
/// * `final_answer`: the Create answer frozen when the payment first became final; replayed on
///   every later Create and sent as the callback body, so it can never change or disagree.
/// * `external_id`: the Gateway's paymentId when it differs from the row's key: the same
///   paymentId from a second merchant is that merchant's own payment (see `payments::key_for`).
/// * `operations.sale_ref`: the terminal's reference of the sale an operation reverses (a late
///   approval's, which is never written over the payment's reported result).
/// * `journal_orphans`: what the terminal journals name and the database did not know, adopted
///   by `posbridge adopt-journals` after a restore from an old backup.
const V4: &str = "
ALTER TABLE payments ADD COLUMN final_answer TEXT;
ALTER TABLE payments ADD COLUMN external_id TEXT;
ALTER TABLE operations ADD COLUMN sale_ref TEXT;
CREATE INDEX payments_by_external_id ON payments (external_id) WHERE external_id IS NOT NULL;
CREATE TABLE journal_orphans (
    reference    TEXT NOT NULL,
    terminal_id  TEXT NOT NULL,
    amount_minor INTEGER,
    sent_at      INTEGER NOT NULL,
    adopted_at   INTEGER NOT NULL,
    payment_id   TEXT,                -- set when a Create for it arrived and took it over
    PRIMARY KEY (terminal_id, reference)
);
";

/// Alarms a person can act on (issue 9): each raised alarm is a row, open until the condition
/// clears by itself or a person acknowledges it, and kept as history. Payments resolved by hand
/// record who, when and why. The payments' old one-text `alarm` column is moved here.
const V5: &str = "
CREATE TABLE alarms (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    payment_id  TEXT,              -- the payment it is about, if any
    subject     TEXT,              -- what else it is about (a callback id, a journal reference)
    text        TEXT NOT NULL,     -- plain words with the next step
    raised_at   INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    cleared_at  INTEGER,           -- the condition went away by itself (recovered, delivered)
    acked_at    INTEGER,
    acked_by    TEXT,              -- the admin token's name, never the token
    ack_note    TEXT
);
CREATE INDEX alarms_open ON alarms (cleared_at, acked_at);
CREATE INDEX alarms_by_payment ON alarms (payment_id);
INSERT INTO alarms (kind, payment_id, text, raised_at, updated_at)
    SELECT 'earlier', payment_id, alarm, updated_at, updated_at FROM payments WHERE alarm IS NOT NULL;
UPDATE payments SET alarm = NULL;
ALTER TABLE payments ADD COLUMN resolved_by TEXT;
ALTER TABLE payments ADD COLUMN resolved_at INTEGER;
ALTER TABLE payments ADD COLUMN resolution_reason TEXT;
";

/// The Gateway's callback addresses sealed at rest (issue 11, `store::seal`): rows written
/// before hold them in clear. A migration, so that it runs once and so that a release before
/// sealing refuses this database (it could not read a sealed address) instead of giving up its
/// callbacks. `seal_url` is registered on the connection before migrations run.
const V6: &str = "
UPDATE payments SET callback_url = seal_url(callback_url) WHERE callback_url NOT LIKE 'sealed1:%';
UPDATE outbox SET url = seal_url(url) WHERE url NOT LIKE 'sealed1:%';
";

/// How many migrations this binary knows (the database's `user_version` once migrated).
pub const LATEST_VERSION: i64 = 6;

/// Why the database could not be brought to this binary's schema.
#[derive(Debug)]
pub(super) enum MigrateError {
    /// Written by a newer posbridge: this binary must not touch it.
    Newer(i64),
    Failed(String),
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| MigrateError::Failed(e.to_string()))?;
    if version > LATEST_VERSION {
        return Err(MigrateError::Newer(version));
    }
    Migrations::new(vec![
        M::up(V1),
        M::up(V2),
        M::up(V3),
        M::up(V4),
        M::up(V5),
        M::up(V6),
    ])
    .to_latest(conn)
    .map_err(|e| MigrateError::Failed(format!("migration failed: {e}")))
}
