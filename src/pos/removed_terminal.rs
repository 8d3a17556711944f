//! Payments left on a terminal that is no longer in the configuration: nothing can ask it
//! any more. A sale never handed to it was never charged (denied, called back); a sale it had
//! becomes `unresolved` with an alarm, so a person decides from its receipts. Never a guess.

use super::alarm_texts::About;
use super::{Engine, EngineError, finish, must_get};
use crate::payment::PaymentState;
use crate::payment::SaleFields;
use crate::store::alarms::{self, AlarmKind};
use crate::store::payments;

impl Engine {
    /// At start, before the lanes run: settles what sits on terminals no lane drives.
    pub(super) async fn settle_removed_terminals(&self) -> Result<(), EngineError> {
        let configured: Vec<String> = self.lanes.keys().cloned().collect();
        let now = self.now();
        let time = self.store_time.clone();
        let settled = self
            .store
            .call(move |c| {
                let mut settled = Vec::new();
                for (id, terminal, sent) in payments::on_any_terminal(c)? {
                    if configured.contains(&terminal) {
                        continue;
                    }
                    if !sent {
                        let why = SaleFields {
                            code: Some("terminal-removed".into()),
                            message: Some(format!(
                                "terminal {terminal} was removed from the configuration before the sale was sent to it"
                            )),
                            ..SaleFields::default()
                        };
                        finish::finish(c, &id, PaymentState::Denied, &why, now)?;
                        settled.push((id, terminal, PaymentState::Denied));
                        continue;
                    }
                    payments::set_state(c, &id, PaymentState::Unresolved, now)?;
                    alarms::clear(c, &id, &[AlarmKind::Unknown], now)?;
                    let p = must_get(c, &id)?;
                    let text = About {
                        payment: &p,
                        time: &time,
                        now,
                    }
                    .unresolved(&format!(
                        "terminal {terminal} is no longer in posbridge's configuration, so posbridge cannot ask it"
                    ));
                    alarms::raise(c, AlarmKind::Unresolved, Some(&id), None, &text, now)?;
                    settled.push((id, terminal, PaymentState::Unresolved));
                }
                Ok(settled)
            })
            .await?;
        for (payment_id, terminal, state) in settled {
            if state == PaymentState::Unresolved {
                tracing::error!(payment_id = %payment_id, terminal = %terminal, "ALARM: the sale's terminal is no longer configured; the payment stays undefined until a person decides");
            } else {
                tracing::warn!(payment_id = %payment_id, terminal = %terminal, "denied: its terminal was removed from the configuration before the sale was sent");
            }
            self.publish(&payment_id, state);
        }
        self.outbox.wake();
        Ok(())
    }
}
