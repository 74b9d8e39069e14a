//! Test harness: one DynamoDB Local per test binary (started on a free port, stopped when the
//! binary exits), a fresh table per test, and requests that go through the template's routes
//! to the real handlers as `lambda_http` requests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeDeserializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use lambda_http::http::{HeaderMap, Method};
use lambda_http::{Body, Request};
use local_api::Router;
use serde_json::Value;
use shared::Context;
use shared::store::Store;
use shared::users::{self, NewUser, User};

pub mod consistency;
pub mod faults;
pub mod mail;
pub mod route_costs;

static DYNAMODB: OnceLock<(String, Mutex<Child>)> = OnceLock::new();

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn find_jar_dir(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.join("DynamoDBLocal.jar").is_file() {
            return Some(path);
        }
        if path.is_dir()
            && let Some(found) = find_jar_dir(&path)
        {
            return Some(found);
        }
    }
    None
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut buffer = [0u8; 12];
    matches!(stream.read(&mut buffer), Ok(n) if n > 0 && buffer.starts_with(b"HTTP/"))
}

/// The endpoint of this test binary's DynamoDB Local, started on first use. The JVM runs under
/// a shell that kills it when our end of its stdin closes, i.e. when the test binary exits, and
/// that exits itself if the JVM dies.
pub fn dynamodb_endpoint() -> &'static str {
    let (endpoint, _) = DYNAMODB.get_or_init(|| {
        let dir = std::env::var_os("DYNAMODB_LOCAL_DIR")
            .map(PathBuf::from)
            .or_else(|| find_jar_dir(&workspace_root().join(".tools/ddb")))
            .expect("DynamoDB Local not found: run `scripts/setup.sh ddb` or set DYNAMODB_LOCAL_DIR");
        let port = free_port();
        let script = format!(
            "exec 3<&0; java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.library.path='{dir}/DynamoDBLocal_lib' \
             -jar '{dir}/DynamoDBLocal.jar' -inMemory -port {port} >/dev/null 2>&1 & pid=$!; \
             (cat <&3 >/dev/null; kill $pid 2>/dev/null) & wait $pid",
            dir = dir.display()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start DynamoDB Local");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !answers_http(port) {
            let exited = child.try_wait().expect("DynamoDB Local's shell");
            assert!(
                exited.is_none(),
                "DynamoDB Local exited at start ({exited:?}); is {} right?",
                dir.display()
            );
            assert!(
                Instant::now() < deadline,
                "DynamoDB Local did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        (format!("http://127.0.0.1:{port}"), Mutex::new(child))
    });
    endpoint
}

/// Counts the requests a client sends to DynamoDB (retries included): round trips, which
/// operation each was, and when each was sent and answered (for the sequential depth).
#[derive(Debug, Clone, Default)]
pub struct RoundTrips {
    count: Arc<AtomicUsize>,
    operations: Arc<Mutex<Vec<Sent>>>,
}

#[derive(Debug, Clone)]
struct Sent {
    operation: String,
    sent: Instant,
    answered: Option<Instant>,
    /// How many items (or keys) a Query's answer carried.
    queried: usize,
}

/// Which request of `RoundTrips` an SDK call's interceptor hooks belong to.
#[derive(Debug, Clone)]
struct SentIndex(usize);

impl Storable for SentIndex {
    type Storer = StoreReplace<Self>;
}

impl RoundTrips {
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// The operations sent since the count was `mark` (e.g. `GetItem`, `TransactWriteItems`).
    pub fn operations_since(&self, mark: usize) -> Vec<String> {
        self.operations.lock().unwrap()[mark..]
            .iter()
            .map(|sent| sent.operation.clone())
            .collect()
    }

    /// How many items (or keys) the Queries since `mark` returned: what a list read of its
    /// partitions, however few requests it took.
    pub fn queried_since(&self, mark: usize) -> usize {
        self.operations.lock().unwrap()[mark..]
            .iter()
            .map(|sent| sent.queried)
            .sum()
    }

    /// The longest chain of requests since `mark` in which each was sent after the one before
    /// it was answered: how many round trips the caller waited for one after another.
    pub fn depth_since(&self, mark: usize) -> usize {
        let sent = &self.operations.lock().unwrap()[mark..];
        let mut depth = vec![0usize; sent.len()];
        for i in 0..sent.len() {
            let before = (0..i)
                .filter(|&j| sent[j].answered.is_some_and(|answered| answered <= sent[i].sent))
                .map(|j| depth[j])
                .max()
                .unwrap_or(0);
            depth[i] = before + 1;
        }
        depth.into_iter().max().unwrap_or(0)
    }
}

/// The DynamoDB operations that change the table.
pub fn is_write(operation: &str) -> bool {
    matches!(
        operation,
        "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem"
    )
}

impl Intercept for RoundTrips {
    fn name(&self) -> &'static str {
        "RoundTrips"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        // `RT_DEBUG=1` shows which request went where, for finding the reads a route could save.
        if std::env::var_os("RT_DEBUG").is_some()
            && let Some(bytes) = context.request().body().bytes()
        {
            let text: String = String::from_utf8_lossy(bytes).chars().take(400).collect();
            eprintln!("RT {operation} {text}");
        }
        // One lock for both, so that a mark taken from the count indexes the operations.
        let mut operations = self.operations.lock().unwrap();
        _config.interceptor_state().store_put(SentIndex(operations.len()));
        operations.push(Sent {
            operation,
            sent: Instant::now(),
            answered: None,
            queried: 0,
        });
        self.count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(SentIndex(index)) = config.load::<SentIndex>().cloned()
            && let Some(sent) = self.operations.lock().unwrap().get_mut(index)
        {
            sent.answered = Some(Instant::now());
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::query::QueryOutput;
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let Some(query) = output.downcast_ref::<QueryOutput>() else {
            return Ok(());
        };
        let items = usize::try_from(query.count).unwrap_or(0);
        if let Some(SentIndex(index)) = config.load::<SentIndex>().cloned()
            && let Some(sent) = self.operations.lock().unwrap().get_mut(index)
        {
            sent.queried = items;
        }
        Ok(())
    }
}

/// A client for `endpoint` with dummy credentials, independent of the environment.
pub fn client_for(endpoint: &str) -> Client {
    counted_client_for(endpoint, RoundTrips::default())
}

pub fn counted_client_for(endpoint: &str, round_trips: RoundTrips) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("dummy", "dummy", None, None, "tests"))
        .endpoint_url(endpoint)
        .timeout_config(
            aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .interceptor(round_trips)
        .build();
    Client::from_conf(config)
}

