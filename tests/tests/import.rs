//! Moving a running Waldur over (issue 20): the recorded export in `../shared/waldur-export/`,
//! imported from its Django dump and from its API (replayed by a local server), comes over under
//! its uuids; from the dump every old token and password keeps working; a second import changes
//! nothing; an import cut short anywhere ends, run again, in the state of one that was not; and
//! the table is consistent throughout. Against DynamoDB Local.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use integration_tests::consistency::assert_consistent;
use integration_tests::faults::{Fault, FaultProxy};
use integration_tests::{TestApi, dynamodb_endpoint, is_write};
use serde_json::{Map, Value, json};
use shared::import::{self, Kind, Options, Quiet, Report, Snapshot};
use shared::store::Store;
use shared::time::Timestamp;

/// The API tokens of the export (`dumpdata.json`): olivia's never expires, ivan is inactive,
/// the others' lifetime (3600 s) has passed since they were last used; stella's is the staff
/// token the API recordings were made with.
const OLIVIA_TOKEN: &str = "86cb58171262c74ea7927ac7b013419bd1e4eb29";
const IVAN_TOKEN: &str = "34dd9b9597f94b95ed694fa3457c2758582230d4";
const PAM_TOKEN: &str = "86784d42cdc89db9b477a70e434f2fff9db265fb";
const STELLA_TOKEN: &str = "ff976b5e2cadb35e2b4ba07f96314cbe6d592b35";
const OLIVIA: &str = "b545d5f192e24b439f0b50620a87c881";
const IVAN: &str = "6065fe05e817420e98c832d71a57a475";

/// The recordings of `api/` and the requests they answered (the export's README).
const RECORDED: [(&str, &str); 15] = [
    ("/api/roles/?page_size=100", "roles"),
    ("/api/customers/?page_size=100", "customers"),
    ("/api/projects/?page_size=100", "projects"),
    ("/api/users/?page_size=100", "users"),
    ("/api/user-permissions/?page_size=100", "user-permissions"),
    (
        "/api/customers/5abb17bd7a17419e95725b31900a99aa/list_users/",
        "customer-acme-research-list_users",
    ),
    (
        "/api/customers/b82e93138cd44f448cdb4ccb22a8c6af/list_users/",
        "customer-beta-institute-list_users",
    ),
    (
        "/api/projects/e23262341461459eabe79830d09a18e0/list_users/",
        "project-genome-lab-list_users",
    ),
    (
        "/api/projects/17855fdfd9a343789fa91abc27410726/list_users/",
        "project-climate-models-list_users",
    ),
    (
        "/api/projects/bade641b43894619b2ae3b62c203eb32/list_users/",
        "project-robotics-list_users",
    ),
    ("/api/user-group-invitations/", "user-group-invitations"),
    ("/api/user-permission-requests/", "user-permission-requests"),
    (
        "/api/customer-permissions-reviews/",
        "customer-permissions-reviews",
    ),
    ("/api/users/?page_size=2", "users-page-1"),
    ("/api/users/?page=2&page_size=2", "users-page-2"),
];

/// `../shared/waldur-export/`, from the workspace root.
fn export_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/waldur-export")
}

fn recorded(name: &str) -> Value {
    let path = export_dir().join("api").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("a recorded answer")).expect("JSON")
}

fn dump(now: &Timestamp) -> Snapshot {
    let text = std::fs::read_to_string(export_dir().join("dumpdata.json")).expect("dumpdata.json");
    import::dump::parse(&text, now).expect("the dump reads")
}

/// A local server that answers what the recorded Waldur answered, with its status and headers
/// (`Link`, `X-Result-Count`), to requests with stella's token; 404 for anything not recorded.
async fn replay() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address: SocketAddr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    });
    format!("http://{address}")
}

