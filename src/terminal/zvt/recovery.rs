//! What a ZVT terminal's Repeat Receipt proves about a sale, decided without I/O.
//!
//! ZVT cannot be asked about a sale by our reference: the terminal only repeats its *last*
//! transaction. So before each sale the driver keeps (in its journal) a snapshot of the
//! terminal at that moment — its terminal ID and its last transaction (trace number, amount,
//! date and time). After a crash, a timeout or a pulled cable, the last transaction then says:
//!
//! * a transaction that is not the one before, for our amount, on the same terminal: **ours**;
//! * exactly the one before (trace, amount, date, time, terminal): **unchanged** — the sale was
//!   not completed *yet*: only once the terminal can no longer complete it (it accepted an
//!   abort, or the sale's time is over) is it proven never done — by the time only where the
//!   terminal remembered a transaction before: a blank memory is also what a reset leaves;
//! * anything else (another terminal ID, a terminal with no memory where it had one, the same
//!   trace with another amount, a newer transaction for another amount): the terminal can no
//!   longer tell — never a denial on a mismatch.

use firmware_protocols::zvt::BmpList;
use serde::{Deserialize, Serialize};

/// A transaction as Repeat Receipt shows it. Fields a terminal did not send (or a journal
/// written before they were kept) are `None` and compare as unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub trace: u32,
    #[serde(default)]
    pub amount_minor: Option<u64>,
    /// Month, day.
    #[serde(default)]
    pub date: Option<(u8, u8)>,
    /// Hour, minute, second.
    #[serde(default)]
    pub time: Option<(u8, u8, u8)>,
    #[serde(default)]
    pub terminal_id: Option<u32>,
}

impl Transaction {
    /// The transaction a Status-Information describes (it needs a trace number).
    pub fn of(status: &BmpList) -> Option<Self> {
        Some(Self {
            trace: status.trace_number()?,
            amount_minor: status.amount().map(|a| a.minor_units()),
            date: status.date().map(|d| (d.month, d.day)),
            time: status.time().map(|t| (t.hour, t.minute, t.second)),
            terminal_id: status.terminal_id(),
        })
    }

    /// The same transaction (every field both sides know agrees).
    fn same_as(&self, other: &Self) -> bool {
        fn agree<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
        }
        self.trace == other.trace
            && agree(self.amount_minor, other.amount_minor)
            && agree(self.date, other.date)
            && agree(self.time, other.time)
            && agree(self.terminal_id, other.terminal_id)
    }

    /// Not earlier than `before` by the terminal's clock, where both have a date and time. The
    /// year is not sent: a date more than half a year earlier is taken as the next year's.
    fn not_before(&self, before: &Self) -> bool {
        let (Some((m, d)), Some((h, mi, s)), Some((bm, bd)), Some((bh, bmi, bs))) =
            (self.date, self.time, before.date, before.time)
        else {
            return true;
        };
        if i32::from(bm) - i32::from(m) > 6 {
            return true;
        }
        (m, d, h, mi, s) >= (bm, bd, bh, bmi, bs)
    }

    pub fn describe(&self) -> String {
        let amount = self.amount_minor.map_or_else(
            || "no amount".to_string(),
            |a| format!("amount {}", written(a)),
        );
        format!("trace {}, {amount}", self.trace)
    }
}

/// A ZVT amount (always in hundredths) as a person reads it on the receipt: `12,50`.
fn written(hundredths: u64) -> String {
    format!("{},{:02}", hundredths / 100, hundredths % 100)
}

/// The terminal as the driver last saw it: its ID and its last transaction (`None`: it has
/// none at all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(default)]
    pub terminal_id: Option<u32>,
    #[serde(default)]
    pub last: Option<Transaction>,
}

/// What was sent, as recovery compares it: the amount and the terminal before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub amount_minor: i64,
    pub before: Snapshot,
    /// When it was sent (unix ms).
    pub at: i64,
}

/// What the terminal's last transaction says about a sale sent after `sent.before`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The last transaction is the sale.
    Ours,
    /// The terminal is exactly as before the sale: not completed (yet).
    Unchanged,
    /// The terminal can no longer tell; why, in plain words.
    Unresolvable(String),
}

/// Judges the terminal now (`terminal_id`, `last`) against what it was when the sale was sent.
pub fn judge(sent: &Sent, terminal_id: Option<u32>, last: Option<&Transaction>) -> Verdict {
    let before = &sent.before;
    if let (Some(then), Some(now)) = (before.terminal_id, terminal_id)
        && then != now
    {
        return Verdict::Unresolvable(format!(
            "the terminal was replaced (it is terminal {now:08}; the sale went to terminal {then:08})"
        ));
    }
    let Some(last) = last else {
        return match &before.last {
            None => Verdict::Unchanged,
            Some(previous) => Verdict::Unresolvable(format!(
                "the terminal no longer remembers any transaction (before the sale its last was {}): it was reset or replaced",
                previous.describe()
            )),
        };
    };
    if let (Some(then), Some(now)) = (before.terminal_id, last.terminal_id)
        && then != now
    {
        return Verdict::Unresolvable(format!(
            "the terminal's last transaction comes from terminal {now:08}, the sale went to terminal {then:08}"
        ));
    }
    if let Some(previous) = &before.last
        && last.same_as(previous)
    {
        return Verdict::Unchanged;
    }
    let ours = u64::try_from(sent.amount_minor).ok() == last.amount_minor
        && before.last.as_ref().is_none_or(|p| last.not_before(p));
    if ours {
        return Verdict::Ours;
    }
    Verdict::Unresolvable(match &before.last {
        Some(previous) => format!(
            "the terminal's last transaction ({}) is neither the one before the sale ({}) nor the sale (amount {}): another transaction took its place",
            last.describe(),
            previous.describe(),
            written(sent.amount_minor.unsigned_abs())
        ),
        None => format!(
            "the terminal's last transaction ({}) is not the sale (amount {}): another transaction took its place",
            last.describe(),
            written(sent.amount_minor.unsigned_abs())
        ),
    })
}

