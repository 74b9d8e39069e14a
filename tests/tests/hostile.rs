//! Hostile input through the routes to the real handlers: each case answers a 4xx with a clear
//! JSON body, and no input reaches a panic or a 5xx. The last test fuzzes every route of the
//! template with generated requests (a bounded number of cases; `HOSTILE_CASES` raises it).

use std::sync::OnceLock;

use integration_tests::{Answer, TestApi, router};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

fn detail(answer: &Answer) -> &str {
    answer.json["detail"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn hostile_requests_get_clear_client_errors() {
    let api = TestApi::new().await;
    let admin = Some(api.admin_token.as_str());
    let (customer, _) = api.customer_with_project("Org", "P").await;
    let customer_path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
    let mut cases = 0;

    let raw = |method: &str, path: &str, content_type: &str, body: Vec<u8>| {
        lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("http://testserver{path}"))
            .header("host", "testserver")
            .header("authorization", format!("Token {}", api.admin_token))
            .header("content-type", content_type)
            .body(lambda_http::Body::Binary(body))
            .unwrap()
    };

    let malformed = api
        .send(raw(
            "POST",
            "/api/roles/",
            "application/json",
            b"{\"name\":".to_vec(),
        ))
        .await;
    assert_eq!(malformed.status, 400);
    assert!(
        detail(&malformed).starts_with("JSON parse error"),
        "{}",
        malformed.text
    );
    cases += 1;

    let too_large = vec![b' '; (1 << 20) + 1];
    let answer = api
        .send(raw("POST", "/api/customers/", "application/json", too_large))
        .await;
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert!(!detail(&answer).is_empty());
    cases += 1;

    let answer = api
        .send(raw("POST", "/api/customers/", "text/plain", b"name=x".to_vec()))
        .await;
    assert_eq!(answer.status, 415, "{}", answer.text);
    cases += 1;

    // Wrong types, unknown enum values, over-long strings: field errors.
    for (path, body, field) in [
        (
            "/api/roles/",
            json!({"name": 5, "content_type": "project", "permissions": []}),
            "name",
        ),
        (
            "/api/roles/",
            json!({"name": "X.Y", "content_type": "planet", "permissions": []}),
            "content_type",
        ),
        (
            "/api/roles/",
            json!({"name": "X.Y", "content_type": "project", "permissions": "all"}),
            "permissions",
        ),
        ("/api/customers/", json!({"name": "x".repeat(10_000)}), "name"),
        ("/api/customers/", json!({"name": null}), "name"),
        ("/api/customers/", json!({"name": ["a"]}), "name"),
        (
            &format!("{customer_path}add_user/"),
            json!({"user": "../../etc/passwd", "role": "PROJECT.MEMBER"}),
            "user",
        ),
        (
            &format!("{customer_path}add_user/"),
            json!({"user": [], "role": 7}),
            "user",
        ),
    ] {
        let answer = api.call("POST", path, admin, Some(body.clone())).await;
        assert_eq!(answer.status, 400, "{path} {body}: {}", answer.text);
        assert!(answer.json[field].is_array(), "{path} {body}: {}", answer.text);
        cases += 1;
    }
    let answer = api
        .call(
            "POST",
            "/api/customers/",
            admin,
            Some(json!(["not", "an", "object"])),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    cases += 1;

    // Invalid, traversal-like and oversized ids: 404 with a detail.
    for path in [
        "/api/roles/not-a-uuid/",
        "/api/roles/..%2F..%2Fetc%2Fpasswd/",
        "/api/customers/%00/",
        "/api/projects/{00000000-0000-0000-0000-000000000000}/",
        "/api/users/%F0%9D%94%98/",
        "/api/v1/workspaces/abc/",
        "/api/v1/workspaces/99999999999999999999999999/",
        "/api/v1/workspace_permissions/-1/",
    ] {
        let answer = api.call("GET", path, admin, None).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.text);
        assert!(!detail(&answer).is_empty(), "{path}: {}", answer.text);
        cases += 1;
    }

    // Page sizes: negative and absurd sizes fall back or are capped; a bad page is a 404.
    for (query, size) in [
        ("page_size=-5", 10),
        ("page_size=0", 10),
        ("page_size=99999999999999999999", 12),
    ] {
        let answer = api
            .call("GET", &format!("/api/roles/?{query}"), admin, None)
            .await;
        assert_eq!(answer.status, 200, "{query}");
        assert_eq!(answer.json.as_array().unwrap().len(), size, "{query}");
        cases += 1;
    }
    for query in ["page=-1", "page=0", "page=abc", "page=999"] {
        let answer = api
            .call("GET", &format!("/api/roles/?{query}"), admin, None)
            .await;
        assert_eq!(
            (answer.status, detail(&answer)),
            (404, "Invalid page."),
            "{query}"
        );
        cases += 1;
    }

    // Unicode survives the round trip exactly; control characters are no crash.
    for name in ["𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u{202e}gnp.exe", "名前 – ímè", "a\u{0}b"] {
        let answer = api
            .call("POST", "/api/customers/", admin, Some(json!({"name": name})))
            .await;
        assert!(
            answer.status == 201 || answer.status == 400,
            "{name:?}: {}",
            answer.text
        );
        if answer.status == 201 {
            assert_eq!(answer.json["name"], name);
        }
        cases += 1;
    }
    println!("hostile input: {cases} explicit cases");
}

/// A path of the template with its parameters replaced by hostile or ordinary values.
fn hostile_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("00000000000000000000000000000000".to_owned()),
        Just("afab8022f4df457fba97346cd4c6a4a1".to_owned()),
        Just("..".to_owned()),
        Just("%2e%2e%2f".to_owned()),
        Just("1".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999".to_owned()),
        "[a-zA-Z0-9%._~-]{0,40}",
    ]
}