async fn answer(
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::http::Error> {
    let wanted = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let authorized = request
        .headers()
        .get("authorization")
        .is_some_and(|v| v == format!("Token {STELLA_TOKEN}").as_str());
    let found = RECORDED.iter().find(|(path, _)| *path == wanted);
    let json = |status: u16, body: &str| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
    };
    match found {
        _ if !authorized => json(401, r#"{"detail":"Invalid token."}"#),
        None => json(404, r#"{"detail":"Not found."}"#),
        Some((_, name)) => {
            let api = export_dir().join("api");
            let headers = std::fs::read_to_string(api.join(format!("{name}.headers"))).expect("headers");
            let body = std::fs::read(api.join(format!("{name}.json"))).expect("body");
            let mut lines = headers.lines();
            let status: u16 = lines
                .next()
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|code| code.parse().ok())
                .expect("a status line");
            let mut response = hyper::Response::builder().status(status);
            for line in lines {
                if let Some((name, value)) = line.trim_end().split_once(": ")
                    && !["content-length", "connection", "date"].contains(&name.to_ascii_lowercase().as_str())
                {
                    response = response.header(name, value);
                }
            }
            response.body(Full::new(Bytes::from(body)))
        }
    }
}

async fn from_api(now: &Timestamp) -> Snapshot {
    let base = replay().await;
    import::api::fetch(&base, STELLA_TOKEN, &Quiet, now)
        .await
        .expect("the replayed API reads")
}

async fn run(store: &Store, snapshot: &Snapshot, now: &Timestamp) -> Report {
    import::run(store, snapshot, Options::default(), &Quiet, now)
        .await
        .expect("the import runs")
}

/// Every kind came over whole, with nothing in conflict.
fn assert_all_created(report: &Report) {
    assert!(
        report.conflicts.is_empty() && report.skipped.is_empty(),
        "{report}"
    );
    for kind in Kind::ALL {
        let row = report.row(kind);
        assert_eq!(row.created, row.read, "{}: {report}", kind.plural());
    }
    let expected = [
        (Kind::Role, 14),
        (Kind::Customer, 2),
        (Kind::Project, 3),
        (Kind::User, 9),
        (Kind::Grant, 8),
        (Kind::EndedGrant, 1),
        (Kind::Invitation, 3),
        (Kind::Request, 2),
        (Kind::Review, 2),
    ];
    for (kind, read) in expected {
        assert_eq!(report.row(kind).read, read, "{}", kind.plural());
    }
}

/// A second import finds everything equal and writes nothing at all.
async fn assert_second_import_changes_nothing(api: &TestApi, snapshot: &Snapshot, now: &Timestamp) {
    let before = api.all_items().await;
    let mark = api.round_trips.count();
    let report = run(api.store(), snapshot, now).await;
    let writes: Vec<String> = api
        .round_trips
        .operations_since(mark)
        .into_iter()
        .filter(|op| is_write(op))
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "a second import writes nothing");
    assert!(report.conflicts.is_empty(), "{report}");
    for kind in Kind::ALL {
        let row = report.row(kind);
        assert_eq!(
            (row.created, row.unchanged),
            (0, row.read),
            "{}: {report}",
            kind.plural()
        );
    }
    assert_eq!(
        canonical_all(before),
        canonical_all(api.all_items().await),
        "no item changed"
    );
}

/// A JSON value with its objects' keys in order, so that equal items print equally.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

fn canonical_all(items: Vec<Value>) -> BTreeSet<String> {
    items
        .into_iter()
        .map(|item| canonical(item).to_string())
        .collect()
}

/// The items an import wrote, comparable across tables: without the table's own staff user,
/// the integer ids (allocated here), the random nonces of sealed tokens and audit event ids.
fn imported_state(items: Vec<Value>, api: &TestApi) -> Vec<String> {
    let admin = api.admin.uuid.to_string();
    let mut state: Vec<String> = items
        .into_iter()
        // The counters of ids and the lists' tallies are spread differently by design (ids in
        // blocks, tallies over shards); the consistency check compares the tallies' sums.
        .filter(|item| {
            !item.to_string().contains(&admin) && item["PK"] != "COUNTER" && item["PK"] != "COUNTS"
        })
        .map(|mut item| {
            if let Some(object) = item.as_object_mut() {
                object.remove("sealed");
                if object.get("entity") == Some(&json!("user")) {
                    object.remove("pk");
                    object.remove("GSI2PK");
                }
                if object.get("entity") == Some(&json!("audit_event")) {
                    for varying in ["uuid", "SK", "GSI1SK"] {
                        object.remove(varying);
                    }
                }
            }
            canonical(item).to_string()
        })
        .collect();
    state.sort();
    state
}

