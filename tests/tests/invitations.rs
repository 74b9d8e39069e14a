//! Group invitations and user permission requests against DynamoDB Local.

use futures::future::join_all;
use integration_tests::{Answer, TestApi};
use serde_json::{Value, json};
use shared::store::s;

struct World {
    api: TestApi,
    customer: String,
    customer_url: String,
    project: String,
    project_url: String,
    owner_token: String,
}

const MEMBER_ROLE: &str = "9c9547bad0d742adafd4d54ef992e605";
const ADMIN_ROLE: &str = "85ae032608494d65a02605e5644767f3";
const OWNER_ROLE: &str = "afab8022f4df457fba97346cd4c6a4a1";

impl World {
    async fn new() -> Self {
        let api = TestApi::new().await;
        let (customer, project) = api.customer_with_project("Peer Org", "Peer Project").await;
        let (owner, owner_token) = api.user("alice", false, false).await;
        let customer_path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
        api.grant(&customer_path, &owner.uuid, "CUSTOMER.OWNER").await;
        World {
            customer: customer["uuid"].as_str().unwrap().to_owned(),
            customer_url: customer["url"].as_str().unwrap().to_owned(),
            project: project["uuid"].as_str().unwrap().to_owned(),
            project_url: project["url"].as_str().unwrap().to_owned(),
            owner_token,
            api,
        }
    }

    async fn post(&self, token: &str, path: &str, body: Option<Value>) -> Answer {
        self.api.call("POST", path, Some(token), body).await
    }

    async fn get(&self, token: &str, path: &str) -> Answer {
        self.api.call("GET", path, Some(token), None).await
    }

    async fn invite(&self, body: Value) -> String {
        let answer = self
            .post(&self.owner_token, "/api/user-group-invitations/", Some(body))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.json["uuid"].as_str().unwrap().to_owned()
    }

    async fn submit(&self, token: &str, invitation: &str) -> Answer {
        self.post(
            token,
            &format!("/api/user-group-invitations/{invitation}/submit_request/"),
            Some(json!({})),
        )
        .await
    }

    async fn members(&self, path: &str) -> Vec<String> {
        let list = self
            .get(&self.api.admin_token, &format!("{path}list_users/?page_size=100"))
            .await;
        list.json
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}:{}", m["user_username"], m["role_name"]))
            .collect()
    }
}

