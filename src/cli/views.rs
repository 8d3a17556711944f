//! The admin listener's answers as people read them: times in the store's zone (24-hour, the
//! zone named), amounts as their currency writes them, cards as brand and last 4. The answers
//! are typed here as the CLI reads them (a field the daemon adds later is ignored); `--json`
//! prints them untouched instead.

use std::fmt::Write;

use serde::Deserialize;

use super::table::{Column, Fields, Table, WIDTH, block, printable};
use crate::locale::{StoreTime, money};

/// What every view needs to show a time: the store's zone, and now (to tell today).
pub struct StoreNow<'a> {
    pub zone: &'a StoreTime,
    pub now_ms: i64,
}

impl StoreNow<'_> {
    /// `14:03` today, `2026-11-29 14:03` on another day (in the store's zone).
    pub fn when(&self, unix_ms: i64) -> String {
        if self.zone.date(unix_ms) == self.zone.date(self.now_ms) {
            self.zone.time(unix_ms)
        } else {
            format!("{} {}", self.zone.date(unix_ms), self.zone.time(unix_ms))
        }
    }

    /// `times in America/Sao_Paulo`: what a header line says about the times below it.
    pub fn legend(&self) -> String {
        format!("times in {}", self.zone.name())
    }
}

/// `Visa ****1111`; the brand alone, or `-` when the terminal gave neither.
fn card(brand: Option<&str>, last_digits: Option<&str>) -> String {
    match (brand, last_digits) {
        (Some(brand), Some(last)) => format!("{brand} ****{last}"),
        (Some(brand), None) => brand.to_string(),
        (None, Some(last)) => format!("****{last}"),
        (None, None) => "-".to_string(),
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub payment_id: String,
    pub state: String,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(default)]
    pub method: String,
    pub installments: Option<i64>,
    pub terminal: Option<String>,
    pub card_brand: Option<String>,
    pub last_digits: Option<String>,
    pub authorization_id: Option<String>,
    pub nsu: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
    #[serde(default)]
    pub settled_minor: i64,
    #[serde(default)]
    pub refunded_minor: i64,
    pub created_at_ms: i64,
    pub alarm: Option<String>,
    /// Resolved by hand: the decision, by whom, when, why.
    pub resolution: Option<HandResolution>,
    #[serde(default)]
    pub receipts: Vec<Receipt>,
    #[serde(default)]
    pub callbacks: Vec<CallbackState>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandResolution {
    pub decision: String,
    pub by: String,
    pub at_ms: i64,
    #[serde(default)]
    pub reason: String,
}

impl Payment {
    fn card(&self) -> String {
        card(self.card_brand.as_deref(), self.last_digits.as_deref())
    }

    fn money(&self, minor: i64) -> String {
        money(&self.currency, minor)
    }

    /// What a person should read first about it: its alarm, or why it was declined.
    fn note(&self) -> Option<String> {
        if let Some(alarm) = &self.alarm {
            return Some(alarm.clone());
        }
        if self.state == "denied" {
            self.terminal_said()
        } else {
            None
        }
    }

    /// `51 insufficient funds`: the terminal's code and message.
    fn terminal_said(&self) -> Option<String> {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => Some(format!("{code} {message}")),
            (code, message) => code.clone().or_else(|| message.clone()),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Receipt {
    pub kind: String,
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct CallbackState {
    pub state: String,
    pub attempts: u32,
}

/// `GET /payments`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentList {
    pub payments: Vec<Payment>,
    pub since_ms: i64,
    pub limit: usize,
}

/// Which payments a list is: the store's today, or since a date someone named.
pub enum Period {
    Today,
    Since,
}

/// `posbridge payments list`: a header line that says which day(s), then a table.
pub fn payment_list(list: &PaymentList, period: &Period, clock: &StoreNow) -> String {
    let since = format!(
        "{} {}",
        clock.zone.date(list.since_ms),
        clock.zone.time(list.since_ms)
    );
    let mut out = match period {
        Period::Today => format!("Today's payments (since {since}, {})", clock.legend()),
        Period::Since => format!("Payments since {since} ({})", clock.legend()),
    };
    if list.payments.is_empty() {
        out.push_str(": none\n");
        return out;
    }
    let _ = write!(out, ": {}", list.payments.len());
    if list.payments.len() >= list.limit {
        out.push_str(", only the newest shown");
    }
    out.push('\n');
    // Ids are never cut: they are what `payments show` takes.
    let mut table = Table::new(&[
        Column::exact("TIME"),
        Column::exact("PAYMENT"),
        Column::exact("STATE"),
        Column::number("AMOUNT"),
        Column::text("CARD"),
        Column::text("TERMINAL"),
    ]);
    for p in &list.payments {
        table.row([
            clock.when(p.created_at_ms),
            p.payment_id.clone(),
            p.state.clone(),
            p.money(p.amount_minor),
            p.card(),
            p.terminal.clone().unwrap_or_else(|| "-".into()),
        ]);
        if let Some(note) = p.note() {
            table.note(note);
        }
    }
    out.push_str(&table.render(WIDTH));
    out
}

/// `posbridge payments show ID`: its fields one per line, its receipts, its callbacks.
pub fn payment(p: &Payment, clock: &StoreNow) -> String {
    let method = match p.installments {
        Some(n) if n > 1 => format!("{} ({n} installments)", p.method),
        _ => p.method.clone(),
    };
    let mut fields = Fields::new();
    fields
        .field("Payment", &p.payment_id)
        .field("State", &p.state)
        .field("Amount", p.money(p.amount_minor))
        .field("Method", method)
        .field("Card", p.card())
        .field("Terminal", p.terminal.as_deref().unwrap_or("-"))
        .field("Created", clock.zone.date_time(p.created_at_ms))
        .field_if("Authorization", p.authorization_id.as_ref())
        .field_if("NSU", p.nsu.as_ref())
        .field_if("Terminal said", p.terminal_said())
        .field_if(
            "Settled",
            (p.settled_minor != 0).then(|| p.money(p.settled_minor)),
        )
        .field_if(
            "Refunded",
            (p.refunded_minor != 0).then(|| p.money(p.refunded_minor)),
        )
        .field_if("Alarm", p.alarm.as_ref())
        .field_if(
            "Resolved",
            p.resolution.as_ref().map(|r| {
                format!(
                    "by hand as {} by {} at {}: {}",
                    r.decision,
                    r.by,
                    clock.zone.date_time(r.at_ms),
                    r.reason
                )
            }),
        );
    let mut out = fields.render(WIDTH);
    if p.receipts.is_empty() {
        out.push_str("\nReceipts: none\n");
    } else {
        out.push_str("\nReceipts\n");
        for receipt in &p.receipts {
            let _ = writeln!(out, "  {}", printable(&receipt.kind));
            out.push_str(&block(&receipt.text, 4));
        }
    }
    if p.callbacks.is_empty() {
        out.push_str("\nCallbacks: none\n");
    } else {
        out.push_str("\nCallbacks\n");
        for (n, callback) in p.callbacks.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {}. {}, {}",
                n + 1,
                printable(&callback.state),
                plural(callback.attempts as usize, "attempt", "attempts")
            );
        }
    }
    out
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Callback {
    pub id: i64,
    pub payment_id: String,
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub last_error: Option<String>,
}

/// `GET /callbacks`.
#[derive(Debug, Deserialize)]
pub struct CallbackList {
    pub callbacks: Vec<Callback>,
}

/// `posbridge callbacks list`.
pub fn callback_list(list: &CallbackList, clock: &StoreNow) -> String {
    if list.callbacks.is_empty() {
        return "No callback is waiting to be delivered.\n".to_string();
    }
    let mut table = Table::new(&[
        Column::number("ID"),
        Column::exact("PAYMENT"),
        Column::exact("STATE"),
        Column::number("ATTEMPTS"),
        Column::exact("NEXT TRY"),
        Column::text("LAST ERROR"),
    ]);
    for callback in &list.callbacks {
        let next = if callback.state == "given_up" {
            "-".to_string()
        } else {
            clock.when(callback.next_attempt_at_ms)
        };
        table.row([
            callback.id.to_string(),
            callback.payment_id.clone(),
            callback.state.clone(),
            callback.attempts.to_string(),
            next,
            callback.last_error.clone().unwrap_or_default(),
        ]);
    }
    format!(
        "Callbacks not delivered yet: {} ({})\n{}\nTo try one now: posbridge callbacks retry ID (or the PAYMENT, for all of its callbacks)\n",
        list.callbacks.len(),
        clock.legend(),
        table.render(WIDTH)
    )
}

/// `POST /callbacks/{id}/retry`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retried {
    pub payment_id: Option<String>,
    pub callbacks: Vec<i64>,
}

/// `posbridge callbacks retry`: one line.
pub fn retried(answer: &Retried) -> String {
    let ids: Vec<String> = answer.callbacks.iter().map(i64::to_string).collect();
    let what = match ids.as_slice() {
        [one] => format!("callback {one} is"),
        many => format!("callbacks {} are", many.join(", ")),
    };
    match &answer.payment_id {
        Some(payment) => format!("payment {}: {what} due now\n", printable(payment)),
        None => format!("{what} due now\n"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminal {
    pub id: String,
    pub serial_number: Option<String>,
    pub protocol: String,
    pub online: bool,
    /// `online`, `offline` or `not-contacted` (nothing asked since the daemon started).
    pub reachability: String,
    pub busy: bool,
    #[serde(default)]
    pub blocked: bool,
    pub blocked_by: Option<String>,
    pub blocked_reason: Option<String>,
    pub blocked_since_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    pub last_error: Option<String>,
}

impl Terminal {
    fn state(&self) -> &'static str {
        if self.blocked {
            "blocked"
        } else if self.online && self.busy {
            "busy"
        } else {
            match self.reachability.as_str() {
                "online" => "online",
                "not-contacted" => "not yet contacted",
                _ => "offline",
            }
        }
    }

    /// Why a blocked lane waits, in full: it is what store IT must act on.
    fn blocked_note(&self, clock: &StoreNow) -> String {
        let mut line = format!(
            "waits on payment {}",
            self.blocked_by.as_deref().unwrap_or("?")
        );
        if let Some(since) = self.blocked_since_ms {
            let _ = write!(line, " since {}", clock.when(since));
        }
        if let Some(reason) = &self.blocked_reason {
            let _ = write!(line, ": {reason}");
        }
        line
    }
}

/// `GET /terminals`.
#[derive(Debug, Deserialize)]
pub struct TerminalList {
    pub terminals: Vec<Terminal>,
}

/// `posbridge terminals list`.
pub fn terminal_list(list: &TerminalList, clock: &StoreNow) -> String {
    if list.terminals.is_empty() {
        return "No terminal is configured.\n".to_string();
    }
    let mut table = Table::new(&[
        Column::exact("TERMINAL"),
        Column::text("SERIAL"),
        Column::exact("PROTOCOL"),
        Column::exact("STATE"),
        Column::exact("LAST SEEN"),
        Column::text("LAST ERROR"),
    ]);
    for terminal in &list.terminals {
        table.row([
            terminal.id.clone(),
            terminal.serial_number.clone().unwrap_or_else(|| "-".into()),
            terminal.protocol.clone(),
            terminal.state().to_string(),
            terminal
                .last_seen_ms
                .map_or_else(|| "-".into(), |at| clock.when(at)),
            terminal.last_error.clone().unwrap_or_default(),
        ]);
        if terminal.blocked {
            table.note(terminal.blocked_note(clock));
        }
    }
    format!(
        "Terminals: {} ({})\n{}",
        list.terminals.len(),
        clock.legend(),
        table.render(WIDTH)
    )
}

/// `POST /terminals/{id}/probe|end-of-day`.
#[derive(Debug, Deserialize)]
pub struct TerminalAnswer {
    pub terminal: String,
    pub status: String,
}

/// `lane-1: simulator ready`.
pub fn terminal_answer(answer: &TerminalAnswer) -> String {
    format!(
        "{}: {}\n",
        printable(&answer.terminal),
        printable(&answer.status)
    )
}

/// `PUT /log-level`.
#[derive(Debug, Deserialize)]
pub struct LogLevel {
    pub level: String,
}

pub fn log_level(answer: &LogLevel) -> String {
    format!("log level is now {}\n", printable(&answer.level))
}

/// `POST /payments/{id}/resolve`.
#[derive(Debug, Deserialize)]
pub struct Resolved {
    pub payment: ResolvedPayment,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedPayment {
    pub payment_id: String,
    pub status: String,
    pub resolution: Option<Resolution>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    pub by: String,
    pub at_ms: i64,
}

pub fn resolved(answer: &Resolved, clock: &StoreNow) -> String {
    let p = &answer.payment;
    match &p.resolution {
        Some(r) => format!(
            "payment {} resolved as {} by {} at {}; the Gateway is told (callback queued)\n",
            printable(&p.payment_id),
            printable(&p.status),
            printable(&r.by),
            clock.when(r.at_ms)
        ),
        None => format!(
            "payment {} is {}\n",
            printable(&p.payment_id),
            printable(&p.status)
        ),
    }
}

/// `POST /alarms/{id}/ack`.
#[derive(Debug, Deserialize)]
pub struct Acknowledged {
    pub alarm: AckedAlarm,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckedAlarm {
    pub id: i64,
    pub acked_by: Option<String>,
    pub acked_at_ms: Option<i64>,
}

pub fn acknowledged(answer: &Acknowledged, clock: &StoreNow) -> String {
    let a = &answer.alarm;
    format!(
        "alarm #{} acknowledged by {} at {}; it stays in the history (posbridge alarms --all)\n",
        a.id,
        printable(a.acked_by.as_deref().unwrap_or("?")),
        a.acked_at_ms.map_or_else(String::new, |at| clock.when(at))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30 17:03:05 UTC: 14:03 in São Paulo.
    const AT: i64 = 1_796_058_185_000;

    fn sao_paulo() -> StoreTime {
        StoreTime::new(Some("America/Sao_Paulo")).expect("zone")
    }

    fn payment(id: &str, minor: i64, currency: &str) -> serde_json::Value {
        serde_json::json!({
            "paymentId": id, "state": "approved", "amount": 12.5, "amountMinor": minor,
            "currency": currency, "method": "Venda Direta Credito", "installments": 3,
            "terminal": "lane-1", "cardBrand": "Visa", "lastDigits": "1111",
            "authorizationId": "A1", "nsu": "N1", "code": "00", "message": "APPROVED",
            "settledMinor": 0, "refundedMinor": 0, "createdAtMs": AT, "alarm": null,
            "somethingNew": true,
        })
    }

    #[test]
    fn todays_payments_in_the_store_zone_with_amounts_as_written() {
        let zone = sao_paulo();
        let clock = StoreNow {
            zone: &zone,
            now_ms: AT + 3_600_000,
        };
        let mut declined = payment("pay-2", 123_456, "EUR");
        declined["state"] = "denied".into();
        declined["code"] = "51".into();
        declined["message"] = "insufficient funds".into();
        let list: PaymentList = serde_json::from_value(serde_json::json!({
            "payments": [payment("pay-1", 1250, "BRL"), declined],
            "sinceMs": zone.start_of_day_ms(AT), "limit": 200,
            "store": { "timezone": "America/Sao_Paulo" },
        }))
        .expect("list");
        let text = payment_list(&list, &Period::Today, &clock);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Today's payments (since 2026-11-30 00:00, times in America/Sao_Paulo): 2"
        );
        assert_eq!(
            lines[1..],
            [
                "TIME   PAYMENT  STATE         AMOUNT  CARD           TERMINAL",
                "14:03  pay-1    approved    R$ 12,50  Visa ****1111  lane-1",
                "14:03  pay-2    denied    1.234,56 €  Visa ****1111  lane-1",
                "       51 insufficient funds",
            ]
        );
    }

    #[test]
    fn a_full_list_says_it_shows_only_the_newest() {
        let zone = StoreTime::utc();
        let clock = StoreNow {
            zone: &zone,
            now_ms: AT + 2 * 86_400_000,
        };
        let list: PaymentList = serde_json::from_value(serde_json::json!({
            "payments": [payment("pay-1", 1250, "BRL")], "sinceMs": 0, "limit": 1,
        }))
        .expect("list");
        let text = payment_list(&list, &Period::Since, &clock);
        assert!(
            text.starts_with(
                "Payments since 1970-01-01 00:00 (times in UTC): 1, only the newest shown\n"
            ),
            "{text}"
        );
        // Another day than today: the date is shown with the time.
        assert!(
            text.contains("\n2026-11-30 17:03  pay-1    approved  R$ 12,50"),
            "{text}"
        );
        let empty: PaymentList = serde_json::from_value(
            serde_json::json!({ "payments": [], "sinceMs": 0, "limit": 200 }),
        )
        .expect("list");
        assert_eq!(
            payment_list(&empty, &Period::Today, &clock),
            "Today's payments (since 1970-01-01 00:00, times in UTC): none\n"
        );
    }

    #[test]
    fn one_payment_field_by_field_with_receipts_and_callbacks() {
        let zone = sao_paulo();
        let clock = StoreNow {
            zone: &zone,
            now_ms: AT,
        };
        let mut value = payment("pay-1", 1250, "BRL");
        value["receipts"] =
            serde_json::json!([{ "kind": "customer", "text": "VISA\n****1111\nR$ 12,50" }]);
        value["callbacks"] = serde_json::json!([{ "state": "delivered", "attempts": 1 }]);
        value["settledMinor"] = serde_json::json!(1250);
        let p: Payment = serde_json::from_value(value).expect("payment");
        let text = super::payment(&p, &clock);
        for line in [
            "Payment        pay-1",
            "Amount         R$ 12,50",
            "Method         Venda Direta Credito (3 installments)",
            "Card           Visa ****1111",
            "Created        2026-11-30 14:03:05 -03",
            "Terminal said  00 APPROVED",
            "Settled        R$ 12,50",
            "  customer",
            "    ****1111",
            "  1. delivered, 1 attempt",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert!(!text.contains("Refunded"), "{text}");
    }

    #[test]
    fn terminals_say_blocked_offline_or_not_yet_contacted() {
        let zone = StoreTime::utc();
        let clock = StoreNow {
            zone: &zone,
            now_ms: AT,
        };
        let list: TerminalList = serde_json::from_value(serde_json::json!({ "terminals": [
            { "id": "lane-1", "serialNumber": "SIM-1", "protocol": "zvt", "online": true,
              "reachability": "online", "busy": true, "blocked": true, "blockedBy": "pay-9",
              "blockedReason": "the terminal cannot tell yet", "blockedSinceMs": AT,
              "lastSeenMs": AT, "lastError": null },
            { "id": "lane-2", "serialNumber": null, "protocol": "simulator", "online": false,
              "reachability": "not-contacted", "busy": false, "blocked": false, "lastSeenMs": null, "lastError": null },
            { "id": "lane-3", "serialNumber": "S3", "protocol": "zvt", "online": false,
              "reachability": "offline", "busy": false, "blocked": false, "lastSeenMs": AT - 86_400_000,
              "lastError": "connection refused" },
        ]}))
        .expect("terminals");
        let text = terminal_list(&list, &clock);
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "Terminals: 3 (times in UTC)",
                "TERMINAL  SERIAL  PROTOCOL   STATE              LAST SEEN         LAST ERROR",
                "lane-1    SIM-1   zvt        blocked            17:03",
                "          waits on payment pay-9 since 17:03: the terminal cannot tell yet",
                "lane-2    -       simulator  not yet contacted  -",
                "lane-3    S3      zvt        offline            2026-11-29 17:03  connection refused",
            ]
        );
    }

    #[test]
    fn callbacks_and_what_a_retry_did() {
        let zone = StoreTime::utc();
        let clock = StoreNow {
            zone: &zone,
            now_ms: AT,
        };
        let list: CallbackList = serde_json::from_value(serde_json::json!({ "callbacks": [
            { "id": 7, "paymentId": "pay-1", "state": "failing", "attempts": 3,
              "nextAttemptAtMs": AT + 60_000, "lastError": "HTTP 503" },
            { "id": 12, "paymentId": "pay-2", "state": "given_up", "attempts": 20,
              "nextAttemptAtMs": AT, "lastError": "connection refused" },
        ]}))
        .expect("callbacks");
        let text = callback_list(&list, &clock);
        assert!(text.starts_with("Callbacks not delivered yet: 2 (times in UTC)\n"));
        assert!(
            text.contains(" 7  pay-1    failing          3  17:04     HTTP 503"),
            "{text}"
        );
        assert!(
            text.contains("12  pay-2    given_up        20  -"),
            "{text}"
        );
        let one: Retried =
            serde_json::from_value(serde_json::json!({ "callbacks": [7] })).expect("one");
        assert_eq!(retried(&one), "callback 7 is due now\n");
        let all: Retried = serde_json::from_value(
            serde_json::json!({ "paymentId": "pay-1", "callbacks": [7, 9] }),
        )
        .expect("all");
        assert_eq!(retried(&all), "payment pay-1: callbacks 7, 9 are due now\n");
    }
}