/// Members of each scope as `list_users` recorded them: the same grants (uuids), users, roles,
/// expirations and granters.
async fn assert_members_as_recorded(api: &TestApi) {
    let key = |row: &Value| {
        [
            "uuid",
            "user_uuid",
            "user_username",
            "role_uuid",
            "role_name",
            "expiration_time",
            "created_by_uuid",
        ]
        .map(|field| row[field].to_string())
    };
    for (path, name) in RECORDED.iter().filter(|(_, name)| name.ends_with("-list_users")) {
        let answer = api.call("GET", path, Some(&api.admin_token), None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        let ours: BTreeSet<_> = answer.json.as_array().unwrap().iter().map(key).collect();
        let theirs: BTreeSet<_> = recorded(name).as_array().unwrap().iter().map(key).collect();
        assert_eq!(ours, theirs, "{path}");
    }
}

/// Every customer, project and role answers under its old uuid, as the recorded API showed it
/// (counters included).
async fn assert_objects_under_their_uuids(api: &TestApi) {
    let token = Some(api.admin_token.as_str());
    for customer in recorded("customers").as_array().unwrap() {
        let path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
        let ours = api.call("GET", &path, token, None).await;
        assert_eq!(ours.status, 200, "{path}: {}", ours.text);
        for field in ["uuid", "name", "abbreviation", "projects_count", "users_count"] {
            assert_eq!(ours.json[field], customer[field], "{path} {field}");
        }
    }
    for project in recorded("projects").as_array().unwrap() {
        let path = format!("/api/projects/{}/", project["uuid"].as_str().unwrap());
        let ours = api.call("GET", &path, token, None).await;
        assert_eq!(ours.status, 200, "{path}: {}", ours.text);
        for field in ["uuid", "name", "customer_uuid", "customer_name"] {
            assert_eq!(ours.json[field], project[field], "{path} {field}");
        }
    }
    for role in recorded("roles").as_array().unwrap() {
        let path = format!("/api/roles/{}/", role["uuid"].as_str().unwrap());
        let ours = api.call("GET", &path, token, None).await;
        assert_eq!(ours.status, 200, "{path}: {}", ours.text);
        for field in [
            "name",
            "content_type",
            "is_system_role",
            "is_active",
            "users_count",
            "description",
        ] {
            assert_eq!(ours.json[field], role[field], "{path} {field}");
        }
        for language in shared::roles::LANGUAGES {
            let field = format!("description_{language}");
            assert_eq!(ours.json[&field], role[&field], "{path} {field}");
        }
        let permissions = |value: &Value| -> BTreeSet<String> {
            value
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            permissions(&ours.json["permissions"]),
            permissions(&role["permissions"]),
            "{path}"
        );
    }
}

/// Invitations, requests and reviews in the states they had, and the history of ivan's
/// revoked grant.
async fn assert_flows_as_recorded(api: &TestApi, ended_grant: Option<&str>) {
    let token = Some(api.admin_token.as_str());
    let states = |rows: &Value, fields: &[&str]| -> BTreeSet<Vec<String>> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|row| fields.iter().map(|f| row[*f].to_string()).collect())
            .collect()
    };
    for (path, name, fields) in [
        (
            "/api/user-group-invitations/",
            "user-group-invitations",
            &["uuid", "is_active", "role_name", "scope_uuid"][..],
        ),
        (
            "/api/user-permission-requests/",
            "user-permission-requests",
            &[
                "uuid",
                "state",
                "review_comment",
                "reviewed_by_username",
                "created_by_username",
            ][..],
        ),
        (
            "/api/customer-permissions-reviews/",
            "customer-permissions-reviews",
            &["uuid", "is_pending", "reviewer_uuid", "customer_uuid"][..],
        ),
    ] {
        let ours = api.call("GET", path, token, None).await;
        assert_eq!(ours.status, 200, "{path}: {}", ours.text);
        assert_eq!(
            states(&ours.json, fields),
            states(&recorded(name), fields),
            "{path}"
        );
    }
    let history = api
        .call("GET", &format!("/api/user-permissions/?user={IVAN}"), token, None)
        .await;
    let rows = history.json.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", history.text);
    assert_eq!(rows[0]["is_active"], false, "{}", history.text);
    assert_eq!(rows[0]["role_name"], "PROJECT.MEMBER");
    if let Some(uuid) = ended_grant {
        assert_eq!(rows[0]["uuid"], uuid, "the ended grant keeps its uuid");
    }
}

