//! TEF Dial ("Gerenciador Padrão"), the Brazilian file exchange between a
//! POS and its TEF client (PayGo, SiTef, Hiper TEF, Auttar…).
//!
//! * [`record`] — the file format: `NNN-NNN = value` lines, Latin-1,
//!   closed by `999-999 = 0`.
//! * [`message`] — typed requests, the `IntPos.Sts` status and the answer.
//!
//! Sans-I/O: writing `IntPos.tmp`, renaming and polling belong to the caller.

pub mod message;
pub mod record;

pub use message::{
    Answer, Cancellation, CardType, Confirmation, ConfirmationNeed, Financing, Installments,
    MessageError, Operation, Request, RequestId, Sale, Status,
};
pub use record::{EncodeError, FieldId, ParseError, Record};
