//! TEF Dial ("Gerenciador Padrão"): the vendor-neutral file exchange through which a Brazilian
//! store's TEF client (PayGo, SiTef, Hiper, Auttar…) takes card payments. posbridge writes
//! `IntPos.001` requests in the client's request folder and reads `IntPos.Sts` and the answer in
//! its response folder (`exchange`); the driver runs sales, their two-phase confirmation and
//! cancellations over it, journaled step by step (`driver`); `settings` reads the entry's keys;
//! `simulator` plays the TEF client, for tests and demos.

mod driver;
mod exchange;
pub mod settings;
pub mod simulator;

pub use settings::TefDialSettings;