/// Why the sale's time being over proves nothing here, or `None` when an unchanged terminal
/// whose time for the sale is over proves the sale never done. A terminal that remembered no
/// transaction before the sale, and remembers none now, looks the same whether the sale never
/// reached it or it completed the sale and was reset since: only an abort it accepted can tell.
pub fn time_over_proves_nothing(sent: &Sent) -> Option<String> {
    sent.before.last.is_none().then(|| {
        "the terminal remembers no transaction, neither before the sale nor now: had it completed the sale and been reset or replaced since, it would look the same".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(trace: u32, amount: u64, time: (u8, u8, u8)) -> Transaction {
        Transaction {
            trace,
            amount_minor: Some(amount),
            date: Some((11, 30)),
            time: Some(time),
            terminal_id: Some(52_500_017),
        }
    }

    fn sent(amount: i64, last: Option<Transaction>) -> Sent {
        Sent {
            amount_minor: amount,
            before: Snapshot {
                terminal_id: Some(52_500_017),
                last,
            },
            at: 0,
        }
    }

    #[test]
    fn a_blank_memory_before_and_after_proves_nothing_by_time() {
        let blank = sent(2500, None);
        assert_eq!(judge(&blank, Some(52_500_017), None), Verdict::Unchanged);
        assert!(time_over_proves_nothing(&blank).is_some_and(|why| why.contains("reset")));
        let remembered = sent(2500, Some(tx(41, 1000, (10, 0, 0))));
        assert_eq!(time_over_proves_nothing(&remembered), None);
    }

    #[test]
    fn the_sale_itself_is_ours() {
        let before = tx(41, 1000, (10, 0, 0));
        let s = sent(2500, Some(before));
        assert_eq!(
            judge(&s, Some(52_500_017), Some(&tx(42, 2500, (10, 5, 0)))),
            Verdict::Ours
        );
        // A terminal with no history before the sale.
        assert_eq!(
            judge(
                &sent(2500, None),
                Some(52_500_017),
                Some(&tx(1, 2500, (10, 5, 0)))
            ),
            Verdict::Ours
        );
    }

    #[test]
    fn the_transaction_before_is_unchanged_never_a_denial() {
        let before = tx(41, 1000, (10, 0, 0));
        assert_eq!(
            judge(&sent(2500, Some(before)), Some(52_500_017), Some(&before)),
            Verdict::Unchanged
        );
        assert_eq!(
            judge(&sent(2500, None), Some(52_500_017), None),
            Verdict::Unchanged,
            "nothing before, nothing now"
        );
    }

    #[test]
    fn a_swapped_or_reset_terminal_cannot_tell() {
        let before = tx(41, 1000, (10, 0, 0));
        let s = sent(2500, Some(before));
        // Same trace, another amount: another terminal's (or a reset one's) transaction.
        assert!(matches!(
            judge(&s, Some(52_500_017), Some(&tx(41, 3000, (10, 5, 0)))),
            Verdict::Unresolvable(_)
        ));
        // No memory where it had one.
        assert!(matches!(
            judge(&s, Some(52_500_017), None),
            Verdict::Unresolvable(why) if why.contains("reset or replaced")
        ));
        // Another terminal ID.
        assert!(matches!(
            judge(&s, Some(99), Some(&tx(42, 2500, (10, 5, 0)))),
            Verdict::Unresolvable(why) if why.contains("replaced")
        ));
        // A newer transaction for another amount overwrote what could be repeated; the alarm
        // quotes the amounts as the receipts print them.
        assert_eq!(
            judge(&s, Some(52_500_017), Some(&tx(43, 700, (10, 6, 0)))),
            Verdict::Unresolvable(
                "the terminal's last transaction (trace 43, amount 7,00) is neither the one before the sale (trace 41, amount 10,00) nor the sale (amount 25,00): another transaction took its place".into()
            )
        );
        // Our amount, but earlier than the transaction before: not ours.
        assert!(matches!(
            judge(&s, Some(52_500_017), Some(&tx(40, 2500, (9, 0, 0)))),
            Verdict::Unresolvable(_)
        ));
    }

    #[test]
    fn unknown_fields_compare_as_unknown_and_the_year_wraps() {
        // A journal line from before amounts and times were kept: trace only.
        let legacy = Transaction {
            trace: 41,
            amount_minor: None,
            date: None,
            time: None,
            terminal_id: None,
        };
        let s = Sent {
            amount_minor: 2500,
            before: Snapshot {
                terminal_id: None,
                last: Some(legacy),
            },
            at: 0,
        };
        assert_eq!(
            judge(&s, Some(1), Some(&tx(41, 1000, (10, 0, 0)))),
            Verdict::Unchanged
        );
        assert_eq!(
            judge(&s, Some(1), Some(&tx(42, 2500, (10, 0, 0)))),
            Verdict::Ours
        );
        let december = Transaction {
            date: Some((12, 31)),
            ..tx(41, 1000, (23, 59, 0))
        };
        let january = Transaction {
            date: Some((1, 1)),
            ..tx(42, 2500, (0, 1, 0))
        };
        assert_eq!(
            judge(
                &sent(2500, Some(december)),
                Some(52_500_017),
                Some(&january)
            ),
            Verdict::Ours
        );
    }
}
