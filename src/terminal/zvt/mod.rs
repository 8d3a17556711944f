//! ZVT terminals (the ECR interface of the German terminal makers) over a serial line or TCP.

mod dialogue;
pub mod driver;
pub mod link;
pub mod pt_simulator;
mod recovery;
pub mod settings;
pub mod transport;

pub use driver::{ZvtDriver, ZvtSettings};
pub use settings::ZvtTerminalSettings;