/// A client for `endpoint` with the timeouts and retries of the deployed functions.
pub fn production_client_for(endpoint: &str, round_trips: RoundTrips) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("dummy", "dummy", None, None, "tests"))
        .endpoint_url(endpoint)
        .timeout_config(shared::store::timeouts())
        .retry_config(shared::store::retries())
        .interceptor(round_trips)
        .build();
    Client::from_conf(config)
}

/// A fresh table in this binary's DynamoDB Local.
pub async fn fresh_store(round_trips: RoundTrips) -> Store {
    let client = counted_client_for(dynamodb_endpoint(), round_trips);
    let store = Store::new(client, format!("t{}", uuid::Uuid::new_v4().simple()));
    store.create_table().await.expect("create table");
    store
}

pub fn router() -> Router {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template.yaml");
    Router::from_template(&text).expect("template routes")
}

/// The API over a fresh table with the system roles and a staff user `admin`.
pub struct TestApi {
    pub ctx: Context,
    pub router: Router,
    pub admin: User,
    pub admin_token: String,
    pub round_trips: RoundTrips,
    /// The token key ring of this table (`TOKEN_KEYS`), for processes that must read its tokens.
    pub token_keys: String,
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON (`Null` when empty).
    pub json: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApi {
    pub async fn new() -> Self {
        let round_trips = RoundTrips::default();
        Self::over(fresh_store(round_trips.clone()).await, round_trips, true).await
    }

    /// The API over a fresh table reached through `endpoint` (e.g. a fault proxy in front of
    /// DynamoDB Local), with the deployed functions' timeouts and retries.
    pub async fn through(endpoint: &str) -> Self {
        let round_trips = RoundTrips::default();
        Self::over(
            Self::table_through(endpoint, &round_trips).await,
            round_trips,
            true,
        )
        .await
    }

    /// A fresh table with the staff user `admin` and no roles: the target of an import from
    /// Waldur, which brings its own.
    pub async fn without_roles() -> Self {
        let round_trips = RoundTrips::default();
        Self::over(fresh_store(round_trips.clone()).await, round_trips, false).await
    }

    /// As `without_roles`, reached through `endpoint` as `through` is.
    pub async fn without_roles_through(endpoint: &str) -> Self {
        let round_trips = RoundTrips::default();
        Self::over(
            Self::table_through(endpoint, &round_trips).await,
            round_trips,
            false,
        )
        .await
    }

    async fn table_through(endpoint: &str, round_trips: &RoundTrips) -> Store {
        let client = production_client_for(endpoint, round_trips.clone());
        let store = Store::new(client, format!("t{}", uuid::Uuid::new_v4().simple()));
        store.create_table().await.expect("create table");
        store
    }

    async fn over(store: Store, round_trips: RoundTrips, seed_roles: bool) -> Self {
        let token_keys = format!("test={}", shared::secrets::random_secret());
        let store =
            store.with_token_keys(shared::secrets::TokenKeys::parse(&token_keys).expect("a valid key ring"));
        let now = shared::time::now();
        if seed_roles {
            shared::roles::seed_system_roles(&store, &now)
                .await
                .expect("seed roles");
        }
        let ctx = Context::new(store);
        let (admin, admin_token) = make_user(&ctx.store, "admin", true, false).await;
        TestApi {
            ctx,
            router: router(),
            admin,
            admin_token,
            round_trips,
            token_keys,
        }
    }

    pub fn store(&self) -> &Store {
        &self.ctx.store
    }

    /// Every item of the table, as JSON (a Scan: tests may scan; the service never does).
    pub async fn all_items(&self) -> Vec<Value> {
        let store = self.store();
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = store
                .client()
                .scan()
                .table_name(store.table())
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                items.push(serde_dynamo::from_item::<_, Value>(item.clone()).expect("item as JSON"));
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }

    /// How many audit events the table holds.
    pub async fn audit_events(&self) -> usize {
        self.all_items()
            .await
            .iter()
            .filter(|item| item["PK"].as_str().is_some_and(|pk| pk.starts_with("AUDIT#")))
            .count()
    }

    /// A user with a token.
    pub async fn user(&self, username: &str, is_staff: bool, is_support: bool) -> (User, String) {
        make_user(&self.ctx.store, username, is_staff, is_support).await
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let authorization = token.map(|token| format!("Token {token}"));
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        self.call_with_headers(method, path, &headers, body).await
    }

    /// A request with these headers (e.g. a session cookie) and, if given, a JSON body.
    pub async fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut builder = lambda_http::http::Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(format!("http://testserver{path}"))
            .header("host", "testserver");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = match body {
            Some(value) => {
                builder = builder.header("content-type", "application/json");
                Body::Text(value.to_string())
            }
            None => Body::Empty,
        };
        self.send(builder.body(body).expect("request")).await
    }

