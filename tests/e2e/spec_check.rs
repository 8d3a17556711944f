//! Every PPP answer of the suite, checked against the official spec: the harness hands each
//! response (`Gateway::post_raw`) to [`check_response`], which finds the schema the spec gives
//! for (method, path template, status) and validates the body against it. A body that breaks
//! it panics with the JSON path, the status and the body.
//!
//! The spec is read at test time from `../shared/spec/` beside the repository (CI clones it
//! there too). Statuses the spec gives no schema for (404, 413, 401, 429, 503, a 400 of
//! cancel / settle / refund…) and paths it does not list (`inbound-request`, the submitUrl)
//! are not checked: there is nothing to check them against.
//!
//! The validator covers the OpenAPI 3.0 keywords the spec uses (`$ref`, `type`, `properties`,
//! `required`, `items`, `enum`, `nullable`) and the combinators (`allOf`, `anyOf`, `oneOf`,
//! `additionalProperties`); a keyword it does not know fails loudly instead of passing unseen.
//! A JSON-schema crate would be a long build for this much.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

/// Where the spec lies, relative to this repository.
const SPEC_FILE: &str = "../shared/spec/VTEX - Payment Provider Protocol.json";

/// Keywords that describe and constrain nothing.
const ANNOTATIONS: [&str; 6] = [
    "description",
    "example",
    "examples",
    "title",
    "deprecated",
    "default",
];

/// Keywords the validator checks.
const CHECKED: [&str; 11] = [
    "$ref",
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "nullable",
    "allOf",
    "anyOf",
    "oneOf",
    "additionalProperties",
];

/// The spec document, with the corrections of [`correct_contradictions`].
pub struct Spec {
    document: Value,
}

