//! Credentials and the configuration flow.

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required_and_never_bypassed() {
    let daemon = Daemon::start(Options::default()).await;
    let body = create_body(
        "pay-auth",
        json!(10),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let client = reqwest::Client::new();
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        ("none", vec![]),
        (
            "wrong token",
            vec![
                ("X-VTEX-API-AppKey", APP_KEY),
                ("X-VTEX-API-AppToken", "nope"),
            ],
        ),
        (
            "wrong key",
            vec![
                ("X-VTEX-API-AppKey", "other"),
                ("X-VTEX-API-AppToken", APP_TOKEN),
            ],
        ),
        (
            "empty (Test Suite toggle off)",
            vec![("X-VTEX-API-AppKey", ""), ("X-VTEX-API-AppToken", "")],
        ),
        (
            "test suite header",
            vec![("X-VTEX-API-Is-TestSuite", "true")],
        ),
    ];
    for (name, headers) in cases {
        for path in [
            "/payments",
            "/payments/pay-auth/cancellations",
            "/payments/pay-auth/inbound/status",
        ] {
            let mut request = client
                .post(format!("{}{path}", daemon.base))
                .body(body.to_string());
            for (k, v) in &headers {
                request = request.header(*k, *v);
            }
            let response = request.send().await.expect("send");
            assert_eq!(response.status(), 401, "{name} on {path}");
            let error: Value = response.json().await.expect("json");
            assert_eq!(error["code"], "unauthorized");
        }
    }
    // Header names are case-insensitive and the IO-style names work too.
    let response = client
        .post(format!("{}/payments", daemon.base))
        .header("x-provider-api-appkey", APP_KEY)
        .header("X-PROVIDER-API-APPTOKEN", APP_TOKEN)
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    // The manifest needs no credentials.
    assert_eq!(
        reqwest::get(format!("{}/manifest", daemon.base))
            .await
            .expect("get")
            .status(),
        200
    );
}

async fn submit_code(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    code: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/authorization/redirect"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&code={code}"))
        .send()
        .await
        .expect("post")
}

/// Runs the configuration flow in the merchant's place; returns (appKey, appToken).
async fn onboard(daemon: &Daemon) -> (String, String) {
    onboard_across(&[&daemon.base]).await
}

