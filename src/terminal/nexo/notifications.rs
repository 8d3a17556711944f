//! The display and event notifications Adyen terminals POST to posbridge on their own, turned
//! into prompts on the Payment App feed.
//!
//! Each nexo terminal, when it opens, leaves at the [`NotificationDesk`] its POIID, its key and
//! its [`PromptSink`]; its driver keeps the desk told which sale it runs ([`RunningSale`]). A
//! notification is shown only if it opens under the key of the terminal its header names (the
//! seal is the only proof that the terminal sent it), and only for that terminal's running
//! sale: the one its `ServiceID` names, or, with none, the one running now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use firmware_protocols::nexo::crypto::{KeyIdentity, KeyMaterial};
use firmware_protocols::nexo::notification::{Notification, NotificationError, sender};

use crate::terminal::PromptSink;

/// The shortest digit run hidden from a shown or logged notification: a terminal should never
/// display a card number, and if one did, no run this long (account numbers, PANs) gets out.
const HIDDEN_DIGIT_RUN: usize = 7;
/// The digits of a hidden run that stay, as on receipts.
const KEPT_LAST_DIGITS: usize = 4;

/// The nexo terminals that may notify posbridge, by POIID. Cloning shares it.
#[derive(Clone, Default)]
pub struct NotificationDesk {
    terminals: Arc<Mutex<HashMap<String, Arc<Recipient>>>>,
}

/// A terminal the desk knows: what opens its notifications and where they are shown.
struct Recipient {
    terminal_id: String,
    key: KeyMaterial,
    identity: KeyIdentity,
    prompts: PromptSink,
    sale: RunningSale,
}

/// Two configured terminals with one POIID: their notifications could not be told apart.
#[derive(Debug, thiserror::Error)]
#[error("poi_id {poi_id} is already terminal {terminal}'s")]
pub struct PoiIdTaken {
    poi_id: String,
    terminal: String,
}

/// Why a notification was refused: nothing of it was shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a Terminal API notification: {0}")]
    Malformed(String),
    #[error(
        "the notification is not sealed: configure the display and event URLs with encryption on"
    )]
    NotSealed,
    #[error("no nexo terminal is configured with this POIID")]
    UnknownTerminal,
    /// Does not open under the terminal's key, names another key, or its sealed header names
    /// another terminal.
    #[error("the notification does not open under the terminal's key")]
    BadSeal,
    #[error("the message is not a display or event notification")]
    NotANotification,
}

/// What became of a notification that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Shown on the feed of `payment_id`.
    Shown {
        terminal_id: String,
        payment_id: String,
    },
    /// Authentic, but for no sale the terminal runs now (or with no text): dropped.
    Dropped { terminal_id: String },
}

impl NotificationDesk {
    /// Adds a terminal; its driver tells the returned [`RunningSale`] what it runs.
    pub(super) fn register(
        &self,
        poi_id: &str,
        terminal_id: &str,
        key: KeyMaterial,
        identity: KeyIdentity,
        prompts: PromptSink,
    ) -> Result<RunningSale, PoiIdTaken> {
        let mut terminals = self.terminals();
        if let Some(known) = terminals.get(poi_id) {
            return Err(PoiIdTaken {
                poi_id: poi_id.to_owned(),
                terminal: known.terminal_id.clone(),
            });
        }
        let sale = RunningSale::default();
        terminals.insert(
            poi_id.to_owned(),
            Arc::new(Recipient {
                terminal_id: terminal_id.to_owned(),
                key,
                identity,
                prompts,
                sale: sale.clone(),
            }),
        );
        Ok(sale)
    }

    fn terminals(&self) -> MutexGuard<'_, HashMap<String, Arc<Recipient>>> {
        // Only inserts and lookups happen under the lock: a panic cannot leave it half-done.
        self.terminals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a notification, checks it comes from a configured terminal, and shows its text on
    /// the feed of the sale it is about.
    pub fn receive(&self, body: &[u8]) -> Result<Delivered, Refused> {
        let poi_id = sender(body).map_err(refused)?;
        let recipient = self
            .terminals()
            .get(&poi_id)
            .cloned()
            .ok_or(Refused::UnknownTerminal)?;
        let notification =
            Notification::open(body, &recipient.key, &recipient.identity).map_err(refused)?;
        Ok(recipient.deliver(&notification))
    }
}