/// What the spec expects of a response body.
#[derive(Debug)]
pub enum Expected<'a> {
    Schema(&'a Value),
    /// Nothing to check, and why.
    NoSchema(&'static str),
}

impl Spec {
    pub fn path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(SPEC_FILE)
    }

    /// The spec, read once. Missing: `None` with a visible message locally, a panic under CI
    /// (where it must be there).
    pub fn shared() -> Option<&'static Spec> {
        static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
        SPEC.get_or_init(|| {
            let path = Self::path();
            match std::fs::read(&path) {
                Ok(bytes) => Some(Spec::from_document(
                    serde_json::from_slice(&bytes).expect("the spec is JSON"),
                )),
                Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                    panic!("the PPP spec is missing at {}: {e}", path.display())
                }
                Err(e) => {
                    eprintln!(
                        "SKIPPED: responses not checked against the PPP spec: {} ({e})",
                        path.display()
                    );
                    None
                }
            }
        })
        .as_ref()
    }

    pub fn from_document(mut document: Value) -> Spec {
        correct_contradictions(&mut document);
        Spec { document }
    }

    /// The schema for a response to `method` on `path` (a request path; a query is ignored)
    /// with `status`.
    pub fn response_schema(&self, method: &str, path: &str, status: u16) -> Expected<'_> {
        let path = path.split('?').next().unwrap_or(path);
        let Some(paths) = self.document["paths"].as_object() else {
            return Expected::NoSchema("the spec lists no paths");
        };
        let Some(item) = paths
            .iter()
            .find(|(template, _)| matches_template(template, path))
            .map(|(_, item)| item)
        else {
            return Expected::NoSchema("the spec does not list this path");
        };
        let Some(operation) = item.get(method.to_ascii_lowercase()) else {
            return Expected::NoSchema("the spec does not list this method for the path");
        };
        let Some(response) = operation["responses"].get(status.to_string()) else {
            return Expected::NoSchema("the spec gives no response for this status");
        };
        match response.pointer("/content/application~1json/schema") {
            Some(schema) => Expected::Schema(schema),
            None => Expected::NoSchema("the spec gives no JSON body for this response"),
        }
    }

    /// Every way `value` breaks `schema`, each naming its JSON path (`$.a.b[2]`).
    pub fn validate(&self, schema: &Value, value: &Value) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        self.check(schema, value, "$", &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn resolve<'a>(&'a self, schema: &'a Value, errors: &mut Vec<String>) -> Option<&'a Value> {
        let Some(reference) = schema.get("$ref") else {
            return Some(schema);
        };
        let target = reference
            .as_str()
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| self.document.pointer(pointer));
        if target.is_none() {
            errors.push(format!("the spec's reference {reference} leads nowhere"));
        }
        // A reference may lead to another.
        target.and_then(|t| self.resolve(t, errors))
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(schema) = self.resolve(schema, errors) else {
            return;
        };
        let Some(keywords) = schema.as_object() else {
            errors.push(format!(
                "{at}: the spec's schema is not an object: {schema}"
            ));
            return;
        };
        for keyword in keywords.keys() {
            if !CHECKED.contains(&keyword.as_str()) && !ANNOTATIONS.contains(&keyword.as_str()) {
                errors.push(format!(
                    "{at}: the validator does not know the keyword `{keyword}`"
                ));
            }
        }
        if value.is_null() {
            if schema["nullable"] == true {
                return;
            }
            if let Some(expected) = schema["type"].as_str() {
                errors.push(format!("{at}: null, but the spec says {expected}"));
                return;
            }
        }
        if let Some(expected) = schema["type"].as_str()
            && !has_type(value, expected)
        {
            errors.push(format!("{at}: {value} is not of type {expected}"));
            return;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        if let Some(object) = value.as_object() {
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap_or_default();
                if !object.contains_key(name) {
                    errors.push(format!("{at}.{name}: missing (required)"));
                }
            }
            let properties = schema["properties"].as_object();
            for (name, field) in object {
                match properties.and_then(|p| p.get(name)) {
                    Some(property) => self.check(property, field, &format!("{at}.{name}"), errors),
                    None => match &schema["additionalProperties"] {
                        Value::Bool(false) => {
                            errors.push(format!("{at}.{name}: not allowed by the spec"))
                        }
                        extra @ Value::Object(_) => {
                            self.check(extra, field, &format!("{at}.{name}"), errors)
                        }
                        _ => {}
                    },
                }
            }
        }
        if let (Some(items), Some(elements)) = (schema.get("items"), value.as_array()) {
            for (i, element) in elements.iter().enumerate() {
                self.check(items, element, &format!("{at}[{i}]"), errors);
            }
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            self.check(part, value, at, errors);
        }
        for (keyword, fits) in [
            ("anyOf", (|n| n >= 1) as fn(usize) -> bool),
            ("oneOf", |n| n == 1),
        ] {
            let Some(choices) = schema[keyword].as_array() else {
                continue;
            };
            let passing = choices
                .iter()
                .filter(|choice| {
                    let mut inner = Vec::new();
                    self.check(choice, value, at, &mut inner);
                    inner.is_empty()
                })
                .count();
            if !fits(passing) {
                errors.push(format!(
                    "{at}: {passing} of the {keyword} choices fit {value}"
                ));
            }
        }
    }
}

/// The spec's schema against its own prose. Where they contradict, the prose (what the Gateway
/// does) wins, and here is the one place that says so.
fn correct_contradictions(document: &mut Value) {
    // Create's `authorizationId` is a required, non-nullable string, yet "should be sent when
    // the payment is authorized. In other statuses, it should be absent or `null`".
    if let Some(property) = document
        .pointer_mut("/components/schemas/Success-Approved/properties/authorizationId")
        .and_then(Value::as_object_mut)
    {
        property.insert("nullable".into(), Value::Bool(true));
    }
}

