//! Terminal operations after a sale (reversals, refunds) and the replayable PPP answers to
//! cancel / settle / refund requests.

use std::fmt;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Cancels a whole approved sale (PPP cancellation, or a late approval).
    Reversal,
    /// Returns the unsettled part of a sale after a partial settlement.
    SettleReversal,
    Refund,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpState {
    Pending,
    /// Handed to the terminal: after a crash, ask it before sending again.
    Sent,
    Done,
    Failed,
    /// The driver cannot do it without the card: a person must.
    Unsupported,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub op_id: String,
    pub payment_id: String,
    pub kind: OpKind,
    pub request_id: Option<String>,
    pub amount_minor: i64,
    pub state: OpState,
    pub detail: Option<String>,
    /// The terminal's reference of the sale this operation applies to, when it is not the
    /// payment's own (a late approval's); `None`: the payment's.
    pub sale_ref: Option<String>,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl FromStr for $t {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($s => Ok(Self::$v),)*
                    other => Err(StoreError::Corrupt(format!("unknown value `{other}`"))),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(OpKind { Reversal => "reversal", SettleReversal => "settle-reversal", Refund => "refund" });
text_enum!(OpState { Pending => "pending", Sent => "sent", Done => "done", Failed => "failed", Unsupported => "unsupported" });

impl OpState {
    pub fn is_final(self) -> bool {
        matches!(self, OpState::Done | OpState::Failed | OpState::Unsupported)
    }
}

fn conversion(e: StoreError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Operation> {
    let kind: String = row.get("kind")?;
    let state: String = row.get("state")?;
    Ok(Operation {
        op_id: row.get("op_id")?,
        payment_id: row.get("payment_id")?,
        kind: kind.parse().map_err(conversion)?,
        request_id: row.get("request_id")?,
        amount_minor: row.get("amount_minor")?,
        state: state.parse().map_err(conversion)?,
        detail: row.get("detail")?,
        sale_ref: row.get("sale_ref")?,
    })
}

pub fn insert(c: &Connection, op: &Operation, now: i64) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO operations (op_id, payment_id, kind, request_id, amount_minor, state, detail,
            created_at, updated_at, sale_ref)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
        params![
            op.op_id,
            op.payment_id,
            op.kind.as_str(),
            op.request_id,
            op.amount_minor,
            op.state.as_str(),
            op.detail,
            now,
            op.sale_ref,
        ],
    )?;
    Ok(())
}

pub fn get(c: &Connection, op_id: &str) -> Result<Option<Operation>, StoreError> {
    Ok(c.query_row(
        "SELECT * FROM operations WHERE op_id = ?1",
        [op_id],
        from_row,
    )
    .optional()?)
}

/// The operation of `kind` for a payment, by request id (or the only one, for reversals).
pub fn find(
    c: &Connection,
    payment_id: &str,
    kind: OpKind,
    request_id: Option<&str>,
) -> Result<Option<Operation>, StoreError> {
    Ok(c.query_row(
        "SELECT * FROM operations WHERE payment_id = ?1 AND kind = ?2
            AND (?3 IS NULL OR request_id = ?3)
         ORDER BY created_at DESC LIMIT 1",
        params![payment_id, kind.as_str(), request_id],
        from_row,
    )
    .optional()?)
}

pub fn set_state(
    c: &Connection,
    op_id: &str,
    state: OpState,
    detail: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE operations SET state = ?2, detail = COALESCE(?3, detail), updated_at = ?4
         WHERE op_id = ?1",
        params![op_id, state.as_str(), detail, now],
    )?;
    Ok(())
}

/// Whether a reversal that cancels the whole payment is on its way or done: settlement and
/// refunds are then excluded. (One the terminal refused or cannot do leaves the sale standing.)
pub fn reversal_under_way(c: &Connection, payment_id: &str) -> Result<bool, StoreError> {
    Ok(c.query_row(
        "SELECT EXISTS (SELECT 1 FROM operations WHERE payment_id = ?1 AND kind = 'reversal'
            AND state IN ('pending', 'sent', 'done'))",
        [payment_id],
        |r| r.get(0),
    )?)
}

/// Unfinished operations of the payments bound to a terminal, oldest first.
pub fn unfinished_on_terminal(
    c: &Connection,
    terminal_id: &str,
) -> Result<Vec<Operation>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT o.* FROM operations o JOIN payments p ON p.payment_id = o.payment_id
         WHERE p.terminal_id = ?1 AND o.state IN ('pending', 'sent')
         ORDER BY o.created_at, o.op_id",
    )?;
    let rows = stmt
        .query_map([terminal_id], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A stored final answer: (HTTP status, JSON body).
pub fn answer(
    c: &Connection,
    payment_id: &str,
    kind: &str,
    request_id: &str,
) -> Result<Option<(u16, String)>, StoreError> {
    Ok(c.query_row(
        "SELECT http_status, body FROM answers WHERE payment_id = ?1 AND kind = ?2 AND request_id = ?3",
        params![payment_id, kind, request_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

pub fn save_answer(
    c: &Connection,
    payment_id: &str,
    kind: &str,
    request_id: &str,
    status: u16,
    body: &str,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT OR IGNORE INTO answers (payment_id, kind, request_id, http_status, body)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![payment_id, kind, request_id, status, body],
    )?;
    Ok(())
}
