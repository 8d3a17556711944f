//! ZVT terminals (the ECR interface of the German terminal makers) over a serial line or TCP.

pub mod link;
pub mod pt_simulator;
pub mod transport;
