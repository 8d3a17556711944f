//! The display and event notifications an Adyen terminal POSTs on its own, against posbridge's
//! hand-made fixtures (`tests/data/nexo-notifications/SOURCES.md`): read in clear, opened sealed
//! under the key of the terminal they name, refused when unsealed, under another key, tampered
//! with or misrouted — and the golden envelope opens to the same notification.

#![cfg(feature = "nexo")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use firmware_protocols::nexo::crypto::{self, Direction, KeyIdentity, KeyMaterial, Nonce};
use firmware_protocols::nexo::messages::{
    MessageCategory, MessageClass, MessageError, MessageReference, Request, RequestBody,
    TransactionStatusRequest,
};
use firmware_protocols::nexo::notification::{
    Notification, NotificationBody, NotificationError, sender,
};
use firmware_protocols::nexo::seal_request;

const HAND_MADE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/nexo-notifications/"
);
const PASSPHRASE: &[u8] = b"a test passphrase";
const POI_ID: &str = "V400m-324688179";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{HAND_MADE}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn identity() -> KeyIdentity {
    KeyIdentity {
        key_identifier: "posbridge".to_owned(),
        key_version: 1,
    }
}

fn key() -> KeyMaterial {
    KeyMaterial::derive(PASSPHRASE)
}

fn golden_nonce() -> Nonce {
    Nonce::from_bytes(std::array::from_fn(|i| u8::try_from(i).unwrap()))
}

/// `clear` sealed as a terminal sends it, under `key` and `identity`.
fn sealed(clear: &[u8], key: &KeyMaterial, identity: &KeyIdentity) -> Vec<u8> {
    let request = Request::from_json(clear).unwrap();
    seal_request(&request, key, identity).unwrap()
}

#[test]
fn a_display_notification_reads_with_its_sale_and_its_text() {
    let notification =
        Notification::from_clear_json(&fixture("display-notification-wait-for-pin.json")).unwrap();
    assert_eq!(notification.header.message_class, MessageClass::Device);
    assert_eq!(notification.category(), MessageCategory::Display);
    assert_eq!(
        notification.header.service_id.as_deref(),
        Some("4821097735")
    );
    assert_eq!(notification.header.poi_id, POI_ID);
    assert_eq!(notification.prompt_lines(), ["Enter PIN", "R$ 10,99"]);
    let NotificationBody::Display(display) = &notification.body else {
        panic!("a display");
    };
    let content = display.display_output[0].output_content.as_ref().unwrap();
    let predefined = content.predefined_content.as_ref().unwrap();
    assert_eq!(predefined.event().as_deref(), Some("WAIT_FOR_PIN"));
}

#[test]
fn a_display_with_only_its_event_shows_the_event_in_words() {
    let notification =
        Notification::from_clear_json(&fixture("display-notification-event-only.json")).unwrap();
    assert_eq!(notification.prompt_lines(), ["Card inserted"]);
    let pin = Notification::display(POI_ID, "lane", None, "WAIT_FOR_PIN", " ");
    assert_eq!(pin.prompt_lines(), ["Wait for PIN"]);
}

#[test]
fn an_event_notification_reads_without_a_service_id() {
    let notification =
        Notification::from_clear_json(&fixture("event-notification-maintenance.json")).unwrap();
    assert_eq!(notification.category(), MessageCategory::Event);
    assert_eq!(notification.header.service_id, None);
    assert_eq!(notification.prompt_lines(), ["Terminal in maintenance"]);
    let NotificationBody::Event(event) = &notification.body else {
        panic!("an event");
    };
    assert_eq!(event.event_to_notify, "BeginMaintenance");
}

#[test]
fn a_request_that_is_no_notification_is_refused() {
    let status = Request::service(
        "lane",
        "1",
        POI_ID,
        RequestBody::TransactionStatusRequest(TransactionStatusRequest {
            message_reference: MessageReference::payment("lane", "1"),
        }),
    );
    assert_eq!(
        Notification::from_request(status),
        Err(NotificationError::Message(MessageError::UnknownBody(
            MessageCategory::TransactionStatus
        )))
    );
}

