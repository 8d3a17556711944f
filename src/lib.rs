//! posbridge: a store-local daemon that implements the VTEX Payment Provider Protocol for
//! in-store card payments and drives the payment terminal. See ARCHITECTURE.md.

pub mod admin;
pub mod alarms;
pub mod cli;
pub mod clock;
pub mod config;
pub mod doctor;
pub mod error_body;
pub mod failpoint;
pub mod ids;
pub mod locale;
pub mod money;
pub mod net;
pub mod nexo_notifications;
pub mod observability;
pub mod outbox;
pub mod payment;
pub mod payment_app;
pub mod pos;
pub mod ppp;
pub mod relay;
pub mod route_limits;
pub mod seal;
pub mod secret;
pub mod server;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod terminal;
pub mod tls;
pub mod uplink;