#[tokio::test]
async fn creating_invitations() {
    let w = World::new().await;
    let (_, carol_token) = w.api.user("carol", false, false).await;
    let (bob, bob_token) = w.api.user("bob", false, false).await;
    let grant = json!({"user": bob.uuid, "role": "PROJECT.ADMIN"});
    w.post(
        &w.api.admin_token,
        &format!("/api/projects/{}/add_user/", w.project),
        Some(grant),
    )
    .await;

    let created = w
        .post(
            &w.owner_token,
            "/api/user-group-invitations/",
            Some(json!({"scope": w.project_url, "role": MEMBER_ROLE})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let body = &created.json;
    for key in [
        "scope_description",
        "created_by_image",
        "scope_image",
        "scope_type",
        "customer_name",
        "role_description",
    ] {
        assert!(
            body.get(key).is_some(),
            "{key} is required by the official client"
        );
    }
    assert_eq!(
        (body["scope_name"].as_str(), body["scope_type"].as_str()),
        (Some("Peer Project"), Some("project"))
    );
    assert_eq!(
        (body["role_name"].as_str(), body["created_by_username"].as_str()),
        (Some("PROJECT.MEMBER"), Some("alice"))
    );
    assert_eq!(body["is_active"], true);
    let created_at = shared::time::parse_input(body["created"].as_str().unwrap()).unwrap();
    let expires = shared::time::parse_input(body["expires"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created_at).num_days(), 28);
    assert!(
        created
            .header("location")
            .unwrap()
            .ends_with(&format!("{}/", body["uuid"].as_str().unwrap()))
    );

    let invisible = w
        .post(
            &carol_token,
            "/api/user-group-invitations/",
            Some(json!({"scope": w.customer_url, "role": OWNER_ROLE})),
        )
        .await;
    assert_eq!(
        (invisible.status, &invisible.json),
        (
            400,
            &json!({"scope": [format!("Can't restore object from url: {}", w.customer_url)]})
        )
    );
    let mismatch = w
        .post(
            &w.owner_token,
            "/api/user-group-invitations/",
            Some(json!({"scope": w.customer_url, "role": ADMIN_ROLE})),
        )
        .await;
    assert_eq!(
        mismatch.json,
        json!({"non_field_errors": ["Role and scope should belong to the same content type."]})
    );
    let forbidden = w
        .post(
            &bob_token,
            "/api/user-group-invitations/",
            Some(json!({"scope": w.project_url, "role": MEMBER_ROLE})),
        )
        .await;
    assert_eq!(
        forbidden.status, 403,
        "a project admin sees the project but may not invite"
    );
    let missing = w
        .post(&w.owner_token, "/api/user-group-invitations/", Some(json!({})))
        .await;
    assert_eq!(
        missing.json,
        json!({"scope": ["This field is required."], "role": ["This field is required."]})
    );
    let unknown_role = w
        .post(
            &w.owner_token,
            "/api/user-group-invitations/",
            Some(json!({"scope": w.project_url, "role": "00000000000000000000000000000000"})),
        )
        .await;
    assert_eq!(
        unknown_role.json["role"],
        json!(["Object with uuid=00000000000000000000000000000000 does not exist."])
    );
    let bad_template = json!({"scope": w.customer_url, "role": OWNER_ROLE, "project_name_template": "{org}"});
    let bad = w
        .post(&w.owner_token, "/api/user-group-invitations/", Some(bad_template))
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json["project_name_template"][0]
            .as_str()
            .unwrap()
            .starts_with("Invalid placeholders in template: org.")
    );

    // Listing: managers of the customer see it, filters apply; others see nothing.
    let listed = w
        .get(
            &w.owner_token,
            "/api/user-group-invitations/?scope_type=project&role_name=PROJECT.MEMBER",
        )
        .await;
    assert_eq!(listed.header("x-result-count"), Some("1"));
    assert_eq!(
        w.get(&carol_token, "/api/user-group-invitations/").await.json,
        json!([])
    );
    assert_eq!(
        w.get(&bob_token, "/api/user-group-invitations/").await.json,
        json!([])
    );
    // Anyone signed in may read an invitation they are given.
    let uuid = body["uuid"].as_str().unwrap();
    assert_eq!(
        w.get(&carol_token, &format!("/api/user-group-invitations/{uuid}/"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn cancel_and_submit() {
    let w = World::new().await;
    let (_, bob_token) = w.api.user("bob", false, false).await;
    let invitation = w
        .invite(json!({"scope": w.project_url, "role": MEMBER_ROLE}))
        .await;

    let submitted = w.submit(&bob_token, &invitation).await;
    assert_eq!(submitted.status, 200, "{}", submitted.text);
    assert_eq!(submitted.json["scope_name"], "Peer Project");
    assert_eq!(submitted.json["scope_uuid"], w.project.as_str());
    assert_eq!(submitted.json["auto_approved"], false);
    let again = w
        .post(
            &bob_token,
            &format!("/api/user-group-invitations/{invitation}/request/"),
            None,
        )
        .await;
    assert_eq!(
        (again.status, &again.json),
        (400, &json!(["Permission request already exists for this scope."]))
    );
    // Through another invitation for the same scope, too.
    let other = w
        .invite(json!({"scope": w.project_url, "role": ADMIN_ROLE}))
        .await;
    let through_other = w.submit(&bob_token, &other).await;
    assert_eq!(
        (through_other.status, &through_other.json),
        (400, &json!(["Permission request already exists for this scope."]))
    );

    let path = format!("/api/user-group-invitations/{invitation}/cancel/");
    assert_eq!(w.post(&bob_token, &path, None).await.status, 403);
    let canceled = w.post(&w.owner_token, &path, None).await;
    assert_eq!(
        (canceled.status, &canceled.json),
        (
            200,
            &json!({"detail": "Invitation has been successfully canceled."})
        )
    );
    let twice = w.post(&w.owner_token, &path, None).await;
    assert_eq!(
        (twice.status, &twice.json),
        (400, &json!(["Only pending invitation can be canceled."]))
    );
    let (_, carol_token) = w.api.user("carol", false, false).await;
    let late = w.submit(&carol_token, &invitation).await;
    assert_eq!(
        (late.status, &late.json),
        (400, &json!(["Only pending invitation can be requested."]))
    );
}

#[tokio::test]
async fn requests_are_approved_rejected_and_canceled() {
    let w = World::new().await;
    let (_, bob_token) = w.api.user("bob", false, false).await;
    let (_, carol_token) = w.api.user("carol", false, false).await;
    let invitation = w
        .invite(json!({"scope": w.project_url, "role": MEMBER_ROLE}))
        .await;
    let request = w.submit(&bob_token, &invitation).await.json["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/user-permission-requests/{request}/");

    let mine = w.get(&bob_token, "/api/user-permission-requests/").await;
    assert_eq!(mine.header("x-result-count"), Some("1"));
    let row = &mine.json[0];
    assert_eq!(
        (row["state"].as_str(), row["created_by_email"].as_str()),
        (Some("pending"), Some("bob@example.com"))
    );
    for key in [
        "reviewed_by_full_name",
        "reviewed_by_username",
        "reviewed_at",
        "review_comment",
        "project_name_template",
    ] {
        assert_eq!(row[key], Value::Null, "{key} is null while pending, but present");
    }
    assert_eq!(w.get(&w.owner_token, &path).await.status, 200);
    assert_eq!(w.get(&carol_token, &path).await.status, 404);
    let self_approval = w
        .post(&bob_token, &format!("{path}approve/"), Some(json!({})))
        .await;
    assert_eq!(self_approval.status, 403);
    let blank = w
        .post(
            &w.owner_token,
            &format!("{path}approve/"),
            Some(json!({"comment": " "})),
        )
        .await;
    assert_eq!(blank.json, json!({"comment": ["This field may not be blank."]}));

    let approved = w
        .post(
            &w.owner_token,
            &format!("{path}approve/"),
            Some(json!({"comment": "ok"})),
        )
        .await;
    assert_eq!((approved.status, approved.text.as_str()), (200, ""));
    assert!(
        w.members(&format!("/api/projects/{}/", w.project))
            .await
            .contains(&"\"bob\":\"PROJECT.MEMBER\"".to_owned())
    );
    let detail = w.get(&bob_token, &path).await.json;
    assert_eq!(
        (detail["state"].as_str(), detail["review_comment"].as_str()),
        (Some("approved"), Some("ok"))
    );
    assert_eq!(detail["reviewed_by_username"], "alice");
    for action in ["approve", "reject"] {
        let late = w
            .post(&w.owner_token, &format!("{path}{action}/"), Some(json!({})))
            .await;
        assert_eq!(
            (late.status, &late.json),
            (409, &json!({"detail": "Valid states for operation: pending."}))
        );
    }
    let cancel_late = w.post(&bob_token, &format!("{path}cancel_request/"), None).await;
    assert_eq!(
        (cancel_late.status, &cancel_late.json),
        (400, &json!(["Only pending or draft requests can be canceled."]))
    );

    // Rejection frees the way for a new request; cancellation too.
    let (_, dave_token) = w.api.user("dave", false, false).await;
    let first = w.submit(&dave_token, &invitation).await.json["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let rejected = w
        .post(
            &w.owner_token,
            &format!("/api/user-permission-requests/{first}/reject/"),
            Some(json!({"comment": "no"})),
        )
        .await;
    assert_eq!(rejected.status, 200);
    let second = w.submit(&dave_token, &invitation).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let second = second.json["uuid"].as_str().unwrap().to_owned();
    let cancel_path = format!("/api/user-permission-requests/{second}/cancel_request/");
    let by_owner = w.post(&w.owner_token, &cancel_path, None).await;
    assert_eq!(
        (by_owner.status, &by_owner.json),
        (
            403,
            &json!({"detail": "You can only cancel your own permission requests."})
        ),
        "only the requester or staff cancel"
    );
    let canceled = w.post(&dave_token, &cancel_path, None).await;
    assert_eq!(
        canceled.json,
        json!({"uuid": second, "scope_name": "Peer Project", "scope_uuid": w.project})
    );
    let states = w
        .get(
            &w.owner_token,
            "/api/user-permission-requests/?state=rejected&state=canceled&o=state",
        )
        .await;
    let states: Vec<&str> = states
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["canceled", "rejected"]);
    assert_eq!(w.submit(&dave_token, &invitation).await.status, 200);
}

#[tokio::test]
async fn auto_approve_and_auto_created_projects() {
    let w = World::new().await;
    let (_, bob_token) = w.api.user("bob", false, false).await;
    let auto = w
        .invite(json!({"scope": w.project_url, "role": MEMBER_ROLE, "auto_approve": true}))
        .await;
    let submitted = w.submit(&bob_token, &auto).await;
    assert_eq!(
        (
            submitted.json["auto_approved"].as_bool(),
            submitted.json["project_created"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert!(
        w.members(&format!("/api/projects/{}/", w.project))
            .await
            .contains(&"\"bob\":\"PROJECT.MEMBER\"".to_owned())
    );

    let body = json!({
        "scope": w.customer_url, "role": OWNER_ROLE, "auto_create_project": true,
        "project_role": ADMIN_ROLE, "project_name_template": "{username}'s lab",
    });
    let labs = w.invite(body).await;
    let (_, carol_token) = w.api.user("carol", false, false).await;
    let request = w.submit(&carol_token, &labs).await.json["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let approved = w
        .post(
            &w.owner_token,
            &format!("/api/user-permission-requests/{request}/approve/"),
            Some(json!({})),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let projects = w
        .get(
            &w.owner_token,
            &format!("/api/projects/?customer={}&name=lab", w.customer),
        )
        .await;
    assert_eq!(projects.json.as_array().unwrap().len(), 1);
    assert_eq!(projects.json[0]["name"], "carol's lab");
    let lab = projects.json[0]["uuid"].as_str().unwrap();
    assert_eq!(
        w.members(&format!("/api/projects/{lab}/")).await,
        ["\"carol\":\"PROJECT.ADMIN\""]
    );
    assert_eq!(
        w.get(&carol_token, &format!("/api/user-permission-requests/{request}/"))
            .await
            .json["project_uuid"],
        lab
    );
    assert_eq!(
        w.members(&w.customer_path()).await.len(),
        1,
        "carol got no customer role"
    );
}

impl World {
    fn customer_path(&self) -> String {
        format!("/api/customers/{}/", self.customer)
    }
}

#[tokio::test]
async fn expired_invitations_take_no_requests() {
    let w = World::new().await;
    let invitation = w
        .invite(json!({"scope": w.project_url, "role": MEMBER_ROLE}))
        .await;
    let store = w.api.store();
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("PK", s(format!("INVITATION#{invitation}")))
        .key("SK", s("#META"))
        .update_expression("SET created = :old")
        .expression_attribute_values(":old", s("2026-01-01T00:00:00.000000Z"))
        .send()
        .await
        .unwrap();
    let shown = w
        .get(
            &w.owner_token,
            &format!("/api/user-group-invitations/{invitation}/"),
        )
        .await;
    assert_eq!(shown.json["is_active"], false);
    let (_, bob_token) = w.api.user("bob", false, false).await;
    assert_eq!(
        w.submit(&bob_token, &invitation).await.json,
        json!(["Only pending invitation can be requested."])
    );
    let inactive = w
        .get(&w.owner_token, "/api/user-group-invitations/?is_active=false")
        .await;
    assert_eq!(inactive.header("x-result-count"), Some("1"));
}

#[tokio::test]
async fn concurrent_approvals_grant_once() {
    let w = World::new().await;
    let (_, bob_token) = w.api.user("bob", false, false).await;
    let invitation = w
        .invite(json!({"scope": w.project_url, "role": MEMBER_ROLE}))
        .await;
    let request = w.submit(&bob_token, &invitation).await.json["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/user-permission-requests/{request}/approve/");
    let answers = join_all((0..20).map(|_| w.post(&w.owner_token, &path, Some(json!({}))))).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let conflicts = answers.iter().filter(|a| a.status == 409).count();
    assert_eq!((ok, conflicts), (1, 19), "{answers:?}");
    let members = w.members(&format!("/api/projects/{}/", w.project)).await;
    assert_eq!(members, ["\"bob\":\"PROJECT.MEMBER\""]);
}

#[tokio::test]
async fn decisions_are_audited_and_notified() {
    let w = World::new().await;
    let (_, bob_token) = w.api.user("bob", false, false).await;
    let invitation = w
        .invite(json!({"scope": w.project_url, "role": MEMBER_ROLE}))
        .await;
    let request = w.submit(&bob_token, &invitation).await.json["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    w.post(
        &w.owner_token,
        &format!("/api/user-permission-requests/{request}/approve/"),
        Some(json!({})),
    )
    .await;
    let store = w.api.store();
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let outbox = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", s(format!("OUTBOX#{day}")))
        .send()
        .await
        .unwrap();
    let mut kinds: Vec<String> = outbox
        .items()
        .iter()
        .map(|i| i["kind"].as_s().unwrap().clone())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["permission_request_decided", "permission_request_submitted"]
    );
    let audit = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", s(format!("AUDIT#REQUEST#{request}")))
        .send()
        .await
        .unwrap();
    let mut events: Vec<String> = audit
        .items()
        .iter()
        .map(|i| i["event_type"].as_s().unwrap().clone())
        .collect();
    events.sort();
    assert_eq!(
        events,
        ["permission_request_approved", "permission_request_submitted"]
    );
}