async fn login(api: &TestApi, username: &str, password: &str) -> integration_tests::Answer {
    let body = json!({"username": username, "password": password});
    api.call("POST", "/api-auth/password/", None, Some(body)).await
}

async fn password_hash(api: &TestApi, uuid: &str) -> String {
    let user = shared::users::get(api.store(), &shared::ids::Id::parse(uuid).unwrap())
        .await
        .unwrap()
        .expect("the user");
    user.password_hash.unwrap_or_default()
}

#[tokio::test]
async fn a_dump_moves_over_with_its_uuids_tokens_and_passwords() {
    let api = TestApi::without_roles().await;
    let now = shared::time::now();
    let snapshot = dump(&now);
    let report = run(api.store(), &snapshot, &now).await;
    assert_all_created(&report);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("9 password hashes and 9 API tokens")),
        "{report}"
    );
    assert_consistent(&api).await;
    assert_second_import_changes_nothing(&api, &snapshot, &now).await;

    // Olivia's old token (no lifetime) reads her user.
    let me = api.call("GET", "/api/users/me/", Some(OLIVIA_TOKEN), None).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(
        (me.json["uuid"].as_str(), me.json["username"].as_str()),
        (Some(OLIVIA), Some("olivia"))
    );
    // Her old password answers that same token, and its Django hash becomes Argon2id.
    assert!(
        password_hash(&api, OLIVIA)
            .await
            .starts_with("pbkdf2_sha256$600000$")
    );
    let wrong = login(&api, "olivia", "olivia-pass-2025!").await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    let answer = login(&api, "olivia", "olivia-pass-2024!").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["token"], OLIVIA_TOKEN);
    assert!(
        password_hash(&api, OLIVIA).await.starts_with("$argon2id$"),
        "rehashed at the first login"
    );
    let again = login(&api, "olivia", "olivia-pass-2024!").await;
    assert_eq!(
        again.json["token"], OLIVIA_TOKEN,
        "the Argon2id hash checks the same password"
    );

    // Ivan is inactive: neither his token nor his password works.
    let ivan = api.call("GET", "/api/users/me/", Some(IVAN_TOKEN), None).await;
    assert_eq!(
        (ivan.status, ivan.json["detail"].as_str()),
        (401, Some("User inactive or deleted."))
    );
    assert_eq!(login(&api, "ivan", "ivan-pass-2024!").await.status, 401);
    // Waldur's lifetime rule goes on: pam's token was last used more than an hour ago.
    let pam = api.call("GET", "/api/users/me/", Some(PAM_TOKEN), None).await;
    assert_eq!(
        (pam.status, pam.json["detail"].as_str()),
        (401, Some("Token has expired."))
    );
    // Stella's expired too: her password gets her a new one, in the transaction that rehashes it.
    let stella = login(&api, "stella", "stella-pass-2024!").await;
    assert_eq!(stella.status, 200, "{}", stella.text);
    assert_ne!(stella.json["token"], STELLA_TOKEN);
    let stella_me = api
        .call("GET", "/api/users/me/", stella.json["token"].as_str(), None)
        .await;
    assert_eq!(stella_me.json["is_staff"], true, "{}", stella_me.text);
    assert!(
        password_hash(&api, "e7ebc6b57a004819b5dcb37d09dec9c6")
            .await
            .starts_with("$argon2id$")
    );

    assert_objects_under_their_uuids(&api).await;
    assert_members_as_recorded(&api).await;
    assert_flows_as_recorded(&api, Some("64892ee434d742b39cb48bce8d993129")).await;
    assert_consistent(&api).await;
    // After the logins too, the import finds everything as it left it.
    assert_second_import_changes_nothing(&api, &snapshot, &now).await;
}

