//! What a terminal says it did, read from its own journal, the same shape for every protocol.

use serde_json::Value;

/// One completed, approved sale on the terminal and what was done to it since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The sale's reference when the protocol carries one (the built-in simulator does, ZVT
    /// does not: there a charge is matched by its amount, unique in every scenario).
    pub reference: Option<String>,
    pub amount_minor: i64,
    /// Reversed on the terminal (a cancel, a late approval's reversal, a partial settlement's
    /// difference).
    pub reversed_minor: i64,
    pub refunded_minor: i64,
}

impl Charge {
    /// What the shopper pays in the end.
    pub fn net_minor(&self) -> i64 {
        self.amount_minor - self.reversed_minor - self.refunded_minor
    }
}

/// A terminal's record: every approved sale it completed.
#[derive(Debug, Clone, Default)]
pub struct TerminalRecord {
    pub charges: Vec<Charge>,
}

impl TerminalRecord {
    /// The charges of a payment: by reference where the terminal keeps one, else by amount.
    pub fn charges_of(&self, payment_id: &str, amount_minor: i64) -> Vec<&Charge> {
        self.charges
            .iter()
            .filter(|c| match &c.reference {
                Some(reference) => reference == payment_id,
                None => c.amount_minor == amount_minor,
            })
            .collect()
    }

