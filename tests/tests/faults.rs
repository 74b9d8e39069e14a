//! Store faults, through a proxy in front of DynamoDB Local with the deployed functions'
//! timeouts and retries: an unreachable store answers 503 `{"detail": ...}` within a bounded
//! time; throttling is retried with backoff and then surfaces as 503, never as a 500; a write
//! whose answer is lost is not applied twice; and afterwards no item anywhere is half-written.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use integration_tests::faults::{Fault, FaultProxy};
use integration_tests::{Answer, TestApi, dynamodb_endpoint};
use serde_json::{Value, json};

/// What a fault may cost a request at most: connect timeout and attempts with backoff.
const FAULT_BOUND: Duration = Duration::from_secs(8);

fn assert_unavailable(answer: &Answer, started: Instant, what: &str) {
    assert_eq!(answer.status, 503, "{what}: {}", answer.text);
    assert!(
        answer.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}: {}",
        answer.text
    );
    assert_eq!(answer.header("retry-after"), Some("1"), "{what}");
    assert!(
        started.elapsed() < FAULT_BOUND,
        "{what} took {:?}",
        started.elapsed()
    );
}

fn of_entity<'a>(items: &'a [Value], entity: &str) -> Vec<&'a Value> {
    items.iter().filter(|item| item["entity"] == entity).collect()
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// No half-written state: both items of every grant, counters that match what they count,
/// tokens and users that agree, one owner per workspace, one marker per user name and address.
async fn assert_consistent(api: &TestApi) -> usize {
    let items = api.all_items().await;
    let user_sides: BTreeSet<String> = of_entity(&items, "grant")
        .iter()
        .map(|g| text(&g["uuid"]))
        .collect();
    let member_sides: BTreeSet<String> = of_entity(&items, "member")
        .iter()
        .map(|m| text(&m["uuid"]))
        .collect();
    assert_eq!(user_sides, member_sides, "grants with one of their two items");
    // Each user item's `held` map records exactly the user's grants.
    let held: BTreeSet<String> = of_entity(&items, "user")
        .iter()
        .flat_map(|user| user["held"].as_object().cloned().unwrap_or_default())
        .map(|(_, role)| text(&role["g"]))
        .collect();
    assert_eq!(user_sides, held, "grants recorded on their user items");

    let mut members_per_scope: BTreeMap<String, i64> = BTreeMap::new();
    for member in of_entity(&items, "member") {
        *members_per_scope.entry(text(&member["PK"])).or_default() += 1;
    }
    for scope in of_entity(&items, "customer")
        .into_iter()
        .chain(of_entity(&items, "project"))
    {
        let counted = members_per_scope.get(&text(&scope["PK"])).copied().unwrap_or(0);
        assert_eq!(
            scope["member_count"].as_i64().unwrap_or(0),
            counted,
            "member_count of {}",
            scope["PK"]
        );
    }

    let mut grants_per_role: BTreeMap<String, i64> = BTreeMap::new();
    for grant in of_entity(&items, "grant") {
        *grants_per_role.entry(text(&grant["role_uuid"])).or_default() += 1;
    }
    for role in of_entity(&items, "role") {
        let counted = grants_per_role.get(&text(&role["uuid"])).copied().unwrap_or(0);
        assert_eq!(
            role["users_count"].as_i64().unwrap_or(0),
            counted,
            "users_count of {}",
            role["name"]
        );
    }

    let users = of_entity(&items, "user");
    for token in of_entity(&items, "token") {
        let owner = users
            .iter()
            .find(|user| user["uuid"] == token["user_uuid"])
            .unwrap_or_else(|| panic!("a token of no user: {token}"));
        let hash = text(&owner["token_hash"]);
        assert!(
            text(&token["PK"]).contains(&hash),
            "a token the user no longer has: {token}"
        );
    }
    let with_token = users.iter().filter(|user| user["token_hash"].is_string()).count();
    assert_eq!(
        with_token,
        of_entity(&items, "token").len(),
        "one token item per user with a token"
    );
    assert_eq!(
        of_entity(&items, "username").len(),
        users.len(),
        "one username marker per user"
    );

    for workspace in of_entity(&items, "workspace") {
        let owners: Vec<_> = of_entity(&items, "workspace_permission")
            .into_iter()
            .filter(|p| p["workspace"] == workspace["id"] && p["role"] == "OWNER")
            .collect();
        assert_eq!(owners.len(), 1, "owners of workspace {}", workspace["id"]);
        assert_eq!(
            owners[0]["user"], workspace["owner_user_pk"],
            "workspace {}",
            workspace["id"]
        );
    }
    items.len()
}

/// A customer with a project, an owner, and a user to grant things to.
struct Fixture {
    owner_token: String,
    customer: String,
    project: String,
    newcomer: shared::ids::Id,
}

async fn fixture(api: &TestApi) -> Fixture {
    let (customer, project) = api.customer_with_project("Org", "P").await;
    let (owner, owner_token) = api.user("owner", false, false).await;
    let (newcomer, _) = api.user("newcomer", false, false).await;
    let customer = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
    api.grant(&customer, &owner.uuid, "CUSTOMER.OWNER").await;
    Fixture {
        owner_token,
        customer,
        project: format!("/api/projects/{}/", project["uuid"].as_str().unwrap()),
        newcomer: newcomer.uuid,
    }
}

