//! nexo / Adyen Terminal API in local mode: an Adyen terminal on the store network, driven by
//! HTTPS POSTs of encrypted Terminal API messages (codec in `firmware_protocols::nexo`).
//! `settings` reads the entry's keys and opens the terminal; `connection` is the HTTPS link
//! (the terminal's certificate checked against `ca_file` and its POIID name, not its IP);
//! `driver` runs sales, their recovery by `TransactionStatus`, aborts and reversals, each
//! journaled before it is sent; `notifications` turns the display and event notifications the
//! terminal POSTs to posbridge into prompts for the sale it runs. `simulator` plays the terminal
//! for tests and demos.

mod connection;
mod driver;
pub mod notifications;
pub mod settings;
pub mod simulator;

pub use notifications::NotificationDesk;
pub use settings::NexoSettings;