fn request_body() -> impl Strategy<Value = Option<String>> {
    let value = prop_oneof![
        Just(json!({})),
        Just(json!({"name": "Fuzz", "content_type": "project", "permissions": []})),
        Just(json!({"user": "00000000000000000000000000000000", "role": "PROJECT.MEMBER"})),
        Just(json!({"email": "nobody@example.com", "password": "x"})),
        Just(json!({"workspace": 1, "user": 1, "role": "READER"})),
        Just(json!({"role": "EDITOR", "workspaces": [1, 2], "new_owner": "x@example.com"})),
        Just(json!({"name": null, "permissions": {"PROJECT.UPDATE": true}})),
        Just(json!([1, "two", null])),
        Just(json!("just a string")),
        Just(json!({"page_size": -1, "expiration_time": "not a date"})),
        Just(json!({"name": "\u{0}\u{202e}𝔘".repeat(100)})),
    ];
    prop_oneof![
        Just(None),
        value.prop_map(|v| Some(v.to_string())),
        "\\PC{0,80}".prop_map(Some),
    ]
}

struct Fuzz {
    runtime: tokio::runtime::Runtime,
    api: TestApi,
    user_token: String,
}

fn fuzz() -> &'static Fuzz {
    static FUZZ: OnceLock<Fuzz> = OnceLock::new();
    FUZZ.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (api, user_token) = runtime.block_on(async {
            let api = TestApi::new().await;
            api.customer_with_project("Org", "P").await;
            let (_, token) = api.user("plain", false, false).await;
            (api, token)
        });
        Fuzz {
            runtime,
            api,
            user_token,
        }
    })
}

#[test]
fn no_generated_request_reaches_a_server_error() {
    let routes = router().routes().to_vec();
    let cases: u32 = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(600);
    let f = fuzz();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::sample::select(routes),
        prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
        any::<bool>(),
        prop::collection::vec(hostile_segment(), 3),
        "[a-z_]{0,10}=[\\PC&&[^&#]]{0,20}",
        request_body(),
        0..3usize,
    );
    runner
        .run(
            &strategy,
            |(route, method, use_route_method, values, query, body, who)| {
                let mut values = values.into_iter().cycle();
                let path: String = route
                    .path
                    .split('/')
                    .map(|segment| {
                        if segment.starts_with('{') {
                            values.next().unwrap()
                        } else {
                            segment.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                let path = format!("{path}?{}", query.replace(' ', "%20"));
                let method = if use_route_method {
                    route.method.as_str()
                } else {
                    method
                };
                let token = match who {
                    0 => None,
                    1 => Some(f.api.admin_token.as_str()),
                    _ => Some(f.user_token.as_str()),
                };
                let Ok(uri) = format!("http://testserver{path}").parse::<lambda_http::http::Uri>() else {
                    return Ok(());
                };
                let mut request = lambda_http::http::Request::builder()
                    .method(method)
                    .uri(uri)
                    .header("host", "testserver")
                    .header("content-type", "application/json");
                if let Some(token) = token {
                    request = request.header("authorization", format!("Token {token}"));
                }
                let body = body.map_or(lambda_http::Body::Empty, lambda_http::Body::Text);
                let answer = f.runtime.block_on(f.api.send(request.body(body).unwrap()));
                if answer.status >= 500 {
                    return Err(TestCaseError::fail(format!(
                        "{method} {path} answered {}: {}",
                        answer.status, answer.text
                    )));
                }
                let explained = answer.status < 400
                    || method == "HEAD"
                    || answer.json.get("detail").is_some()
                    || answer.json.get("message").is_some()
                    || matches!(answer.json, Value::Object(_) | Value::Array(_));
                if !explained {
                    return Err(TestCaseError::fail(format!(
                        "{method} {path} answered {} without a JSON explanation: {:?}",
                        answer.status, answer.text
                    )));
                }
                Ok(())
            },
        )
        .unwrap();
    println!(
        "hostile input: {cases} generated requests over {} routes, no 5xx",
        router().routes().len()
    );
}