/// `/payments/{paymentId}/cancellations` matches `/payments/p-1/cancellations`: a `{name}`
/// segment matches any one non-empty segment.
fn matches_template(template: &str, path: &str) -> bool {
    let template: Vec<&str> = template.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    template.len() == path.len()
        && template.iter().zip(&path).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "string" => value.is_string(),
        "number" => value.is_number(),
        // 1.0 is an integer to JSON Schema.
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

/// Checks one response of the suite; a body that breaks the spec's schema panics.
pub fn check_response(method: &str, path: &str, status: u16, body: &Value) {
    let Some(spec) = Spec::shared() else {
        return;
    };
    if let Expected::Schema(schema) = spec.response_schema(method, path, status)
        && let Err(errors) = spec.validate(schema, body)
    {
        panic!(
            "{method} {path} answered {status}, against the PPP spec's schema:\n  {}\nbody: {body}",
            errors.join("\n  ")
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn hand_made() -> Spec {
        Spec::from_document(json!({
            "paths": {
                "/things/{id}": { "post": { "responses": {
                    "200": { "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/Thing" } } } },
                    "204": { "description": "no body" },
                } } },
            },
            "components": { "schemas": {
                "Thing": {
                    "type": "object",
                    "required": ["id", "app"],
                    "properties": {
                        "id": { "type": "string", "description": "the id" },
                        "count": { "type": "integer" },
                        "note": { "type": "string", "nullable": true },
                        "kind": { "type": "string", "enum": ["a", "b"] },
                        "app": { "$ref": "#/components/schemas/App" },
                        "list": { "type": "array", "items": { "$ref": "#/components/schemas/App" } },
                    },
                },
                "App": {
                    "type": "object",
                    "required": ["appName"],
                    "properties": { "appName": { "type": "string" } },
                    "additionalProperties": false,
                },
            } },
        }))
    }

    fn errors_of(spec: &Spec, body: Value) -> Vec<String> {
        let Expected::Schema(schema) = spec.response_schema("POST", "/things/t-1", 200) else {
            panic!("the hand-made spec has a schema");
        };
        spec.validate(schema, &body).err().unwrap_or_default()
    }

    #[test]
    fn a_body_that_fits_passes() {
        let spec = hand_made();
        let body = json!({
            "id": "t", "count": 3, "note": null, "kind": "a", "app": { "appName": "x" },
            "list": [{ "appName": "y" }], "extra": true,
        });
        assert_eq!(errors_of(&spec, body), Vec::<String>::new());
    }

    #[test]
    fn a_missing_required_field_names_its_json_path() {
        let spec = hand_made();
        assert_eq!(
            errors_of(&spec, json!({ "id": "t", "app": {} })),
            ["$.app.appName: missing (required)"]
        );
        assert_eq!(
            errors_of(&spec, json!({ "app": { "appName": "x" } })),
            ["$.id: missing (required)"]
        );
    }

    #[test]
    fn wrong_types_nulls_enums_items_and_extra_fields_fail_with_their_path() {
        let spec = hand_made();
        let app = json!({ "appName": "x" });
        for (body, expected) in [
            (
                json!({ "id": 1, "app": app }),
                "$.id: 1 is not of type string",
            ),
            (
                json!({ "id": null, "app": app }),
                "$.id: null, but the spec says string",
            ),
            (
                json!({ "id": "t", "count": 1.5, "app": app }),
                "$.count: 1.5 is not of type integer",
            ),
            (
                json!({ "id": "t", "kind": "c", "app": app }),
                "$.kind: \"c\" is not one of",
            ),
            (
                json!({ "id": "t", "app": app, "list": [app, { "appName": 2 }] }),
                "$.list[1].appName: 2 is not of type string",
            ),
            (
                json!({ "id": "t", "app": { "appName": "x", "more": 1 } }),
                "$.app.more: not allowed by the spec",
            ),
            (json!("not json"), "$: \"not json\" is not of type object"),
        ] {
            let errors = errors_of(&spec, body.clone());
            assert_eq!(errors.len(), 1, "{body}: {errors:?}");
            assert!(errors[0].starts_with(expected), "{body}: {errors:?}");
        }
        // 2.0 is an integer.
        assert!(errors_of(&spec, json!({ "id": "t", "count": 2.0, "app": app })).is_empty());
    }

    #[test]
    fn combinators_and_unknown_keywords() {
        let spec = Spec::from_document(json!({}));
        let one_of = json!({ "oneOf": [{ "type": "string" }, { "type": "integer" }] });
        assert!(spec.validate(&one_of, &json!(1)).is_ok());
        assert!(spec.validate(&one_of, &json!(true)).is_err());
        let any_of = json!({ "anyOf": [{ "type": "number" }, { "type": "integer" }] });
        assert!(spec.validate(&any_of, &json!(1)).is_ok());
        let one_of_both = json!({ "oneOf": [{ "type": "number" }, { "type": "integer" }] });
        assert!(spec.validate(&one_of_both, &json!(1)).is_err());
        let all_of = json!({ "allOf": [{ "required": ["a"] }, { "required": ["b"] }] });
        assert_eq!(
            spec.validate(&all_of, &json!({ "a": 1 })),
            Err(vec!["$.b: missing (required)".to_string()])
        );
        let unknown = json!({ "type": "string", "pattern": "^a" });
        let errors = spec.validate(&unknown, &json!("a")).expect_err("unknown");
        assert!(errors[0].contains("`pattern`"), "{errors:?}");
    }

    #[test]
    fn responses_are_found_by_method_path_template_and_status() {
        let spec = hand_made();
        assert!(matches!(
            spec.response_schema("post", "/things/a%0Ab?x=1", 200),
            Expected::Schema(_)
        ));
        for (method, path, status) in [
            ("POST", "/things/t/more", 200),
            ("POST", "/things/", 200),
            ("GET", "/things/t", 200),
            ("POST", "/things/t", 404),
            ("POST", "/things/t", 204),
        ] {
            assert!(
                matches!(
                    spec.response_schema(method, path, status),
                    Expected::NoSchema(_)
                ),
                "{method} {path} {status}"
            );
        }
    }

    /// Where the spec's own examples break its own schemas: the known contradictions, so a
    /// new one (or a spec that fixed one) is seen.
    const EXAMPLES_AGAINST_SCHEMAS: [&str; 8] = [
        "post /payments 200 (Success - PIX): $.acquirer: missing (required)",
        "post /payments 200 (Success - PIX): $.paymentAppData.appName: missing (required)",
        "post /payments 200 (Success - Redirect): $.authorizationId: missing (required)",
        "post /payments 200 (Success - Redirect): $.nsu: missing (required)",
        "post /payments 200 (Success - Redirect): $.acquirer: missing (required)",
        "post /payments 200 (Success - Redirect): $.delayToAutoSettle: missing (required)",
        "post /payments 200 (Success - Redirect): $.delayToAutoSettleAfterAntifraud: missing (required)",
        "post /payments 200 (Success - Redirect): $.delayToCancel: missing (required)",
    ];

    /// The real spec: its paths resolve, and the examples it gives for its responses fit the
    /// schemas it gives, but for its known contradictions (the validator reads the spec as it
    /// means).
    #[test]
    fn the_specs_own_examples_fit_its_schemas() {
        let Some(spec) = Spec::shared() else {
            return;
        };
        let mut checked = 0;
        let mut contradictions = Vec::new();
        let paths = spec.document["paths"].as_object().expect("paths");
        for (template, item) in paths {
            for (method, operation) in item.as_object().expect("path item") {
                let Some(responses) = operation["responses"].as_object() else {
                    continue;
                };
                for (status, response) in responses {
                    let Some(content) = response.pointer("/content/application~1json") else {
                        continue;
                    };
                    let mut examples: Vec<(&str, &Value)> = content
                        .get("example")
                        .map(|e| ("", e))
                        .into_iter()
                        .collect();
                    if let Some(named) = content["examples"].as_object() {
                        examples.extend(named.iter().map(|(name, e)| (name.as_str(), &e["value"])));
                    }
                    for (name, example) in examples {
                        let errors = spec
                            .validate(&content["schema"], example)
                            .err()
                            .unwrap_or_default();
                        contradictions.extend(errors.into_iter().map(|e| {
                            format!("{method} {template} {status} ({name}): {e}").replace(" ()", "")
                        }));
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(contradictions, EXAMPLES_AGAINST_SCHEMAS);
        assert!(checked >= 10, "only {checked} examples");
        let create_ok = spec.response_schema("POST", "/payments", 200);
        assert!(matches!(create_ok, Expected::Schema(_)), "{create_ok:?}");
        for (path, status, why) in [
            (
                "/payments/p/cancellations",
                404,
                "the spec gives no response for this status",
            ),
            (
                "/payments/p/inbound-request/status",
                200,
                "the spec does not list this path",
            ),
            (
                "/pos/payments/p/terminal",
                200,
                "the spec does not list this path",
            ),
        ] {
            match spec.response_schema("POST", path, status) {
                Expected::NoSchema(reason) => assert_eq!(reason, why, "{path} {status}"),
                Expected::Schema(schema) => panic!("{path} {status}: {schema}"),
            }
        }
    }
}