fn refused(error: NotificationError) -> Refused {
    match error {
        NotificationError::NotAnEnvelope(why) => Refused::Malformed(why),
        NotificationError::NotSealed => Refused::NotSealed,
        NotificationError::Crypto | NotificationError::Misrouted => Refused::BadSeal,
        NotificationError::Message(_) => Refused::NotANotification,
    }
}

impl Recipient {
    fn deliver(&self, notification: &Notification) -> Delivered {
        let terminal_id = self.terminal_id.clone();
        let service_id = notification.header.service_id.as_deref();
        let category = notification.category();
        let Some(payment_id) = self.sale.payment_for(service_id) else {
            tracing::debug!(
                terminal = %self.terminal_id,
                ?category,
                service_id = service_id.unwrap_or_default(),
                "nexo notification for no running sale: dropped"
            );
            return Delivered::Dropped { terminal_id };
        };
        let lines = notification.prompt_lines();
        if lines.is_empty() {
            tracing::debug!(payment_id = %payment_id, terminal = %self.terminal_id, ?category, "nexo notification without text: dropped");
            return Delivered::Dropped { terminal_id };
        }
        let text = mask_digit_runs(&lines.join(" · "));
        tracing::info!(payment_id = %payment_id, terminal = %self.terminal_id, ?category, "nexo notification shown");
        self.prompts.show(&payment_id, &text);
        Delivered::Shown {
            terminal_id,
            payment_id,
        }
    }
}

/// The sale a terminal runs now, as its driver tells: what its notifications are about.
#[derive(Clone, Default)]
pub(super) struct RunningSale(Arc<Mutex<Option<Running>>>);

struct Running {
    payment_id: String,
    service_id: String,
}

/// Clears the running sale when the driver's sale ends, by any path.
pub(super) struct SaleEnds(RunningSale);

impl RunningSale {
    /// `payment_id` runs on the terminal under `service_id` until the returned value drops.
    pub(super) fn start(&self, payment_id: &str, service_id: &str) -> SaleEnds {
        *self.slot() = Some(Running {
            payment_id: payment_id.to_owned(),
            service_id: service_id.to_owned(),
        });
        SaleEnds(self.clone())
    }

    fn slot(&self) -> MutexGuard<'_, Option<Running>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The payment a notification is about: the running sale, if the notification names no
    /// `ServiceID` or names that sale's.
    fn payment_for(&self, service_id: Option<&str>) -> Option<String> {
        self.slot()
            .as_ref()
            .filter(|running| service_id.is_none_or(|named| named == running.service_id))
            .map(|running| running.payment_id.clone())
    }
}

impl Drop for SaleEnds {
    fn drop(&mut self) {
        *self.0.slot() = None;
    }
}

/// Hides every run of [`HIDDEN_DIGIT_RUN`] or more digits (single spaces or dashes between
/// digits belong to the run, as card numbers are printed) but its last four digits.
fn mask_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut masked = String::with_capacity(text.len());
    let mut index = 0;
    while let Some(&first) = chars.get(index) {
        if !first.is_ascii_digit() {
            masked.push(first);
            index += 1;
            continue;
        }
        let start = index;
        let mut digits = 0;
        while let Some(&next) = chars.get(index) {
            let joins_digits =
                matches!(next, ' ' | '-') && chars.get(index + 1).is_some_and(char::is_ascii_digit);
            if next.is_ascii_digit() {
                digits += 1;
            } else if !joins_digits {
                break;
            }
            index += 1;
        }
        let run = chars.get(start..index).unwrap_or_default();
        if digits < HIDDEN_DIGIT_RUN {
            masked.extend(run);
            continue;
        }
        let mut left_to_hide = digits - KEPT_LAST_DIGITS;
        for &character in run {
            if character.is_ascii_digit() && left_to_hide > 0 {
                masked.push('*');
                left_to_hide -= 1;
            } else {
                masked.push(character);
            }
        }
    }
    masked
}

#[cfg(test)]
mod tests {
    use firmware_protocols::nexo::seal_request;
    use tokio::sync::broadcast;

    use super::*;
    use crate::terminal::TerminalEvent;

    const POI_ID: &str = "V400m-324688179";

    fn identity() -> KeyIdentity {
        KeyIdentity {
            key_identifier: "posbridge".to_owned(),
            key_version: 1,
        }
    }

    fn key() -> KeyMaterial {
        KeyMaterial::derive(b"lane 4 passphrase")
    }

