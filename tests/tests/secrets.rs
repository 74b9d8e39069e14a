//! Secrets: the table keeps tokens, sessions and passwords only as hashes; no answer and no log
//! line shows a secret or a hash of one; a login refusal does not tell whether the account
//! exists; every change leaves an audit event.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use integration_tests::{TestApi, route_costs};
use serde_json::{Value, json};
use shared::auth::token_hash;

const PASSWORD: &str = "correct horse battery";

/// Everything this test binary logs, from the most verbose level of our own crates and the
/// level the deployed functions run at (INFO) for the libraries under them.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(
                "info,shared=trace,local_api=trace,users_function=trace,workspace_permissions_function=trace",
            )
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    })
    .clone()
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The hashes the table keeps: password hashes and the hashed keys of tokens and sessions.
fn stored_hashes(items: &[Value]) -> Vec<String> {
    let mut hashes = Vec::new();
    for item in items {
        for attribute in ["password_hash", "sealed"] {
            if let Some(hash) = item[attribute].as_str() {
                hashes.push(hash.to_owned());
            }
        }
        let pk = item["PK"].as_str().unwrap_or_default();
        for prefix in ["TOKEN#", "SESSION#"] {
            if let Some(hash) = pk.strip_prefix(prefix) {
                hashes.push(hash.to_owned());
            }
        }
    }
    hashes
}

