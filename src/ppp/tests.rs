use super::*;

/// The `paths` of the PPP spec (docs: "VTEX - Payment Provider Protocol.json"), as written
/// there, and the failure limit each must have.
const SPEC_PATHS: [(&str, Option<Guarded>); 9] = [
    ("/manifest", None),
    ("/payments", Some(Guarded::Credentials)),
    (
        "/payments/{paymentId}/cancellations",
        Some(Guarded::Credentials),
    ),
    (
        "/payments/{paymentId}/settlements",
        Some(Guarded::Credentials),
    ),
    ("/payments/{paymentId}/refunds", Some(Guarded::Credentials)),
    (
        "/payments/{paymentId}/inbound/{action}",
        Some(Guarded::Credentials),
    ),
    ("/authorization/token", None),
    ("/authorization/redirect", Some(Guarded::Onboarding)),
    ("/authorization/credentials", Some(Guarded::Onboarding)),
];

/// Served beside the spec's paths: the payment methods, and the older name of inbound.
const EXTRA_PATHS: [(&str, Option<Guarded>); 2] = [
    ("/payment-methods", None),
    (
        "/payments/{paymentId}/inbound-request/{action}",
        Some(Guarded::Credentials),
    ),
];

/// The spec names the path parameter `paymentId`; axum's captures say `payment_id`.
fn as_spec(path: &str) -> String {
    path.replace("{payment_id}", "{paymentId}")
}

#[test]
fn every_ppp_route_has_its_failure_limit_and_the_gateways_time_budget() {
    let routes = routes(&RouteLimits::for_tests(1));
    let attached: Vec<(String, Limits)> = routes
        .attached()
        .iter()
        .map(|(path, limits)| (as_spec(path), *limits))
        .collect();
    let expected: Vec<(&str, Option<Guarded>)> = SPEC_PATHS
        .iter()
        .chain(EXTRA_PATHS.iter())
        .copied()
        .collect();
    for (path, failures) in &expected {
        let given = attached.iter().find(|(p, _)| p == path).map(|(_, l)| *l);
        assert_eq!(
            given,
            Some(Limits {
                failures: *failures,
                time: TimeBudget::Ppp,
            }),
            "{path}: served with these limits"
        );
    }
    // A route added (or renamed) in `routes` must be declared here, limits and all.
    for (path, _) in &attached {
        assert!(
            expected.iter().any(|(p, _)| p == path),
            "{path} is not a PPP path this test knows"
        );
    }
    assert_eq!(attached.len(), expected.len(), "each path once");
}
