//! What an Adyen terminal sends on its own, in local mode, to the display and event URLs
//! configured for it (Adyen's Management API: `displayUrls`, `eventUrls`): a `SaleToPOIRequest`
//! carrying a `DisplayRequest` (what it shows during a sale — `MessageClass` `Device`, category
//! `Display`, the sale's `ServiceID` in the header) or an `EventNotification` (category `Event`,
//! a `ServiceID` only when the event is about a request).
//!
//! Reading one takes two steps, because the key it is sealed with depends on who sent it:
//! [`sender`] reads the `POIID` the clear header names (and refuses a notification sent in
//! clear), then [`Notification::open`] opens it under that terminal's key. A notification that
//! does not open is refused the same way whatever the cause, as an answer would be.

use super::crypto::{self, Direction, KeyIdentity, KeyMaterial, OpenError};
use super::messages::{
    DisplayOutput, DisplayRequest, EventNotification, MessageCategory, MessageClass, MessageError,
    MessageHeader, MessageType, OutputContent, OutputText, PROTOCOL_VERSION, PredefinedContent,
    Request, RequestBody,
};

/// A display or event notification, read and (when it came sealed) authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The header from inside the envelope: the authenticated one.
    pub header: MessageHeader,
    pub body: NotificationBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationBody {
    Display(DisplayRequest),
    Event(Box<EventNotification>),
}

/// Why a notification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// Not a `SaleToPOIRequest` with a `MessageHeader` at all.
    #[error("not a Terminal API notification: {0}")]
    NotAnEnvelope(String),
    /// Sent in clear: nothing proves which terminal sent it.
    #[error("the notification is not sealed with the terminal's key")]
    NotSealed,
    /// Does not decrypt or authenticate under the terminal's key, or names another key:
    /// deliberately one error, whatever the cause.
    #[error("the notification does not open under the terminal's key")]
    Crypto,
    /// Opens under the key of the terminal its clear header names, but the authenticated
    /// header inside names another terminal.
    #[error("the notification's sealed header names another terminal than its clear header")]
    Misrouted,
    /// Authenticated, but a request of another kind (a payment…), or malformed.
    #[error(transparent)]
    Message(#[from] MessageError),
}

impl Notification {
    /// The notification a clear request carries; any other request is refused.
    pub fn from_request(request: Request) -> Result<Notification, NotificationError> {
        let body = match request.body {
            RequestBody::DisplayRequest(display) => NotificationBody::Display(display),
            RequestBody::EventNotification(event) => NotificationBody::Event(Box::new(event)),
            _ => {
                return Err(MessageError::UnknownBody(request.header.message_category).into());
            }
        };
        Ok(Notification {
            header: request.header,
            body,
        })
    }

    /// Reads a clear `{"SaleToPOIRequest": {…}}` notification (the plaintext of a sealed one,
    /// or what a terminal sends with encryption off).
    pub fn from_clear_json(bytes: &[u8]) -> Result<Notification, NotificationError> {
        Notification::from_request(Request::from_json(bytes)?)
    }

    /// Opens a sealed notification under the key of the terminal [`sender`] named: the key
    /// identifier and version must be that terminal's, the HMAC must verify, and the
    /// authenticated header must name the same terminal as the clear one.
    pub fn open(
        body: &[u8],
        key: &KeyMaterial,
        identity: &KeyIdentity,
    ) -> Result<Notification, NotificationError> {
        let opened = crypto::open(body, key).map_err(|error| match error {
            OpenError::NotAnEnvelope(why) => NotificationError::NotAnEnvelope(why),
            OpenError::Clear => NotificationError::NotSealed,
            OpenError::Crypto => NotificationError::Crypto,
        })?;
        if opened.direction != Direction::Request {
            return Err(NotificationError::NotAnEnvelope(
                "a SaleToPOIResponse is an answer, not a notification".to_owned(),
            ));
        }
        if opened.trailer.key_identifier != identity.key_identifier
            || opened.trailer.key_version != identity.key_version
        {
            return Err(NotificationError::Crypto);
        }
        let notification = Notification::from_clear_json(&opened.plaintext)?;
        if notification.header.poi_id != opened.clear_header.poi_id {
            return Err(NotificationError::Misrouted);
        }
        Ok(notification)
    }

    /// A display notification as a terminal sends one during a sale: `text` on the cashier's
    /// display, with the display `event` it stands for (`WAIT_FOR_PIN`). The terminal's side,
    /// for simulators and tests.
    pub fn display(
        poi_id: &str,
        sale_id: &str,
        service_id: Option<&str>,
        event: &str,
        text: &str,
    ) -> Notification {
        Notification {
            header: MessageHeader {
                protocol_version: Some(PROTOCOL_VERSION.to_owned()),
                message_class: MessageClass::Device,
                message_category: MessageCategory::Display,
                message_type: MessageType::Request,
                service_id: service_id.map(str::to_owned),
                device_id: None,
                sale_id: sale_id.to_owned(),
                poi_id: poi_id.to_owned(),
            },
            body: NotificationBody::Display(DisplayRequest {
                display_output: vec![DisplayOutput {
                    device: "CashierDisplay".to_owned(),
                    info_qualify: "Status".to_owned(),
                    output_content: Some(OutputContent {
                        output_format: Some("Text".to_owned()),
                        predefined_content: Some(PredefinedContent {
                            reference_id: format!("event={event}"),
                            language: None,
                        }),
                        output_text: vec![OutputText {
                            text: text.to_owned(),
                        }],
                    }),
                }],
            }),
        }
    }

    /// The request that carries it, to seal and send (`nexo::seal_request`).
    pub fn into_request(self) -> Request {
        let body = match self.body {
            NotificationBody::Display(display) => RequestBody::DisplayRequest(display),
            NotificationBody::Event(event) => RequestBody::EventNotification(*event),
        };
        Request {
            header: self.header,
            body,
        }
    }

    pub fn category(&self) -> MessageCategory {
        match self.body {
            NotificationBody::Display(_) => MessageCategory::Display,
            NotificationBody::Event(_) => MessageCategory::Event,
        }
    }

    /// What the terminal shows, as prompt lines (empty lines left out).
    pub fn prompt_lines(&self) -> Vec<String> {
        let lines = match &self.body {
            NotificationBody::Display(display) => display.prompt_lines(),
            NotificationBody::Event(event) => event.prompt_lines(),
        };
        lines
            .into_iter()
            .filter(|line| !line.trim().is_empty())
            .collect()
    }
}

/// The `POIID` a sealed notification names in its clear header: whose key opens it. Nothing in
/// the clear header is trusted beyond choosing that key. A notification sent in clear is
/// refused: nothing would prove its sender.
pub fn sender(body: &[u8]) -> Result<String, NotificationError> {
    let clear = crypto::clear_parts(body).map_err(|error| match error {
        OpenError::NotAnEnvelope(why) => NotificationError::NotAnEnvelope(why),
        other => NotificationError::NotAnEnvelope(other.to_string()),
    })?;
    if clear.direction != Direction::Request {
        return Err(NotificationError::NotAnEnvelope(
            "a SaleToPOIResponse is no notification".to_owned(),
        ));
    }
    let header = clear.header.ok_or_else(|| {
        NotificationError::NotAnEnvelope("missing field `MessageHeader`".to_owned())
    })?;
    if !clear.sealed {
        return Err(NotificationError::NotSealed);
    }
    Ok(header.poi_id)
}
