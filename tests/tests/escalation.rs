//! The escalation paths a security test found, each as the flow an attacker ran across several
//! requests (issue "Close the escalation paths"), against DynamoDB Local. Each test failed
//! before its fix.

use futures::future::join_all;
use integration_tests::consistency::assert_consistent;
use integration_tests::{Answer, TestApi, assert_race};
use serde_json::{Value, json};
use shared::ids::Id;
use shared::store::s;
use shared::users::User;

const PASSWORD: &str = "escalation passphrase";
const MANAGER_ROLE: &str = "667a517eba64403e9b7472bb48c31e3a";
const ADMIN_ROLE: &str = "85ae032608494d65a02605e5644767f3";
const MEMBER_ROLE: &str = "9c9547bad0d742adafd4d54ef992e605";

/// A customer with a project, a project manager of it (`mallory`) and his second account.
struct World {
    api: TestApi,
    customer_path: String,
    project: String,
    project_url: String,
    project_path: String,
    mallory: User,
    mallory_token: String,
    second: User,
    second_token: String,
}

impl World {
    async fn new() -> Self {
        let api = TestApi::new().await;
        let (customer, project) = api.customer_with_project("Org", "Lab").await;
        let project_uuid = project["uuid"].as_str().unwrap().to_owned();
        let project_path = format!("/api/projects/{project_uuid}/");
        let (mallory, mallory_token) = api.user("mallory", false, false).await;
        let (second, second_token) = api.user("mallory2", false, false).await;
        api.grant(&project_path, &mallory.uuid, "PROJECT.MANAGER").await;
        World {
            customer_path: format!("/api/customers/{}/", customer["uuid"].as_str().unwrap()),
            project: project_uuid,
            project_url: project["url"].as_str().unwrap().to_owned(),
            project_path,
            mallory,
            mallory_token,
            second,
            second_token,
            api,
        }
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Answer {
        self.api.call("POST", path, Some(token), Some(body)).await
    }

    async fn invite(&self, token: &str, role: &str, auto_approve: bool) -> Answer {
        let body = json!({"scope": self.project_url, "role": role, "auto_approve": auto_approve});
        self.post(token, "/api/user-group-invitations/", body).await
    }

    async fn submit(&self, token: &str, invitation: &Answer) -> Answer {
        let path = format!(
            "/api/user-group-invitations/{}/submit_request/",
            invitation.json["uuid"].as_str().unwrap()
        );
        self.post(token, &path, json!({})).await
    }

    /// The requester withdraws a request (one open request per scope and user).
    async fn cancel_request(&self, token: &str, request: &str) {
        let path = format!("/api/user-permission-requests/{request}/cancel_request/");
        assert_status(&self.post(token, &path, json!({})).await, 200, "cancel_request");
    }

    async fn approve(&self, token: &str, request: &str) -> Answer {
        let path = format!("/api/user-permission-requests/{request}/approve/");
        self.post(token, &path, json!({})).await
    }

    /// The role names `user` holds on the project, as staff reads them.
    async fn roles_of(&self, user: &Id) -> Vec<String> {
        let path = format!("{}list_users/?user={user}", self.project_path);
        let answer = self
            .api
            .call("GET", &path, Some(&self.api.admin_token), None)
            .await;
        let mut names: Vec<String> = answer
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role_name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    /// A staff-made project role carrying a permission no project manager holds.
    async fn power_role(&self) -> String {
        let body =
            json!({"name": "PROJECT.POWER", "content_type": "project", "permissions": ["PROJECT.DELETE"]});
        let answer = self.post(&self.api.admin_token, "/api/roles/", body).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.json["uuid"].as_str().unwrap().to_owned()
    }
}

/// A workspace made with a session: its id.
async fn new_workspace(api: &TestApi, session: &str) -> i64 {
    let created = api
        .with_session("POST", "/api/v1/workspaces/", session, Some(json!({"name": "W"})))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.json["id"].as_i64().unwrap()
}

fn assert_status(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.text);
}

#[tokio::test]
async fn a_manager_gets_no_role_from_his_own_auto_approve_invitation() {
    let w = World::new().await;
    let invitation = w.invite(&w.mallory_token, ADMIN_ROLE, true).await;
    assert_status(&invitation, 201, "a manager may offer a role within his own");
    let submitted = w.submit(&w.mallory_token, &invitation).await;
    assert_status(&submitted, 200, "his own submit");
    assert_eq!(submitted.json["auto_approved"], false, "{}", submitted.text);
    assert_eq!(w.roles_of(&w.mallory.uuid).await, ["PROJECT.MANAGER"]);
    let request = submitted.json["uuid"].as_str().unwrap();
    assert_status(
        &w.approve(&w.mallory_token, request).await,
        403,
        "approving himself",
    );
    assert_eq!(w.roles_of(&w.mallory.uuid).await, ["PROJECT.MANAGER"]);
    w.cancel_request(&w.mallory_token, request).await;

    // Made in advance, it does not bring him back once staff has revoked his role.
    let comeback = w.invite(&w.mallory_token, MANAGER_ROLE, true).await;
    assert_status(&comeback, 201, "offering his own role");
    let revoke = json!({"user": w.mallory.uuid, "role": "PROJECT.MANAGER"});
    let path = format!("{}delete_user/", w.project_path);
    assert_status(
        &w.post(&w.api.admin_token, &path, revoke).await,
        200,
        "staff revokes",
    );
    let back = w.submit(&w.mallory_token, &comeback).await;
    assert_eq!(back.json["auto_approved"], false, "{}", back.text);
    assert!(w.roles_of(&w.mallory.uuid).await.is_empty());
    // Nor for his second account: the creator, as he is now, may grant nothing.
    let second = w.submit(&w.second_token, &comeback).await;
    assert_eq!(second.json["auto_approved"], false, "{}", second.text);
    assert!(w.roles_of(&w.second.uuid).await.is_empty());
}

#[tokio::test]
async fn an_invitation_hands_out_nothing_beyond_the_inviters_own_permissions() {
    let w = World::new().await;
    let power = w.power_role().await;
    let add = json!({"user": w.second.uuid, "role": power});
    let path = format!("{}add_user/", w.project_path);
    assert_status(&w.post(&w.mallory_token, &path, add).await, 403, "add_user");
    assert_status(&w.invite(&w.mallory_token, &power, false).await, 403, "inviting");
    assert_status(
        &w.invite(&w.mallory_token, &power, true).await,
        403,
        "auto-approve inviting",
    );

    // An invitation staff made: his second account asks, he may not approve it.
    let invitation = w.invite(&w.api.admin_token, &power, false).await;
    let submitted = w.submit(&w.second_token, &invitation).await;
    assert_status(&submitted, 200, "the second account asks");
    let request = submitted.json["uuid"].as_str().unwrap();
    assert_status(&w.approve(&w.mallory_token, request).await, 403, "approving");
    assert!(w.roles_of(&w.second.uuid).await.is_empty());
    w.cancel_request(&w.second_token, request).await;
    // A role within his own he may approve for somebody else.
    let member = w.invite(&w.api.admin_token, MEMBER_ROLE, false).await;
    let submitted = w.submit(&w.second_token, &member).await;
    let request = submitted.json["uuid"].as_str().unwrap();
    assert_status(
        &w.approve(&w.mallory_token, request).await,
        200,
        "approving a member",
    );
    assert_eq!(w.roles_of(&w.second.uuid).await, ["PROJECT.MEMBER"]);
}

#[tokio::test]
async fn a_session_follows_the_user_as_they_are_now() {
    let api = TestApi::new().await;
    let (owner, _) = api.user_with_password("wsowner", PASSWORD).await;
    let owner_session = api.session(&owner.email, PASSWORD).await;
    let workspace = new_workspace(&api, &owner_session).await;
    let path = format!("/api/v1/workspaces/{workspace}/");

    let (yves, _) = api.user_with_password("yves", PASSWORD).await;
    let admin = Some(api.admin_token.as_str());
    let user_path = format!("/api/users/{}/", yves.uuid);
    let promote = api
        .call("PATCH", &user_path, admin, Some(json!({"is_staff": true})))
        .await;
    assert_status(&promote, 200, "made staff");
    let session = api.session(&yves.email, PASSWORD).await;
    assert_status(
        &api.with_session("GET", &path, &session, None).await,
        200,
        "as staff",
    );

    let demote = api
        .call("PATCH", &user_path, admin, Some(json!({"is_staff": false})))
        .await;
    assert_status(&demote, 200, "demoted");
    assert_status(
        &api.with_session("GET", &path, &session, None).await,
        404,
        "demoted, same session",
    );
    let transfer = json!({"workspaces": [workspace], "new_owner": yves.email, "role": "READER"});
    let answer = api
        .with_session(
            "PATCH",
            "/api/v1/workspace_permissions/transfer/",
            &session,
            Some(transfer),
        )
        .await;
    assert_status(&answer, 404, "demoted transfer");

    // Deactivated: the session ends.
    let mine = api
        .with_session("GET", "/api/v1/workspaces/", &session, None)
        .await;
    assert_status(&mine, 200, "still active");
    let deactivate = api
        .call("PATCH", &user_path, admin, Some(json!({"is_active": false})))
        .await;
    assert_status(&deactivate, 200, "deactivated");
    for (method, body) in [("GET", None), ("POST", Some(json!({"name": "Mine"})))] {
        let answer = api
            .with_session(method, "/api/v1/workspaces/", &session, body)
            .await;
        assert_status(&answer, 401, "deactivated user's session");
    }

    // A new password ends the sessions opened before it.
    let owner_path = format!("/api/users/{}/", owner.uuid);
    let change = api
        .call(
            "PATCH",
            &owner_path,
            admin,
            Some(json!({"password": "another passphrase"})),
        )
        .await;
    assert_status(&change, 200, "password changed");
    let answer = api.with_session("GET", &path, &owner_session, None).await;
    assert_status(&answer, 401, "session from before the password change");
    let fresh = api.session(&owner.email, "another passphrase").await;
    assert_status(
        &api.with_session("GET", &path, &fresh, None).await,
        200,
        "a new session",
    );
}

#[tokio::test]
async fn user_details_show_only_grants_on_scopes_the_reader_sees() {
    let api = TestApi::new().await;
    let (_, project_a) = api.customer_with_project("A", "PA").await;
    let (customer_b, _) = api.customer_with_project("B", "PB").await;
    let path_a = format!("/api/projects/{}/", project_a["uuid"].as_str().unwrap());
    let path_b = format!("/api/customers/{}/", customer_b["uuid"].as_str().unwrap());
    let (bob, _) = api.user("bob", false, false).await;
    let (_, reader_token) = api.user("reader", false, false).await;
    let reader = shared::users::find_by_username(api.store(), "reader")
        .await
        .unwrap()
        .unwrap();
    api.grant(&path_a, &bob.uuid, "PROJECT.MEMBER").await;
    api.grant(&path_b, &bob.uuid, "CUSTOMER.OWNER").await;
    api.grant(&path_a, &reader.uuid, "PROJECT.MEMBER").await;

    let fields = "?field=customer_permissions&field=project_permissions";
    let seen = api
        .call(
            "GET",
            &format!("/api/users/{}/{fields}", bob.uuid),
            Some(&reader_token),
            None,
        )
        .await;
    assert_status(&seen, 200, "a co-member reads bob");
    assert_eq!(seen.json["customer_permissions"], json!([]), "{}", seen.text);
    assert_eq!(seen.json["project_permissions"].as_array().unwrap().len(), 1);
    let listed = api
        .call("GET", &format!("/api/users/{fields}"), Some(&reader_token), None)
        .await;
    assert_eq!(
        listed.json.as_array().unwrap().len(),
        2,
        "reader and bob: {}",
        listed.text
    );
    for row in listed.json.as_array().unwrap() {
        assert_eq!(row["customer_permissions"], json!([]), "listed: {row}");
    }
    let by_staff = api
        .call(
            "GET",
            &format!("/api/users/{}/{fields}", bob.uuid),
            Some(&api.admin_token),
            None,
        )
        .await;
    assert_eq!(by_staff.json["customer_permissions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_transfer_or_share_tells_a_non_owner_nothing_about_other_users() {
    let api = TestApi::new().await;
    let (owner, _) = api.user_with_password("wsowner", PASSWORD).await;
    let (snoop, _) = api.user_with_password("snoop", PASSWORD).await;
    let owner_session = api.session(&owner.email, PASSWORD).await;
    let workspace = new_workspace(&api, &owner_session).await;
    let share = json!({"workspace": workspace, "user": snoop.pk, "role": "READER"});
    let shared = api
        .with_session(
            "POST",
            "/api/v1/workspace_permissions/",
            &owner_session,
            Some(share),
        )
        .await;
    assert_status(&shared, 201, "share with the snoop");
    let session = api.session(&snoop.email, PASSWORD).await;
    let transfer = "/api/v1/workspace_permissions/transfer/";
    let answers: Vec<(u16, Value)> = join_all(["wsowner@example.com", "nobody@example.com"].map(|email| {
        let body = json!({"workspaces": [workspace], "new_owner": email, "role": "READER"});
        let session = session.clone();
        let api = &api;
        async move {
            let answer = api.with_session("PATCH", transfer, &session, Some(body)).await;
            (answer.status, answer.json)
        }
    }))
    .await;
    assert_eq!(answers[0], answers[1], "a registered and an unknown address");
    assert_eq!(answers[0].0, 403);
    let shares: Vec<(u16, Value)> = join_all([owner.pk, 999_999].map(|pk| {
        let body = json!({"workspace": workspace, "user": pk, "role": "READER"});
        let session = session.clone();
        let api = &api;
        async move {
            let answer = api
                .with_session("POST", "/api/v1/workspace_permissions/", &session, Some(body))
                .await;
            (answer.status, answer.json)
        }
    }))
    .await;
    assert_eq!(shares[0], shares[1], "a valid and an invalid user pk");
    assert_eq!(shares[0].0, 403);
}

#[tokio::test]
async fn simultaneous_wrong_passwords_meet_the_brake() {
    let api = TestApi::new().await;
    let (victim, _) = api.user_with_password("victim", PASSWORD).await;
    let answers = join_all((0..40).map(|i| {
        let body = json!({"email": victim.email, "password": format!("wrong guess {i}")});
        api.call("POST", "/api/v1/auth/", None, Some(body))
    }))
    .await;
    let refused = answers.iter().filter(|a| a.status == 400).count();
    let braked = answers.iter().filter(|a| a.status == 429).count();
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|a| a.status != 400 && a.status != 429)
        .map(|a| (a.status, &a.text))
        .collect();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
    assert_eq!(
        refused,
        shared::sessions::MAX_FAILURES as usize,
        "guesses checked"
    );
    assert_eq!(braked, 40 - refused);
    // The right password is braked too, until the window ends.
    let right = json!({"email": victim.email, "password": PASSWORD});
    let answer = api.call("POST", "/api/v1/auth/", None, Some(right)).await;
    assert_status(&answer, 429, "the right password within the window");
}

#[tokio::test]
async fn successful_logins_do_not_use_up_the_brake() {
    let api = TestApi::new().await;
    let (user, _) = api.user_with_password("frequent", PASSWORD).await;
    for _ in 0..(shared::sessions::MAX_FAILURES + 2) {
        api.session(&user.email, PASSWORD).await;
    }
}

#[tokio::test]
async fn a_canceled_or_expired_invitation_ends_its_pending_requests() {
    let w = World::new().await;
    let admin = w.api.admin_token.clone();
    let invitation = w.invite(&admin, MEMBER_ROLE, false).await;
    let submitted = w.submit(&w.second_token, &invitation).await;
    let request = submitted.json["uuid"].as_str().unwrap().to_owned();
    let cancel = format!(
        "/api/user-group-invitations/{}/cancel/",
        invitation.json["uuid"].as_str().unwrap()
    );
    assert_status(&w.post(&admin, &cancel, json!({})).await, 200, "cancel");
    let read = w
        .api
        .call(
            "GET",
            &format!("/api/user-permission-requests/{request}/"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(read.json["state"], "canceled", "{}", read.text);
    assert_status(
        &w.approve(&admin, &request).await,
        409,
        "approving after the cancel",
    );
    assert!(w.roles_of(&w.second.uuid).await.is_empty());

    // Expired: made five weeks ago (the lifetime is four).
    let old = w.invite(&admin, MEMBER_ROLE, false).await;
    let submitted = w.submit(&w.second_token, &old).await;
    let request = submitted.json["uuid"].as_str().unwrap().to_owned();
    let past = shared::time::storage(&(shared::time::now() - chrono::Duration::weeks(5)));
    let store = w.api.store();
    for (pk, attribute) in [
        (
            format!("INVITATION#{}", old.json["uuid"].as_str().unwrap()),
            "created",
        ),
        (format!("REQUEST#{request}"), "invitation_expires"),
    ] {
        let value = if attribute == "created" {
            past.clone()
        } else {
            shared::time::storage(&(shared::time::now() - chrono::Duration::weeks(1)))
        };
        store
            .client()
            .update_item()
            .table_name(store.table())
            .key("PK", s(pk))
            .key("SK", s("#META"))
            .update_expression("SET #a = :v")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":v", s(value))
            .send()
            .await
            .unwrap();
    }
    let listed = w
        .api
        .call(
            "GET",
            "/api/user-permission-requests/?state=pending",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        listed.json,
        json!([]),
        "no request of an ended invitation is pending"
    );
    assert_status(&w.approve(&admin, &request).await, 409, "approving after expiry");
    assert!(w.roles_of(&w.second.uuid).await.is_empty());
}

#[tokio::test]
async fn expired_grants_leave_counts_and_pages_in_agreement() {
    let w = World::new().await;
    let (temp, _) = w.api.user("temp", false, false).await;
    let body =
        json!({"user": temp.uuid, "role": "PROJECT.MEMBER", "expiration_time": "2030-01-01T00:00:00Z"});
    let path = format!("{}add_user/", w.project_path);
    assert_status(
        &w.post(&w.api.admin_token, &path, body).await,
        201,
        "a grant that expires",
    );
    // Time passes: the expiration is behind us, and the sweep has not run.
    let store = w.api.store();
    let rows = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("PK = :pk AND begins_with(SK, :member)")
        .expression_attribute_values(":pk", s(format!("PROJECT#{}", w.project)))
        .expression_attribute_values(":member", s("MEMBER#"))
        .send()
        .await
        .unwrap();
    let past = "2020-01-01T00:00:00.000000Z";
    for row in rows.items() {
        if row.get("user_uuid").and_then(|v| v.as_s().ok()) == Some(&temp.uuid.to_string()) {
            store
                .client()
                .update_item()
                .table_name(store.table())
                .key("PK", row["PK"].clone())
                .key("SK", row["SK"].clone())
                .update_expression("SET expiration_time = :past")
                .expression_attribute_values(":past", s(past))
                .send()
                .await
                .unwrap();
            // The user-side record too, and its place in the sweeper's index.
            let grant = row["uuid"].as_s().unwrap();
            let role = row["role_uuid"].as_s().unwrap();
            store
                .client()
                .update_item()
                .table_name(store.table())
                .key("PK", s(format!("USER#{}", temp.uuid)))
                .key("SK", s(format!("GRANT#project#{}#{role}", w.project)))
                .update_expression("SET expiration_time = :past, GSI1SK = :sort")
                .condition_expression("attribute_exists(PK)")
                .expression_attribute_values(":past", s(past))
                .expression_attribute_values(":sort", s(format!("{past}#{grant}")))
                .send()
                .await
                .unwrap();
        }
    }
    let list = |query: &'static str| {
        let path = format!("{}list_users/{query}", w.project_path);
        let api = &w.api;
        async move { api.call("GET", &path, Some(&api.admin_token), None).await }
    };
    let all = list("").await;
    assert_eq!(all.header("x-result-count"), Some("1"), "{}", all.text);
    assert_eq!(all.json.as_array().unwrap().len(), 1);
    let first = list("?page_size=1").await;
    assert_eq!(first.json[0]["user_username"], "mallory", "{}", first.text);
    assert_eq!(first.header("x-result-count"), Some("1"));
    // Staff's page of all project grants (read on its own while nothing is unswept) does not
    // show it either, nor count it.
    let staff = w
        .api
        .call("GET", "/api/project-permissions/", Some(&w.api.admin_token), None)
        .await;
    let shown: Vec<&Value> = staff
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["user_username"])
        .collect();
    assert_eq!(shown, [&json!("mallory")], "{}", staff.text);
    assert_eq!(staff.header("x-result-count"), Some("1"));
}

#[tokio::test]
async fn sharing_a_workspace_while_it_is_deleted_never_leaves_orphans() {
    let api = TestApi::new().await;
    let (owner, _) = api.user_with_password("wsowner", PASSWORD).await;
    let session = api.session(&owner.email, PASSWORD).await;
    let mut both = 0;
    for trial in 0..15 {
        let (guest, _) = api.user(&format!("guest{trial}"), false, false).await;
        let id = new_workspace(&api, &session).await;
        let share = json!({"workspace": id, "user": guest.pk, "role": "READER"});
        let path = format!("/api/v1/workspaces/{id}/");
        let (shared, deleted) = tokio::join!(
            api.with_session("POST", "/api/v1/workspace_permissions/", &session, Some(share)),
            api.with_session("DELETE", &path, &session, None)
        );
        for answer in [&shared, &deleted] {
            assert!(
                answer.status < 500,
                "trial {trial}: {} {}",
                answer.status,
                answer.text
            );
        }
        if shared.status == 201 && deleted.status == 204 {
            both += 1;
        }
    }
    // Both may succeed one after the other (the share commits before the delete reads, and the
    // delete removes its permission too); what must never happen is a permission left behind.
    println!("share and delete of one workspace: both succeeded, in order, in {both} of 15 trials");
    let items = api.all_items().await;
    let workspaces: Vec<&Value> = items.iter().filter(|i| i["entity"] == "workspace").collect();
    for permission in items.iter().filter(|i| i["entity"] == "workspace_permission") {
        assert!(
            workspaces.iter().any(|w| w["id"] == permission["workspace"]),
            "a permission of a deleted workspace: {permission}"
        );
    }
}

#[tokio::test]
async fn the_check_answers_alike_for_unknown_and_invisible_scopes() {
    let w = World::new().await;
    let (other, _) = w.api.customer_with_project("Other", "Hidden").await;
    let hidden = other["uuid"].as_str().unwrap();
    let unknown = Id::new().to_string();
    let check = |scope: &str| {
        format!(
            "/api/permissions/check/?user={}&permission=PROJECT.UPDATE&scope_type=customer&scope={scope}",
            w.mallory.uuid
        )
    };
    let a = w
        .api
        .call("GET", &check(hidden), Some(&w.mallory_token), None)
        .await;
    let b = w
        .api
        .call("GET", &check(&unknown), Some(&w.mallory_token), None)
        .await;
    assert_eq!(
        (a.status, &a.json),
        (b.status, &b.json),
        "{} / {}",
        a.text,
        b.text
    );
    assert_eq!(a.status, 400);
    let own = w.customer_path.trim_end_matches('/').rsplit('/').next().unwrap();
    let seen = w.api.call("GET", &check(own), Some(&w.mallory_token), None).await;
    assert_eq!(
        (seen.status, &seen.json["allowed"]),
        (200, &json!(false)),
        "{}",
        seen.text
    );
}

#[tokio::test]
async fn a_body_with_a_key_twice_is_refused() {
    let w = World::new().await;
    let (bob, _) = w.api.user("bob", false, false).await;
    let body = format!(
        r#"{{"user": "{}", "role": "PROJECT.MEMBER", "role": "PROJECT.MANAGER"}}"#,
        bob.uuid
    );
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("http://testserver{}add_user/", w.project_path))
        .header("host", "testserver")
        .header("authorization", format!("Token {}", w.api.admin_token))
        .header("content-type", "application/json")
        .body(lambda_http::Body::Text(body))
        .unwrap();
    let answer = w.api.send(request).await;
    assert_status(&answer, 400, "duplicate key");
    assert!(
        answer.json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("duplicate key \"role\"")),
        "{}",
        answer.text
    );
    assert!(w.roles_of(&bob.uuid).await.is_empty());
}