    /// The same table and template behind another container: a Lambda instance of its own,
    /// whose role cache is not this one's.
    pub fn another_container(&self) -> TestApi {
        TestApi {
            ctx: Context::new(self.ctx.store.clone()),
            router: router(),
            admin: self.admin.clone(),
            admin_token: self.admin_token.clone(),
            round_trips: self.round_trips.clone(),
            token_keys: self.token_keys.clone(),
        }
    }

    /// A user with a token and a password.
    pub async fn user_with_password(&self, username: &str, password: &str) -> (User, String) {
        let (user, token) = self.user(username, false, false).await;
        users::set_password(self.store(), None, &user, password, &shared::time::now())
            .await
            .expect("set the password");
        let user = users::get(self.store(), &user.uuid)
            .await
            .expect("read user")
            .expect("user exists");
        (user, token)
    }

    /// Opens a session (`POST /api/v1/auth/`) and returns its `sessionid`.
    pub async fn session(&self, email: &str, password: &str) -> String {
        let body = serde_json::json!({"email": email, "password": password});
        let answer = self.call("POST", "/api/v1/auth/", None, Some(body)).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        let cookie = answer.header("set-cookie").expect("a session cookie");
        cookie
            .trim_start_matches("sessionid=")
            .split(';')
            .next()
            .expect("a cookie value")
            .to_owned()
    }

