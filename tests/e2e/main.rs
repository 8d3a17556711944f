//! End-to-end tests: the compiled daemon, played against as the Gateway and the Sales App
//! would, with callbacks received on a real local HTTP server. One test binary for speed.

mod harness;

mod alarms;
mod bad_input;
mod browser;
mod callbacks;
mod cli_output;
mod config_and_lifecycle;
mod crash;
mod disk_faults;
mod hostile_input;
mod merchants;
mod money_safety;
mod network;
mod nexo;
mod operations;
mod packaging;
mod payment_app;
mod payment_flow;
mod proof;
mod reference;
mod relay;
mod runtime_blocking;
mod secrets;
mod spec_check;
mod stale_feeds;
mod status_page;
mod tef_dial;
mod uplink;
mod zvt;
mod zvt_recovery;