#[tokio::test]
async fn approvals_and_submits_racing_a_role_disable_answer_no_5xx() {
    let w = World::new().await;
    let admin = w.api.admin_token.clone();
    let role = {
        let body = json!({"name": "PROJECT.RACED", "content_type": "project", "permissions": []});
        let answer = w.post(&admin, "/api/roles/", body).await;
        answer.json["uuid"].as_str().unwrap().to_owned()
    };
    let manual = w.invite(&admin, &role, false).await;
    let auto = w.invite(&admin, &role, true).await;
    let mut requests = Vec::new();
    let mut submitters = Vec::new();
    for i in 0..20 {
        let (_, token) = w.api.user(&format!("asker{i}"), false, false).await;
        let submitted = w.submit(&token, &manual).await;
        requests.push(submitted.json["uuid"].as_str().unwrap().to_owned());
        submitters.push(w.api.user(&format!("auto{i}"), false, false).await.1);
    }
    let disable = format!("/api/roles/{role}/disable/");
    let (approvals, submits, disabled) = tokio::join!(
        join_all(requests.iter().map(|r| w.approve(&admin, r))),
        join_all(submitters.iter().map(|t| w.submit(t, &auto))),
        w.post(&admin, &disable, json!({}))
    );
    assert_status(&disabled, 200, "disable");
    assert_race(&approvals, &[200, 400], "approvals racing the disable");
    assert_race(&submits, &[200, 400], "auto-approve submits racing the disable");
    for answer in approvals.iter().chain(&submits).filter(|a| a.status == 400) {
        assert!(answer.text.contains("Role is not active."), "{}", answer.text);
    }
    assert_consistent(&w.api).await;

    // Without any race: another container still holds the role as active in its cache.
    let other = w.api.another_container();
    let invitation = w.invite(&admin, MEMBER_ROLE, false).await;
    let submitted = w.submit(&w.second_token, &invitation).await;
    let request = submitted.json["uuid"].as_str().unwrap().to_owned();
    let warm = other.call("GET", "/api/roles/", Some(&admin), None).await;
    assert_status(&warm, 200, "the other container reads the roles");
    let read = other
        .call(
            "GET",
            &format!("/api/user-permission-requests/{request}/"),
            Some(&admin),
            None,
        )
        .await;
    assert_status(&read, 200, "the other container caches the roles");
    let disable = format!("/api/roles/{MEMBER_ROLE}/disable/");
    assert_status(&w.post(&admin, &disable, json!({})).await, 200, "disable member");
    let path = format!("/api/user-permission-requests/{request}/approve/");
    let answer = other.call("POST", &path, Some(&admin), Some(json!({}))).await;
    assert_status(&answer, 400, "approval through a stale role cache");
    assert!(answer.text.contains("Role is not active."), "{}", answer.text);
    assert_consistent(&w.api).await;
}