    /// A request authenticated by a session cookie.
    pub async fn with_session(&self, method: &str, path: &str, session: &str, body: Option<Value>) -> Answer {
        let cookie = format!("sessionid={session}");
        self.call_with_headers(method, path, &[("cookie", &cookie)], body)
            .await
    }

    /// A customer and a project in it, made by staff through the API (their JSON).
    pub async fn customer_with_project(&self, customer: &str, project: &str) -> (Value, Value) {
        let token = Some(self.admin_token.as_str());
        let customer = self
            .call(
                "POST",
                "/api/customers/",
                token,
                Some(serde_json::json!({"name": customer})),
            )
            .await;
        assert_eq!(customer.status, 201, "{}", customer.text);
        let body = serde_json::json!({"name": project, "customer": customer.json["url"]});
        let project = self.call("POST", "/api/projects/", token, Some(body)).await;
        assert_eq!(project.status, 201, "{}", project.text);
        (customer.json, project.json)
    }

    /// Grants `role` to `user` on a scope (`/api/customers/<uuid>/` or a project's path), as staff.
    pub async fn grant(&self, scope_path: &str, user: &shared::ids::Id, role: &str) {
        let body = serde_json::json!({"user": user, "role": role});
        let path = format!("{scope_path}add_user/");
        let answer = self
            .call("POST", &path, Some(&self.admin_token), Some(body))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
    }

    /// The answer and how many DynamoDB requests it took.
    pub async fn counted(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (Answer, usize) {
        let before = self.round_trips.count();
        let answer = self.call(method, path, token, body).await;
        (answer, self.round_trips.count() - before)
    }

    /// The answer, the DynamoDB operations it took, in order, and their sequential depth.
    pub async fn traced(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (Answer, Vec<String>, usize) {
        let mark = self.round_trips.count();
        let answer = self.call_with_headers(method, path, headers, body).await;
        (
            answer,
            self.round_trips.operations_since(mark),
            self.round_trips.depth_since(mark),
        )
    }

    pub async fn send(&self, request: Request) -> Answer {
        // On a task of its own, as the runner serves each connection: the handler is then
        // polled from the runtime, not from deep inside a long test's own futures (whose stack
        // a debug build's large poll frames would exhaust).
        let (ctx, router) = (self.ctx.clone(), self.router.clone());
        let response = tokio::spawn(async move { local_api::dispatch(&ctx, &router, request).await })
            .await
            .expect("the handler's task");
        let (parts, body) = response.into_parts();
        let text = match body {
            Body::Text(text) => text,
            Body::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => String::new(),
        };
        let is_json = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|media_type| media_type.starts_with("application/json"));
        let json = if is_json && !text.is_empty() {
            serde_json::from_str(&text).expect("JSON body")
        } else {
            Value::Null
        };
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            text,
            json,
        }
    }
}

/// Every answer of a race must be one of `allowed`; the others are printed, status and body.
pub fn assert_race(answers: &[Answer], allowed: &[u16], what: &str) {
    let unexpected: Vec<(u16, &str)> = answers
        .iter()
        .filter(|a| !allowed.contains(&a.status))
        .map(|a| (a.status, a.text.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "{what}: unexpected answers {unexpected:?}");
}

pub async fn make_user(store: &Store, username: &str, is_staff: bool, is_support: bool) -> (User, String) {
    let now = shared::time::now();
    let new = NewUser {
        username: username.to_owned(),
        email: format!("{username}@example.com"),
        first_name: username.to_owned(),
        last_name: "Tester".into(),
        is_staff,
        is_support,
        ..NewUser::default()
    };
    let user = users::create(store, None, new, &now).await.expect("create user");
    let token = users::issue_token(store, None, &user, &now)
        .await
        .expect("issue token");
    let user = users::get(store, &user.uuid)
        .await
        .expect("read user")
        .expect("user exists");
    (user, token)
}
