//! `GET /manifest`: the payment methods this connector takes (no credentials, per the spec).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::pos::{CREDIT_METHOD, DEBIT_METHOD, TEST_SUITE_CARD_METHODS};

fn methods(state: &AppState) -> Vec<&'static str> {
    let mut names = vec![CREDIT_METHOD, DEBIT_METHOD];
    if state.engine.test_suite_cards() {
        names.extend_from_slice(TEST_SUITE_CARD_METHODS);
    }
    names
}

pub async fn manifest(State(state): State<AppState>) -> Json<Value> {
    let payment_methods: Vec<Value> = methods(&state)
        .into_iter()
        .map(|name| json!({ "name": name, "allowsSplit": "onCapture" }))
        .collect();
    Json(json!({ "paymentMethods": payment_methods, "customFields": [] }))
}

/// The pre-2023 endpoint some tools still call.
pub async fn payment_methods(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "paymentMethods": methods(&state) }))
}