    /// The built-in simulator's journal (`simulator-<terminal>.journal`): a sale is a charge when
    /// it is approved, completes at some time (the terminal goes on without posbridge: a sale
    /// still running is what it will be) and was not aborted.
    pub fn from_simulator_journal(text: &str) -> TerminalRecord {
        let entries: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        fn of<'a>(entries: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
            entries.iter().filter(move |e| e["kind"] == kind)
        }
        let of_kind = |kind: &'static str| of(&entries, kind);
        let aborted = |reference: &str| of_kind("aborted").any(|e| e["reference"] == reference);
        let sum = |kind: &'static str, reference: &str| -> i64 {
            of_kind(kind)
                .filter(|e| e["sale_ref"] == reference)
                .filter_map(|e| e["amount_minor"].as_i64())
                .sum()
        };
        let charges = of_kind("sale")
            .filter(|e| e["outcome"]["approved"] == true)
            .filter(|e| e["completes_at"].is_i64())
            .filter_map(|e| {
                let reference = e["reference"].as_str()?;
                (!aborted(reference)).then(|| Charge {
                    reference: Some(reference.to_string()),
                    amount_minor: e["amount_minor"].as_i64().unwrap_or(0),
                    reversed_minor: sum("reversal", reference),
                    refunded_minor: sum("refund", reference),
                })
            })
            .collect();
        TerminalRecord { charges }
    }

    /// The ZVT simulator's `--record` file: approved sales, a reversal reverses the whole sale.
    pub fn from_zvt_record(text: &str) -> TerminalRecord {
        let charges = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] == "sale" && e["approved"] == true)
            .map(|e| {
                let amount_minor = e["amount_minor"].as_i64().unwrap_or(0);
                Charge {
                    reference: None,
                    amount_minor,
                    reversed_minor: if e["reversed"] == true {
                        amount_minor
                    } else {
                        0
                    },
                    refunded_minor: 0,
                }
            })
            .collect();
        TerminalRecord { charges }
    }

    /// The TEF client simulator's `--record` file: one line per sale it took. An approval is a
    /// charge once taken (a sale still running is what it will be); one undone before its
    /// confirmation (NCN) or cancelled after it (CNC) is given back whole.
    pub fn from_tef_record(text: &str) -> TerminalRecord {
        let charges = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] == "sale" && e["approved"] == true)
            .map(|e| {
                let amount_minor = e["amount_minor"].as_i64().unwrap_or(0);
                let given_back = matches!(e["state"].as_str(), Some("undone" | "cancelled"));
                Charge {
                    reference: e["reference"].as_str().map(str::to_string),
                    amount_minor,
                    reversed_minor: if given_back { amount_minor } else { 0 },
                    refunded_minor: 0,
                }
            })
            .collect();
        TerminalRecord { charges }
    }

    /// The nexo simulator's `--record` file: one line per payment it took, with its state. An
    /// approved sale is a charge, a reversed one was given back whole (a reversal returns the
    /// whole POI transaction); a declined or aborted one charged nothing. The record does not
    /// say how a running sale will end, so it counts as a charge: a payment reported denied
    /// while its sale still runs fails, as it should (posbridge may only deny what ended).
    pub fn from_nexo_record(text: &str) -> TerminalRecord {
        let charges = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] == "sale")
            .filter_map(|e| {
                let reversed = match e["state"].as_str()? {
                    "approved" | "running" => false,
                    "reversed" => true,
                    _ => return None,
                };
                let amount_minor = e["amount_minor"].as_i64().unwrap_or(0);
                Some(Charge {
                    reference: e["reference"].as_str().map(str::to_string),
                    amount_minor,
                    reversed_minor: if reversed { amount_minor } else { 0 },
                    refunded_minor: 0,
                })
            })
            .collect();
        TerminalRecord { charges }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulator_sale_is_a_charge_unless_declined_or_aborted_running_or_not() {
        let journal = [
            r#"{"kind":"sale","reference":"a","amount_minor":100,"completes_at":10,"outcome":{"approved":true}}"#,
            r#"{"kind":"sale","reference":"b","amount_minor":200,"completes_at":50,"outcome":{"approved":true}}"#,
            r#"{"kind":"sale","reference":"c","amount_minor":300,"completes_at":10,"outcome":{"approved":true}}"#,
            r#"{"kind":"aborted","reference":"c","at":5}"#,
            r#"{"kind":"sale","reference":"d","amount_minor":400,"completes_at":10,"outcome":{"approved":false}}"#,
            r#"{"kind":"reversal","reference":"r","sale_ref":"a","amount_minor":30,"at":20}"#,
        ]
        .join("\n");
        let record = TerminalRecord::from_simulator_journal(&journal);
        assert_eq!(record.charges.len(), 2, "a running sale counts: {record:?}");
        assert_eq!(record.charges[0].net_minor(), 70);
        assert!(record.charges_of("c", 0).is_empty(), "aborted");
        assert!(record.charges_of("d", 0).is_empty(), "declined");
        assert_eq!(record.charges_of("a", 0).len(), 1);
    }

    #[test]
    fn a_zvt_charge_is_matched_by_amount_and_reversed_whole() {
        let text = "{\"kind\":\"sale\",\"approved\":true,\"reversed\":true,\"amount_minor\":1250}\n{\"kind\":\"sale\",\"approved\":false,\"reversed\":false,\"amount_minor\":990}\n";
        let record = TerminalRecord::from_zvt_record(text);
        assert_eq!(record.charges_of("any", 1250)[0].net_minor(), 0);
        assert!(record.charges_of("any", 990).is_empty());
    }

    #[test]
    fn a_tef_approval_is_a_charge_until_undone_or_cancelled() {
        let text = [
            r#"{"kind":"sale","id":1,"reference":"a","amount_minor":100,"approved":true,"state":"confirmed"}"#,
            r#"{"kind":"sale","id":2,"reference":"b","amount_minor":200,"approved":true,"state":"undone"}"#,
            r#"{"kind":"sale","id":3,"reference":"c","amount_minor":300,"approved":true,"state":"running"}"#,
            r#"{"kind":"sale","id":4,"reference":"d","amount_minor":400,"approved":false,"state":"running"}"#,
        ]
        .join("\n");
        let record = TerminalRecord::from_tef_record(&text);
        assert_eq!(record.charges.len(), 3, "{record:?}");
        assert_eq!(record.charges_of("a", 0)[0].net_minor(), 100);
        assert_eq!(record.charges_of("b", 0)[0].net_minor(), 0);
        assert_eq!(
            record.charges_of("c", 0)[0].net_minor(),
            300,
            "running counts"
        );
        assert!(record.charges_of("d", 0).is_empty());
    }

    #[test]
    fn a_nexo_sale_is_a_charge_unless_declined_or_aborted_and_running_counts() {
        let text = [
            r#"{"kind":"sale","reference":"a","service_id":"s1","amount_minor":100,"approved":true,"state":"approved"}"#,
            r#"{"kind":"sale","reference":"b","service_id":"s2","amount_minor":200,"approved":true,"state":"reversed"}"#,
            r#"{"kind":"sale","reference":"c","service_id":"s3","amount_minor":300,"approved":false,"state":"running"}"#,
            r#"{"kind":"sale","reference":"d","service_id":"s4","amount_minor":400,"approved":false,"state":"declined"}"#,
            r#"{"kind":"sale","reference":"e","service_id":"s5","amount_minor":500,"approved":false,"state":"aborted"}"#,
        ]
        .join("\n");
        let record = TerminalRecord::from_nexo_record(&text);
        assert_eq!(record.charges.len(), 3, "{record:?}");
        assert_eq!(record.charges_of("a", 0)[0].net_minor(), 100);
        assert_eq!(
            record.charges_of("b", 0)[0].net_minor(),
            0,
            "reversed whole"
        );
        assert_eq!(
            record.charges_of("c", 0)[0].net_minor(),
            300,
            "running may still charge"
        );
        assert!(record.charges_of("d", 0).is_empty(), "declined");
        assert!(record.charges_of("e", 0).is_empty(), "aborted");
    }
}