#[tokio::test]
async fn the_api_moves_over_with_its_uuids_and_no_secrets() {
    let api = TestApi::without_roles().await;
    let now = shared::time::now();
    let snapshot = from_api(&now).await;
    let report = run(api.store(), &snapshot, &now).await;
    // The recorded server has no project reviews (404), which the report notes.
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("project permission reviews")),
        "{report}"
    );
    assert_all_created(&report);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("no passwords and no API tokens, so the 9 users")),
        "{report}"
    );
    assert_consistent(&api).await;
    assert_second_import_changes_nothing(&api, &snapshot, &now).await;

    assert_objects_under_their_uuids(&api).await;
    assert_members_as_recorded(&api).await;
    assert_flows_as_recorded(&api, None).await;
    // No secret came: no password, no token.
    let items = api.all_items().await;
    let imported_users: Vec<&Value> = items
        .iter()
        .filter(|i| i["entity"] == "user" && i["username"] != "admin")
        .collect();
    assert_eq!(imported_users.len(), 9);
    assert!(
        imported_users
            .iter()
            .all(|u| u["password_hash"].is_null() && u["token_hash"].is_null())
    );
    let me = api.call("GET", "/api/users/me/", Some(OLIVIA_TOKEN), None).await;
    assert_eq!(
        (me.status, me.json["detail"].as_str()),
        (401, Some("Invalid token."))
    );
    assert_eq!(login(&api, "olivia", "olivia-pass-2024!").await.status, 401);
    // A token that is not the recording's is refused by the source, and the import says so.
    let refused = import::api::fetch(&replay().await, OLIVIA_TOKEN, &Quiet, &now).await;
    assert!(
        refused.is_err_and(|e| e.to_string().contains("a staff user's token is needed")),
        "the replay refuses other tokens"
    );
}

/// Imports `snapshot` whole into one table, then into others through a fault proxy that cuts
/// the store off after a number of requests (connections refused, or writes applied whose
/// answers are lost), and runs the import again there: each ends in the state of the first.
async fn assert_resumes(snapshot: &Snapshot, now: &Timestamp) {
    let reference = TestApi::without_roles().await;
    let keys = || shared::secrets::TokenKeys::parse(&reference.token_keys).expect("the ring");
    let mark = reference.round_trips.count();
    run(reference.store(), snapshot, now).await;
    let requests = reference.round_trips.count() - mark;
    let expected = imported_state(reference.all_items().await, &reference);
    for (i, fault) in [
        Fault::Unreachable,
        Fault::LoseWriteAnswers,
        Fault::Unreachable,
        Fault::LoseWriteAnswers,
    ]
    .into_iter()
    .enumerate()
    {
        let cut = requests * (i + 1) / 5;
        let proxy = Arc::new(FaultProxy::start(dynamodb_endpoint()).await);
        let api = TestApi::without_roles_through(&proxy.endpoint).await;
        // The same sealing keys as the reference, so that the tokens' items are named alike.
        let store = api.store().clone().with_token_keys(keys());
        let start = proxy.requests();
        let watcher = {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                while proxy.requests() < start + cut {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                proxy.set(fault);
            })
        };
        let cut_short = import::run(&store, snapshot, Options::default(), &Quiet, now).await;
        watcher.abort();
        proxy.set(Fault::None);
        assert!(
            cut_short.is_err(),
            "cut after {cut} of {requests} requests ({fault:?})"
        );
        let resumed = run(&store, snapshot, now).await;
        assert!(resumed.conflicts.is_empty(), "{resumed}");
        assert_eq!(
            imported_state(api.all_items().await, &api),
            expected,
            "cut after {cut} of {requests} requests ({fault:?}), then resumed"
        );
        assert_consistent(&api).await;
    }
}

#[tokio::test]
async fn a_dump_import_cut_short_resumes_to_the_same_state() {
    let now = shared::time::now();
    assert_resumes(&dump(&now), &now).await;
}