/// One request of each kind of change, and some reads.
fn requests(f: &Fixture, admin: &str) -> Vec<(&'static str, String, String, Option<Value>)> {
    let owner = f.owner_token.clone();
    let admin = admin.to_owned();
    vec![
        ("GET", "/api/roles/".into(), admin.clone(), None),
        ("GET", f.project.clone(), owner.clone(), None),
        (
            "POST",
            format!("{}add_user/", f.project),
            owner.clone(),
            Some(json!({"user": f.newcomer, "role": "PROJECT.MEMBER"})),
        ),
        (
            "POST",
            format!("{}add_user/", f.customer),
            owner.clone(),
            Some(json!({"user": f.newcomer, "role": "CUSTOMER.SUPPORT"})),
        ),
        (
            "POST",
            "/api/roles/".into(),
            admin.clone(),
            Some(json!({"name": "PROJECT.FAULTY", "content_type": "project", "permissions": []})),
        ),
        (
            "POST",
            "/api/customers/".into(),
            admin.clone(),
            Some(json!({"name": "New"})),
        ),
        (
            "POST",
            "/api/users/".into(),
            admin.clone(),
            Some(json!({"username": "zed", "email": "zed@example.com"})),
        ),
        (
            "POST",
            "/api/v1/workspaces/".into(),
            owner.clone(),
            Some(json!({"name": "W"})),
        ),
        (
            "POST",
            "/api/user-group-invitations/".into(),
            owner,
            Some(
                json!({"scope": format!("http://testserver{}", f.project), "role": "9c9547bad0d742adafd4d54ef992e605"}),
            ),
        ),
    ]
}

#[tokio::test]
async fn an_unreachable_store_answers_503_in_bounded_time_and_leaves_nothing_half_written() {
    let proxy = FaultProxy::start(dynamodb_endpoint()).await;
    let api = TestApi::through(&proxy.endpoint).await;
    let f = fixture(&api).await;
    let before = assert_consistent(&api).await;

    proxy.set(Fault::Unreachable);
    let requests = requests(&f, &api.admin_token);
    for (method, path, token, body) in &requests {
        let started = Instant::now();
        let answer = api.call(method, path, Some(token), body.clone()).await;
        assert_unavailable(&answer, started, &format!("{method} {path}"));
    }

    proxy.set(Fault::None);
    assert_eq!(
        assert_consistent(&api).await,
        before,
        "nothing was written while the store was away"
    );
    // And the service works again at once.
    for (method, path, token, body) in &requests {
        let answer = api.call(method, path, Some(token), body.clone()).await;
        assert!(
            answer.status < 300,
            "{method} {path} after recovery: {} {}",
            answer.status,
            answer.text
        );
    }
    assert_consistent(&api).await;
    println!("store faults: {} requests while unreachable", requests.len());
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_answers_503() {
    let proxy = FaultProxy::start(dynamodb_endpoint()).await;
    let api = TestApi::through(&proxy.endpoint).await;

    proxy.set(Fault::Throttle);
    let sent = proxy.requests();
    let started = Instant::now();
    let answer = api.call("GET", "/api/roles/", None, None).await;
    assert_unavailable(&answer, started, "a throttled read");
    assert_eq!(proxy.requests() - sent, 3, "three attempts");

    // Throttled twice, then served: the retries hide it from the caller.
    proxy.set(Fault::ThrottleFirst(2));
    let answer = api.call("GET", "/api/roles/", None, None).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    let f = fixture(&api).await;
    proxy.set(Fault::Throttle);
    let started = Instant::now();
    let body = json!({"user": f.newcomer, "role": "PROJECT.MEMBER"});
    let answer = api
        .call(
            "POST",
            &format!("{}add_user/", f.project),
            Some(&f.owner_token),
            Some(body),
        )
        .await;
    assert_unavailable(&answer, started, "a throttled grant");
    proxy.set(Fault::None);
    assert_consistent(&api).await;
}

#[tokio::test]
async fn a_write_whose_answer_is_lost_is_applied_once() {
    let proxy = FaultProxy::start(dynamodb_endpoint()).await;
    let api = TestApi::through(&proxy.endpoint).await;
    let f = fixture(&api).await;

    proxy.set(Fault::LoseWriteAnswers);
    for (method, path, token, body) in requests(&f, &api.admin_token) {
        if method == "GET" {
            continue;
        }
        let started = Instant::now();
        let answer = api.call(method, &path, Some(&token), body).await;
        assert!(
            answer.status != 500 && started.elapsed() < FAULT_BOUND,
            "{method} {path}: {} {} after {:?}",
            answer.status,
            answer.text,
            started.elapsed()
        );
    }
    proxy.set(Fault::None);
    assert_consistent(&api).await;
    let members = api
        .call(
            "GET",
            &format!("{}list_users/", f.project),
            Some(&api.admin_token),
            None,
        )
        .await;
    let newcomer_grants = members
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["user_username"] == "newcomer")
        .count();
    assert_eq!(newcomer_grants, 1, "the grant is there once: {}", members.text);
}