#[tokio::test]
async fn approvals_racing_a_project_delete_answer_no_5xx() {
    let w = World::new().await;
    let admin = w.api.admin_token.clone();
    for trial in 0..10 {
        let name = format!("Doomed {trial}");
        let body = json!({"name": name, "customer": format!("http://testserver{}", w.customer_path)});
        let project = w.post(&admin, "/api/projects/", body).await;
        let url = project.json["url"].as_str().unwrap().to_owned();
        let uuid = project.json["uuid"].as_str().unwrap().to_owned();
        let invitation = w
            .post(
                &admin,
                "/api/user-group-invitations/",
                json!({"scope": url, "role": MEMBER_ROLE}),
            )
            .await;
        let mut requests = Vec::new();
        for i in 0..2 {
            let (_, token) = w.api.user(&format!("doomed{trial}x{i}"), false, false).await;
            requests.push(
                w.submit(&token, &invitation).await.json["uuid"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let path = format!("/api/projects/{uuid}/");
        let (approvals, deleted) = tokio::join!(
            join_all(requests.iter().map(|r| w.approve(&admin, r))),
            w.api.call("DELETE", &path, Some(&admin), None)
        );
        assert_race(&approvals, &[200, 404, 409], "approvals racing the delete");
        assert_race(std::slice::from_ref(&deleted), &[204, 409], "the delete");
    }
    assert_consistent(&w.api).await;
}