#[test]
fn a_sealed_notification_names_its_terminal_and_opens_under_its_key() {
    let clear = fixture("display-notification-wait-for-pin.json");
    let body = sealed(&clear, &key(), &identity());
    assert_eq!(sender(&body).unwrap(), POI_ID);
    let opened = Notification::open(&body, &key(), &identity()).unwrap();
    assert_eq!(opened, Notification::from_clear_json(&clear).unwrap());
}

#[test]
fn the_golden_envelope_opens_and_sealing_again_gives_the_same_bytes() {
    let clear = fixture("display-notification-wait-for-pin.json");
    let golden = fixture("display-notification-sealed.json");
    let request = Request::from_json(&clear).unwrap();
    let again = crypto::seal_with_nonce(
        Direction::Request,
        &request.header,
        &request.to_json().unwrap(),
        &key(),
        &identity(),
        golden_nonce(),
    )
    .unwrap();
    assert_eq!(again, golden.trim_ascii_end());
    let opened = Notification::open(&golden, &key(), &identity()).unwrap();
    assert_eq!(opened.prompt_lines(), ["Enter PIN", "R$ 10,99"]);
}

#[test]
fn an_unsealed_notification_is_refused_before_any_key_is_chosen() {
    let clear = fixture("display-notification-wait-for-pin.json");
    assert_eq!(sender(&clear), Err(NotificationError::NotSealed));
    assert_eq!(
        Notification::open(&clear, &key(), &identity()),
        Err(NotificationError::NotSealed)
    );
    assert!(matches!(
        sender(b"Nexo Service: crypto error"),
        Err(NotificationError::NotAnEnvelope(_))
    ));
    assert!(matches!(
        sender(br#"{"SaleToPOIRequest":{"NexoBlob":"AA=="}}"#),
        Err(NotificationError::NotAnEnvelope(_))
    ));
}

#[test]
fn another_key_a_tampered_byte_or_another_key_name_fail_alike() {
    let clear = fixture("display-notification-wait-for-pin.json");
    let body = sealed(&clear, &key(), &identity());
    let other_key = KeyMaterial::derive(b"another passphrase");
    assert_eq!(
        Notification::open(&body, &other_key, &identity()),
        Err(NotificationError::Crypto)
    );
    let text = String::from_utf8(body.clone()).unwrap();
    let blob_at = text.find("\"NexoBlob\":\"").unwrap() + "\"NexoBlob\":\"".len();
    let mut tampered = text.into_bytes();
    tampered[blob_at + 4] = if tampered[blob_at + 4] == b'A' {
        b'B'
    } else {
        b'A'
    };
    assert_eq!(
        Notification::open(&tampered, &key(), &identity()),
        Err(NotificationError::Crypto)
    );
    let renamed = KeyIdentity {
        key_version: 2,
        ..identity()
    };
    let under_version_2 = sealed(&clear, &key(), &renamed);
    assert_eq!(
        Notification::open(&under_version_2, &key(), &identity()),
        Err(NotificationError::Crypto)
    );
}

#[test]
fn a_clear_header_naming_another_terminal_than_the_sealed_one_is_refused() {
    let clear = fixture("display-notification-wait-for-pin.json");
    let body = String::from_utf8(sealed(&clear, &key(), &identity())).unwrap();
    // Only the clear header is outside the blob: the first POIID in the text.
    let rerouted = body.replacen(POI_ID, "V400m-999999999", 1);
    assert_eq!(sender(rerouted.as_bytes()).unwrap(), "V400m-999999999");
    assert_eq!(
        Notification::open(rerouted.as_bytes(), &key(), &identity()),
        Err(NotificationError::Misrouted)
    );
}

#[test]
fn a_display_notification_built_for_a_sale_round_trips_sealed() {
    let notification = Notification::display(
        POI_ID,
        "store-1-lane-4",
        Some("4821097735"),
        "WAIT_FOR_PIN",
        "Enter PIN",
    );
    let body = seal_request(&notification.clone().into_request(), &key(), &identity()).unwrap();
    assert_eq!(
        Notification::open(&body, &key(), &identity()).unwrap(),
        notification
    );
}