/// The configuration flow, each step on the next of `bases` in turn (the replicas of a relay
/// tier behind a load balancer); returns (appKey, appToken).
pub async fn onboard_across(bases: &[&str]) -> (String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut step = 0;
    let mut next = || {
        step += 1;
        bases[(step - 1) % bases.len()].to_string()
    };
    let base = &next();
    let return_url =
        "https://store.myvtex.com/admin/pci-gateway/provider-return?authorizationCode=";
    let token: Value = client
        .post(format!("{base}/authorization/token"))
        .body(json!({ "applicationId": "vtex", "returnUrl": return_url }).to_string())
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["token"].as_str().expect("token").to_string();
    let base = &next();
    let page = client
        .get(format!(
            "{base}/authorization/redirect?applicationId=vtex&token={token}"
        ))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("Onboarding code"));

    let base = &next();
    let wrong = submit_code(&client, base, &token, "wrong-code").await;
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong.headers().get("location").is_none(),
        "a wrong code never redirects"
    );

    let base = &next();
    let right = submit_code(&client, base, &token, ONBOARDING_CODE).await;
    assert_eq!(right.status(), 303);
    let location = right.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let code = location
        .strip_prefix(return_url)
        .expect("redirected to returnUrl + code")
        .to_string();
    // The token is single-use.
    let base = &next();
    let reuse = submit_code(&client, base, &token, ONBOARDING_CODE).await;
    assert_eq!(reuse.status(), 403);

    let base = &next();
    let credentials = client
        .get(format!(
            "{base}/authorization/credentials?applicationId=vtex&authorizationCode={code}"
        ))
        .send()
        .await
        .expect("creds");
    assert_eq!(credentials.status(), 200);
    let credentials: Value = credentials.json().await.expect("json");
    assert_eq!(credentials["applicationId"], "vtex");
    let base = &next();
    let again = client
        .get(format!(
            "{base}/authorization/credentials?applicationId=vtex&authorizationCode={code}"
        ))
        .send()
        .await
        .expect("creds");
    assert_eq!(again.status(), 401, "the authorization code is single-use");
    (
        credentials["appKey"].as_str().expect("key").into(),
        credentials["appToken"].as_str().expect("token").into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_flow_issues_working_credentials_and_payments_stay_private() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let (key, token) = onboard(&daemon).await;
    let merchant_b = Gateway::new(&daemon.base, &key, &token);
    let merchant_a = daemon.gateway();

    let body_b = create_body(
        "pay-b",
        json!(10),
        "Venda Direta Credito",
        &receiver.url_for("pay-b"),
    );
    assert_eq!(
        merchant_b.create(&body_b).await["status"],
        "undefined",
        "issued credentials work"
    );

    let body_a = create_body(
        "pay-a",
        json!(10),
        "Venda Direta Credito",
        &receiver.url_for("pay-a"),
    );
    merchant_a.create(&body_a).await;
    for path in [
        "/payments/pay-a/cancellations",
        "/payments/pay-a/settlements",
        "/payments/pay-a/refunds",
        "/payments/pay-a/inbound/status",
    ] {
        let (status, answer) = merchant_b
            .post(path, &json!({ "requestId": "x", "value": 1 }))
            .await;
        assert_eq!(
            status, 404,
            "another merchant's payment on {path}: {answer}"
        );
    }
    // The same paymentId from merchant B is merchant B's own payment: nothing tells B that
    // merchant A's exists (issue 8 #17), and nothing B does reaches A's.
    let answer_b = merchant_b.create(&body_a).await;
    assert_eq!(answer_b["status"], "undefined", "{answer_b}");
    assert_eq!(
        answer_b["paymentId"], "pay-a",
        "B knows it by the id B sent"
    );
    let answer_a = merchant_a.create(&body_a).await;
    assert_ne!(
        submit_url(&answer_b),
        submit_url(&answer_a),
        "two payments, two submitUrls"
    );
    assert_ne!(answer_b["tid"], answer_a["tid"]);
    let (status, cancelled_b) = merchant_b
        .post(
            "/payments/pay-a/cancellations",
            &json!({ "requestId": "cb" }),
        )
        .await;
    assert_eq!(status, 200, "B cancels its own payment: {cancelled_b}");
    assert_eq!(merchant_b.create(&body_a).await["status"], "denied");
    // Merchant A's payment is untouched.
    assert_eq!(
        merchant_a.create(&body_a).await["paymentAppData"]["appName"],
        "vtex.terminal-connector-app"
    );

    // Issued credentials survive a restart (only a hash is stored).
    let daemon = daemon.restart().await;
    let merchant_b = Gateway::new(&daemon.base, &key, &token);
    assert_eq!(merchant_b.create(&body_b).await["status"], "undefined");
    daemon.assert_never_stored(&token, "the issued app token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_flow_refuses_open_redirects_and_guessing() {
    let daemon = Daemon::start(Options::default()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = &daemon.base;
    for bad in [
        "http://store.myvtex.com/x?c=",
        "https://evil.example/x?c=",
        "https://myvtex.com.evil.example/?c=",
        "not a url",
    ] {
        let response = client
            .post(format!("{base}/authorization/token"))
            .body(json!({ "applicationId": "vtex", "returnUrl": bad }).to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 400, "{bad}");
    }
    assert_eq!(
        client
            .get(format!(
                "{base}/authorization/redirect?applicationId=vtex&token=forged"
            ))
            .send()
            .await
            .expect("get")
            .status(),
        403
    );
    let token: Value = client
        .post(format!("{base}/authorization/token"))
        .body(
            json!({ "applicationId": "vtex", "returnUrl": "https://a.myvtex.com/r?c=" })
                .to_string(),
        )
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["token"].as_str().expect("token");
    // Five wrong codes burn the token: the right one no longer works.
    for _ in 0..5 {
        let r = submit_code(&client, base, token, "guess").await;
        assert_ne!(r.status(), 303);
    }
    let r = submit_code(&client, base, token, ONBOARDING_CODE).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        client
            .get(format!(
                "{base}/authorization/credentials?authorizationCode=guess"
            ))
            .send()
            .await
            .expect("get")
            .status(),
        401
    );
}
