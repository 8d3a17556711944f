//! What each alarm the engine raises says: plain words for store IT, the amount as its currency
//! writes it and the time in the store's zone (so the receipt can be found), and the next step.
//! Never an internal error string. Each kind has an entry in the operator guide's runbook.

use crate::locale::{StoreTime, money};
use crate::payment::Payment;

/// What an alarm about one payment needs to say where and when to look.
pub(super) struct About<'a> {
    pub payment: &'a Payment,
    pub time: &'a StoreTime,
    pub now: i64,
}

impl About<'_> {
    fn amount(&self) -> String {
        money(&self.payment.currency, self.payment.amount_minor)
    }

    fn sent_at(&self) -> String {
        let p = self.payment;
        self.time
            .when(p.sent_to_terminal_at.unwrap_or(p.created_at), self.now)
    }

    fn terminal(&self) -> &str {
        self.payment.terminal_id.as_deref().unwrap_or("(none)")
    }

    fn id(&self) -> &str {
        self.payment.vtex_payment_id()
    }

    pub fn unknown(&self, reason: &str) -> String {
        format!(
            "Terminal {t} has not said yet whether payment {id} ({a}, sent at {w}) was charged: {reason}. posbridge keeps asking it, and the terminal's lane waits; this clears by itself when the terminal answers. Check that the terminal is on and connected. If it is broken for good, connect its replacement under the same id, or remove it from the configuration and restart: the payment then becomes unresolved, and you resolve it from the terminal's receipts.",
            t = self.terminal(),
            id = self.id(),
            a = self.amount(),
            w = self.sent_at(),
        )
    }

    pub fn unresolved(&self, why: &str) -> String {
        format!(
            "Terminal {t} can no longer tell whether payment {id} ({a}, sent at {w}) was charged: {why}. Look for a sale of {a} at {w} on the terminal's receipts or in the acquirer's report: approved → resolve as approved (posbridge payments resolve {id} approved --reason \"…\"); not there → resolve as denied.",
            t = self.terminal(),
            id = self.id(),
            a = self.amount(),
            w = self.sent_at(),
        )
    }

    pub fn late_approval_reversing(&self) -> String {
        format!(
            "Terminal {t} approved payment {id} ({a}) after it had been cancelled or declared failed. posbridge is reversing that approval on the terminal, so the shopper is not charged. Check that a reversal receipt is printed, then acknowledge this alarm.",
            t = self.terminal(),
            id = self.id(),
            a = self.amount(),
        )
    }

    pub fn late_approval_reversed(&self) -> String {
        format!(
            "Terminal {t} approved payment {id} ({a}) after it had been cancelled or declared failed; posbridge reversed that approval on the terminal at {w}, so the shopper is not charged. Check the reversal receipt, then acknowledge this alarm.",
            t = self.terminal(),
            id = self.id(),
            a = self.amount(),
            w = self.time.when(self.now, self.now),
        )
    }

    pub fn late_approval_not_reversed(&self, why: &str) -> String {
        format!(
            "Terminal {t} approved payment {id} ({a}) after it had been cancelled or declared failed, and the approval could NOT be reversed ({why}): the shopper's card is charged {a}. Refund it on the terminal with the card (or through the acquirer), then acknowledge this alarm.",
            t = self.terminal(),
            id = self.id(),
            a = self.amount(),
        )
    }

    pub fn settle_return(&self, returned_minor: i64, why: &str) -> String {
        let p = self.payment;
        format!(
            "Payment {id} ({a}) was settled for {s}, and terminal {t} could not give back the remaining {r} ({why}). Refund {r} to the shopper by hand (on the terminal with the card), then acknowledge this alarm.",
            id = self.id(),
            a = self.amount(),
            s = money(&p.currency, p.settled_minor),
            r = money(&p.currency, returned_minor),
            t = self.terminal(),
        )
    }

    pub fn caught_up(&self) -> String {
        format!(
            "The database was older than terminal {t}'s journal (restored from a backup?): payment {id} ({a}) had already been sent to that terminal at {w}. posbridge is asking the terminal what happened and never charges it again. Nothing to do: this clears by itself once the terminal answers (if it cannot, an \"unresolved\" alarm follows).",
            t = self.terminal(),
            id = self.id(),
            a = self.amount(),
            w = self.sent_at(),
        )
    }
}

/// A sale a terminal journal names that the database did not know, adopted by store IT.
pub(super) fn adopted_sale(
    terminal_id: &str,
    reference: &str,
    amount_minor: Option<i64>,
    sent_at: i64,
    time: &StoreTime,
    now: i64,
) -> String {
    // The journal keeps the amount in minor units, without its currency.
    let amount = amount_minor.map_or_else(
        || "an unknown amount".to_string(),
        |minor| format!("an amount of {minor} in cents"),
    );
    let w = time.when(sent_at, now);
    format!(
        "Terminal {terminal_id}'s journal shows {reference} ({amount}) sent to it at {w}, which the database did not know (adopted after a restore from a backup). If the Gateway asks about payment {reference} again, posbridge recovers it from the terminal and this clears by itself. If it stays, look for {amount} at {w} on the terminal's receipts and settle it with the merchant, then acknowledge this alarm."
    )
}
