//! Store faults, through a proxy in front of DynamoDB Local with the deployed functions'
//! timeouts and retries: an unreachable store answers 503 `{"detail": ...}` within a bounded
//! time; throttling is retried with backoff and then surfaces as 503, never as a 500; a write
//! whose answer is lost is not applied twice; and afterwards no item anywhere is half-written.

use std::time::{Duration, Instant};

use integration_tests::consistency::assert_consistent;
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

/// A user deletion cut short anywhere (here: every write's answer lost, so the request gives up
/// after its first step) leaves the user closed, and the next DELETE finishes it exactly.
#[tokio::test]
async fn a_user_deletion_cut_short_is_finished_by_the_next() {
    let proxy = FaultProxy::start(dynamodb_endpoint()).await;
    let api = TestApi::through(&proxy.endpoint).await;
    let (customer, _) = api.customer_with_project("Org", "P0").await;
    let (doomed, token) = api.user("doomed", false, false).await;
    for i in 1..=20 {
        let body = json!({"name": format!("P{i}"), "customer": customer["url"]});
        let project = api
            .call("POST", "/api/projects/", Some(&api.admin_token), Some(body))
            .await;
        let path = format!("/api/projects/{}/", project.json["uuid"].as_str().unwrap());
        api.grant(&path, &doomed.uuid, "PROJECT.MEMBER").await;
    }
    let path = format!("/api/users/{}/", doomed.uuid);
    proxy.set(Fault::LoseWriteAnswers);
    let cut = api.call("DELETE", &path, Some(&api.admin_token), None).await;
    proxy.set(Fault::None);
    assert_eq!(cut.status, 503, "{}", cut.text);
    let me = api.call("GET", "/api/users/me/", Some(&token), None).await;
    assert_eq!(me.status, 401, "closed from the first step on");
    let finished = api.call("DELETE", &path, Some(&api.admin_token), None).await;
    assert_eq!(finished.status, 204, "{}", finished.text);
    assert_eq!(
        api.call("GET", &path, Some(&api.admin_token), None).await.status,
        404
    );
    assert_consistent(&api).await;
}