/// One HTTP/1.1 request to the local runner: status, headers and body.
async fn http(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, hyper::HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_stored_hashed_and_never_shown_or_logged() {
    let logs = captured_logs();
    let api = Arc::new(TestApi::new().await);
    let (alice, first_token) = api.user("alice", false, false).await;
    shared::users::set_password(api.store(), None, &alice, PASSWORD, &shared::time::now())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let ctx = Arc::new(shared::Context::new(api.store().clone()));
    tokio::spawn(local_api::serve(listener, ctx, Arc::new(api.router.clone())));

    // A token by password login, a rotated one, and a session of the workspace family.
    let (status, _, text) = http(
        address,
        "POST",
        "/api-auth/password/",
        &[],
        Some(json!({"username": "alice", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let login_token = serde_json::from_str::<Value>(&text).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Token {login_token}");
    let (status, _, text) = http(
        address,
        "POST",
        &format!("/api/users/{}/refresh_token/", alice.uuid),
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let rotated_token = serde_json::from_str::<Value>(&text).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, headers, text) = http(
        address,
        "POST",
        "/api/v1/auth/",
        &[],
        Some(json!({"email": "alice@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let set_cookie = headers["set-cookie"].to_str().unwrap().to_owned();
    let session = set_cookie
        .strip_prefix("sessionid=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    let cookie = format!("sessionid={session}");
    let rotated = format!("Token {rotated_token}");
    for (path, credential) in [
        ("/api/users/me/", ("authorization", rotated.as_str())),
        ("/api/v1/workspaces/", ("cookie", cookie.as_str())),
        // A refused token is logged as a refusal, not as the token.
        ("/api/users/me/", ("authorization", bearer.as_str())),
    ] {
        let (status, _, text) = http(address, "GET", path, &[credential], None).await;
        assert!(status == 200 || status == 401, "{path}: {status} {text}");
    }

    let items = api.all_items().await;
    let stored: Vec<String> = items.iter().map(Value::to_string).collect();
    for secret in [
        &first_token,
        &login_token,
        &rotated_token,
        &session,
        &PASSWORD.to_owned(),
    ] {
        assert!(
            !stored.iter().any(|value| value.contains(secret.as_str())),
            "the table holds a secret in clear"
        );
    }
    let keys: Vec<&str> = items.iter().filter_map(|item| item["PK"].as_str()).collect();
    // Tokens are found by a keyed hash (the key is not in the table) and kept sealed.
    let keyed = api.store().token_keys().hash(&rotated_token);
    assert!(keys.contains(&format!("TOKEN#{keyed}").as_str()));
    assert!(!keys.contains(&format!("TOKEN#{}", token_hash(&rotated_token)).as_str()));
    assert!(keys.contains(&format!("SESSION#{}", token_hash(&session)).as_str()));
    let password_hash = items
        .iter()
        .find_map(|item| item["password_hash"].as_str())
        .expect("a stored password hash");
    assert!(password_hash.starts_with("$argon2id$"), "{password_hash}");

    let hashes = stored_hashes(&items);
    let (_, _, me) = http(
        address,
        "GET",
        &format!("/api/users/{}/", alice.uuid),
        &[("authorization", &format!("Token {}", api.admin_token))],
        None,
    )
    .await;
    assert!(me.contains("\"username\":\"alice\""), "{me}");
    assert!(!me.contains("password") && !me.contains("token"), "{me}");

    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("/api/users/me/") && logged.contains("status=401"),
        "the runner's request lines were captured: {logged}"
    );
    let mut secrets = vec![
        first_token,
        login_token,
        rotated_token,
        session,
        PASSWORD.to_owned(),
    ];
    secrets.extend(hashes);
    for secret in &secrets {
        assert!(
            !logged.contains(secret.as_str()),
            "a log line shows a secret or its hash"
        );
    }
}

#[tokio::test]
async fn a_refused_login_does_not_tell_whether_the_account_exists() {
    let api = TestApi::new().await;
    let (alice, _) = api.user("alice", false, false).await;
    shared::users::set_password(api.store(), None, &alice, PASSWORD, &shared::time::now())
        .await
        .unwrap();
    let token_login = |username: &str| {
        let body = json!({"username": username, "password": "wrong password"});
        api.call("POST", "/api-auth/password/", None, Some(body))
    };
    let known = token_login("alice").await;
    let unknown = token_login("nobody").await;
    assert_eq!(known.status, 401);
    assert_eq!((known.status, &known.json), (unknown.status, &unknown.json));

    let session_login = |email: &str| {
        let body = json!({"email": email, "password": "wrong password"});
        api.call("POST", "/api/v1/auth/", None, Some(body))
    };
    let known = session_login("alice@example.com").await;
    let unknown = session_login("nobody@example.com").await;
    assert!((400..500).contains(&known.status), "{}", known.text);
    assert_eq!((known.status, &known.json), (unknown.status, &unknown.json));
    assert_eq!(known.header("set-cookie"), None);
}

/// Changes that leave no audit event, and why that is right.
const NOT_AUDITED: &[(&str, &str, &str)] = &[];

#[tokio::test]
async fn no_answer_shows_a_hash_and_every_change_is_audited() {
    let api = TestApi::new().await;
    let costs = route_costs::measure_every_route(&api).await;
    let hashes = stored_hashes(&api.all_items().await);
    assert!(!hashes.is_empty());
    for cost in &costs {
        for hash in &hashes {
            assert!(
                !cost.answer.contains(hash.as_str()),
                "{} {} shows a stored hash: {}",
                cost.method,
                cost.route,
                cost.answer
            );
        }
        assert!(
            !cost.answer.contains("password_hash"),
            "{} {}",
            cost.method,
            cost.route
        );
    }
    let changes: Vec<_> = costs.iter().filter(|cost| cost.writes > 0).collect();
    let unaudited: Vec<String> = changes
        .iter()
        .filter(|cost| cost.audit_events == 0)
        .filter(|cost| {
            !NOT_AUDITED
                .iter()
                .any(|(method, route, _)| *method == cost.method && *route == cost.route)
        })
        .map(|cost| format!("{} {}", cost.method, cost.route))
        .collect();
    assert!(
        unaudited.is_empty(),
        "changes without an audit event: {unaudited:?}"
    );
    println!(
        "{} answers checked for hashes; {} changes, each with its audit event",
        costs.len(),
        changes.len()
    );
}