#[tokio::test]
async fn an_api_import_cut_short_resumes_to_the_same_state() {
    let now = shared::time::now();
    assert_resumes(&from_api(&now).await, &now).await;
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_says_what_it_would() {
    let api = TestApi::without_roles().await;
    let now = shared::time::now();
    let before = api.all_items().await;
    let mark = api.round_trips.count();
    let options = Options {
        dry_run: true,
        ..Options::default()
    };
    let report = import::run(api.store(), &dump(&now), options, &Quiet, &now)
        .await
        .unwrap();
    assert!(
        api.round_trips
            .operations_since(mark)
            .iter()
            .all(|op| !is_write(op))
    );
    assert_eq!(canonical_all(before), canonical_all(api.all_items().await));
    assert_all_created(&report);
    assert_eq!(
        report.changes.len(),
        report.total().created,
        "one line per object"
    );
    assert!(report.changes.contains(&format!("create user olivia ({OLIVIA})")));
    assert!(report.to_string().contains("would create"));
}

#[tokio::test]
async fn conflicts_are_reported_and_never_overwritten() {
    // A table set up as `make dev` does (the system roles under this product's uuids) and a
    // user `olivia` of its own.
    let api = TestApi::new().await;
    let (own_olivia, own_token) = api.user("olivia", false, false).await;
    let now = shared::time::now();
    let report = run(api.store(), &dump(&now), &now).await;
    assert_eq!(report.row(Kind::Role).conflicting, 12, "{report}");
    assert_eq!(report.row(Kind::Role).created, 2, "the custom roles: {report}");
    assert!(
        report.conflicts.iter().any(
            |c| c.starts_with("role CUSTOMER.OWNER (834e2ae3250645e1be28233f78291b07): the name is role")
        ),
        "{report}"
    );
    assert!(
        report.conflicts.contains(&format!(
            "user olivia ({OLIVIA}): the username is user {}'s here",
            own_olivia.uuid
        )),
        "{report}"
    );
    // Grants of roles or users that conflict are skipped, and say why; mia's auditor grant, of
    // a custom role, comes over.
    assert_eq!(report.row(Kind::Grant).created, 1, "{report}");
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.contains("its role") && s.contains("is not imported"))
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.contains(&format!("its user {OLIVIA} is not imported")))
    );
    // The table's own olivia is untouched.
    let me = api.call("GET", "/api/users/me/", Some(&own_token), None).await;
    assert_eq!(me.json["uuid"], own_olivia.uuid.to_string());
    assert_eq!(
        api.call("GET", "/api/users/me/", Some(OLIVIA_TOKEN), None)
            .await
            .status,
        401
    );
    assert_consistent(&api).await;
}

#[tokio::test]
async fn changes_made_here_after_an_import_are_kept_by_the_next() {
    let api = TestApi::without_roles().await;
    let now = shared::time::now();
    let snapshot = dump(&now);
    run(api.store(), &snapshot, &now).await;
    // Here, paul loses his role on Genome Lab and Acme is renamed.
    let token = Some(api.admin_token.as_str());
    let genome = "/api/projects/e23262341461459eabe79830d09a18e0/";
    let body = json!({"user": "7ac55046b05a4a04878ad18f824802f6", "role": "PROJECT.ADMIN"});
    let revoked = api
        .call("POST", &format!("{genome}delete_user/"), token, Some(body))
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let acme = "/api/customers/5abb17bd7a17419e95725b31900a99aa/";
    let renamed = api
        .call("PATCH", acme, token, Some(json!({"name": "Acme Labs"})))
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);

    let report = run(api.store(), &snapshot, &now).await;
    assert_eq!(report.row(Kind::Grant).conflicting, 1, "{report}");
    assert!(
        report
            .conflicts
            .contains(&"grant 9cfc4331b9c64a77bc7d8cb08ddfa282 (paul as PROJECT.ADMIN of project e23262341461459eabe79830d09a18e0): the grant has ended here".to_owned()),
        "{report}"
    );
    assert!(
        report.conflicts.contains(
            &"customer Acme Research (5abb17bd7a17419e95725b31900a99aa): it differs here in name".to_owned()
        ),
        "{report}"
    );
    assert_eq!(report.total().created, 0, "{report}");
    let members = api
        .call("GET", &format!("{genome}list_users/"), token, None)
        .await;
    assert!(
        members
            .json
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["user_username"] != "paul")
    );
    assert_eq!(api.call("GET", acme, token, None).await.json["name"], "Acme Labs");
    assert_consistent(&api).await;
}
