//! `GET /manifest`: the payment methods this connector takes (no credentials, per the spec).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::pos::{CREDIT_METHOD, DEBIT_METHOD, TEST_SUITE_CARD_METHODS};

fn methods(test_suite_cards: bool) -> Vec<&'static str> {
    let mut names = vec![CREDIT_METHOD, DEBIT_METHOD];
    if test_suite_cards {
        names.extend_from_slice(TEST_SUITE_CARD_METHODS);
    }
    names
}

/// The manifest's body (also the relay tier's, which takes the two POS methods only).
pub fn manifest_body(test_suite_cards: bool) -> Value {
    let payment_methods: Vec<Value> = methods(test_suite_cards)
        .into_iter()
        .map(|name| json!({ "name": name, "allowsSplit": "onCapture" }))
        .collect();
    json!({ "paymentMethods": payment_methods, "customFields": [] })
}

/// `GET /payment-methods`'s body.
pub fn payment_methods_body(test_suite_cards: bool) -> Value {
    json!({ "paymentMethods": methods(test_suite_cards) })
}

pub async fn manifest(State(state): State<AppState>) -> Json<Value> {
    Json(manifest_body(state.engine.test_suite_cards()))
}

/// The pre-2023 endpoint some tools still call.
pub async fn payment_methods(State(state): State<AppState>) -> Json<Value> {
    Json(payment_methods_body(state.engine.test_suite_cards()))
}