    /// A desk with lane-4, its running sale and what its prompts show.
    fn desk() -> (
        NotificationDesk,
        RunningSale,
        broadcast::Receiver<TerminalEvent>,
    ) {
        let (events, shown) = broadcast::channel(16);
        let desk = NotificationDesk::default();
        let sale = desk
            .register(
                POI_ID,
                "lane-4",
                key(),
                identity(),
                PromptSink::new("lane-4", events),
            )
            .expect("registered");
        (desk, sale, shown)
    }

    fn display(service_id: Option<&str>, text: &str, key: &KeyMaterial) -> Vec<u8> {
        let notification =
            Notification::display(POI_ID, "store-1-lane-4", service_id, "WAIT_FOR_PIN", text);
        seal_request(&notification.into_request(), key, &identity()).expect("sealed")
    }

    #[test]
    fn a_sealed_display_is_shown_for_the_sale_its_service_id_names() {
        let (desk, sale, mut shown) = desk();
        let _running = sale.start("pay-1", "4821097735");
        let delivered = desk.receive(&display(Some("4821097735"), "Enter PIN", &key()));
        assert_eq!(
            delivered,
            Ok(Delivered::Shown {
                terminal_id: "lane-4".into(),
                payment_id: "pay-1".into()
            })
        );
        let event = shown.try_recv().expect("a prompt");
        assert_eq!(
            (event.terminal_id.as_str(), event.reference.as_str()),
            ("lane-4", "pay-1")
        );
        assert_eq!(event.text, "Enter PIN");
    }

    #[test]
    fn without_a_service_id_the_running_sale_gets_it_and_with_another_nobody() {
        let (desk, sale, mut shown) = desk();
        let running = sale.start("pay-2", "1111");
        assert!(matches!(
            desk.receive(&display(None, "Processing", &key())),
            Ok(Delivered::Shown { .. })
        ));
        assert_eq!(shown.try_recv().expect("a prompt").reference, "pay-2");
        assert!(matches!(
            desk.receive(&display(Some("2222"), "Stale", &key())),
            Ok(Delivered::Dropped { .. })
        ));
        drop(running);
        assert!(matches!(
            desk.receive(&display(None, "After the sale", &key())),
            Ok(Delivered::Dropped { .. })
        ));
        assert!(shown.try_recv().is_err(), "nothing else shown");
    }

    #[test]
    fn unsealed_unknown_or_badly_sealed_notifications_are_refused_and_show_nothing() {
        let (desk, sale, mut shown) = desk();
        let _running = sale.start("pay-3", "1");
        let clear = Notification::display(POI_ID, "s", None, "WAIT_FOR_PIN", "Enter PIN")
            .into_request()
            .to_json()
            .expect("json");
        assert_eq!(desk.receive(&clear), Err(Refused::NotSealed));
        let other_key = KeyMaterial::derive(b"not lane 4's");
        assert_eq!(
            desk.receive(&display(None, "x", &other_key)),
            Err(Refused::BadSeal)
        );
        let stranger = String::from_utf8(display(None, "x", &key()))
            .expect("utf-8")
            .replace(POI_ID, "V400m-000000000");
        assert_eq!(
            desk.receive(stranger.as_bytes()),
            Err(Refused::UnknownTerminal)
        );
        assert!(matches!(
            desk.receive(b"not json"),
            Err(Refused::Malformed(_))
        ));
        assert!(shown.try_recv().is_err(), "nothing shown");
    }

    #[test]
    fn a_second_terminal_with_the_same_poi_id_is_refused() {
        let (desk, _sale, _shown) = desk();
        let again = desk.register(
            POI_ID,
            "lane-5",
            key(),
            identity(),
            PromptSink::new("lane-5", broadcast::channel(1).0),
        );
        let error = again.err().expect("refused").to_string();
        assert!(error.contains("lane-4"), "{error}");
    }

    #[test]
    fn long_digit_runs_keep_only_their_last_four_digits() {
        assert_eq!(
            mask_digit_runs("Card 4111 1111 1111 1111"),
            "Card **** **** **** 1111"
        );
        assert_eq!(mask_digit_runs("Acct 1234567"), "Acct ***4567");
        assert_eq!(
            mask_digit_runs("R$ 1.234,56 on 30/11 12:00 ref 123456"),
            "R$ 1.234,56 on 30/11 12:00 ref 123456"
        );
    }
}
