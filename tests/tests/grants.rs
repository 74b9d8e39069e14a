//! Customers, projects and role grants against DynamoDB Local, with Waldur's texts and codes.

use futures::future::join_all;
use integration_tests::{Answer, TestApi};
use serde_json::{Value, json};
use shared::store::s;

const OWNER: &str = "CUSTOMER.OWNER";

struct World {
    api: TestApi,
    customer: String,
    project: String,
    other_project: String,
}

impl World {
    async fn new() -> Self {
        let api = TestApi::new().await;
        let customer = post(
            &api,
            &api.admin_token,
            "/api/customers/",
            json!({"name": "Peer Org", "abbreviation": "PO"}),
        )
        .await;
        assert_eq!(customer.status, 201, "{}", customer.text);
        let customer_url = customer.json["url"].as_str().unwrap().to_owned();
        let customer = customer.json["uuid"].as_str().unwrap().to_owned();
        let mut projects = Vec::new();
        for name in ["Peer Project", "Other Project"] {
            let project = post(
                &api,
                &api.admin_token,
                "/api/projects/",
                json!({"name": name, "customer": customer_url}),
            )
            .await;
            assert_eq!(project.status, 201, "{}", project.text);
            projects.push(project.json["uuid"].as_str().unwrap().to_owned());
        }
        World {
            api,
            customer,
            project: projects.remove(0),
            other_project: projects.remove(0),
        }
    }

    async fn user(&self, name: &str) -> (String, String) {
        let (user, token) = self.api.user(name, false, false).await;
        (user.uuid.to_string(), token)
    }

    async fn grant(&self, token: &str, scope: &str, user: &str, role: &str) -> Answer {
        post(
            &self.api,
            token,
            &format!("{scope}add_user/"),
            json!({"user": user, "role": role}),
        )
        .await
    }

    fn customer_path(&self) -> String {
        format!("/api/customers/{}/", self.customer)
    }

    fn project_path(&self) -> String {
        format!("/api/projects/{}/", self.project)
    }
}

async fn post(api: &TestApi, token: &str, path: &str, body: Value) -> Answer {
    api.call("POST", path, Some(token), Some(body)).await
}

async fn get(api: &TestApi, token: &str, path: &str) -> Answer {
    api.call("GET", path, Some(token), None).await
}

fn usernames(answer: &Answer) -> Vec<&str> {
    answer
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_username"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn customers_and_projects_are_seen_through_roles() {
    let w = World::new().await;
    let (alice, alice_token) = w.user("alice").await;
    let (bob, bob_token) = w.user("bob").await;
    let (_, carol_token) = w.user("carol").await;
    assert_eq!(
        w.grant(&w.api.admin_token, &w.customer_path(), &alice, OWNER)
            .await
            .status,
        201
    );
    assert_eq!(
        w.grant(&w.api.admin_token, &w.project_path(), &bob, "PROJECT.ADMIN")
            .await
            .status,
        201
    );

    let outsider = get(&w.api, &carol_token, "/api/customers/").await;
    assert_eq!((outsider.status, &outsider.json), (200, &json!([])));
    assert_eq!(outsider.header("x-result-count"), Some("0"));
    let hidden = get(&w.api, &carol_token, &w.customer_path()).await;
    assert_eq!(
        (hidden.status, &hidden.json),
        (404, &json!({"detail": "No Customer matches the given query."}))
    );
    assert_eq!(get(&w.api, &carol_token, &w.project_path()).await.status, 404);

    // The owner sees the customer and every project; the project admin sees the customer and
    // only their project.
    let owned = get(&w.api, &alice_token, "/api/projects/").await;
    assert_eq!(owned.header("x-result-count"), Some("2"));
    assert_eq!(
        get(&w.api, &bob_token, "/api/customers/").await.json[0]["name"],
        "Peer Org"
    );
    let bobs = get(&w.api, &bob_token, "/api/projects/").await;
    assert_eq!(bobs.json.as_array().unwrap().len(), 1);
    assert_eq!(bobs.json[0]["customer_name"], "Peer Org");
    assert_eq!(bobs.json[0]["customer_uuid"], w.customer.as_str());
    assert_eq!(
        get(&w.api, &bob_token, &format!("/api/projects/{}/", w.other_project))
            .await
            .status,
        404
    );

    // Creating: customers are staff's, projects need PROJECT.CREATE on the customer.
    let denied = post(&w.api, &alice_token, "/api/customers/", json!({"name": "Mine"})).await;
    assert_eq!(denied.status, 403);
    let customer_url = format!("http://testserver/api/customers/{}/", w.customer);
    let by_owner = post(
        &w.api,
        &alice_token,
        "/api/projects/",
        json!({"name": "Owner's", "customer": customer_url}),
    )
    .await;
    assert_eq!(by_owner.status, 201, "{}", by_owner.text);
    let by_admin = post(
        &w.api,
        &bob_token,
        "/api/projects/",
        json!({"name": "Admin's", "customer": customer_url}),
    )
    .await;
    assert_eq!(by_admin.status, 403);
    let invisible = post(
        &w.api,
        &carol_token,
        "/api/projects/",
        json!({"name": "X", "customer": customer_url}),
    )
    .await;
    assert_eq!(invisible.status, 400);
    assert_eq!(
        invisible.json["customer"],
        json!(["Invalid hyperlink - Object does not exist."])
    );

    // Updating and deleting follow the same permissions; a scope with grants is kept.
    let renamed = w
        .api
        .call(
            "PATCH",
            &w.project_path(),
            Some(&alice_token),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(
        (renamed.status, renamed.json["name"].as_str()),
        (200, Some("Renamed"))
    );
    assert_eq!(
        w.api
            .call(
                "PATCH",
                &w.project_path(),
                Some(&bob_token),
                Some(json!({"name": "No"}))
            )
            .await
            .status,
        403
    );
    assert_eq!(
        w.api
            .call("DELETE", &w.project_path(), Some(&alice_token), None)
            .await
            .status,
        409
    );
    let empty_project = format!("/api/projects/{}/", w.other_project);
    assert_eq!(
        w.api
            .call("DELETE", &empty_project, Some(&alice_token), None)
            .await
            .status,
        204
    );
    let customer_delete = w
        .api
        .call("DELETE", &w.customer_path(), Some(&w.api.admin_token), None)
        .await;
    assert_eq!(customer_delete.status, 409);
}

#[tokio::test]
async fn add_user_answers_like_waldur() {
    let w = World::new().await;
    let (bob, _) = w.user("bob").await;
    let admin = w.api.admin_token.clone();
    let add = |body: Value| {
        let (api, path) = (&w.api, format!("{}add_user/", w.customer_path()));
        let admin = admin.clone();
        async move { post(api, &admin, &path, body).await }
    };
    let created = add(json!({"user": bob, "role": OWNER})).await;
    assert_eq!(
        (created.status, &created.json),
        (201, &json!({"expiration_time": null}))
    );
    let cases = [
        (
            json!({}),
            json!({"role": ["This field is required."], "user": ["This field is required."]}),
        ),
        (
            json!({"user": bob, "role": OWNER}),
            json!({"non_field_errors": ["User has already the same role in this scope."]}),
        ),
        (
            json!({"user": bob, "role": "NO.SUCH"}),
            json!({"role": ["Role is not found."]}),
        ),
        (
            json!({"user": "00000000000000000000000000000000", "role": "CUSTOMER.MANAGER"}),
            json!({"user": ["User is not found."]}),
        ),
        (
            json!({"user": "nope", "role": "CUSTOMER.MANAGER"}),
            json!({"user": ["Must be a valid UUID."]}),
        ),
        (
            json!({"user": bob, "role": "PROJECT.ADMIN"}),
            json!({"non_field_errors": ["Role is not valid for this scope."]}),
        ),
        (
            json!({"user": bob, "role": "CUSTOMER.MANAGER", "expiration_time": "2000-01-01"}),
            json!({"expiration_time": ["Expiration time should be greater than current time."]}),
        ),
    ];
    for (body, expected) in cases {
        let answer = add(body.clone()).await;
        assert_eq!((answer.status, &answer.json), (400, &expected), "{body}");
    }
    // By uuid (hyphenated, as the official client sends it), with a date-only expiration.
    let dashed = format!(
        "{}-{}-{}-{}-{}",
        &bob[..8],
        &bob[8..12],
        &bob[12..16],
        &bob[16..20],
        &bob[20..]
    );
    let manager = add(json!({"user": dashed, "role": "0532d62c-5983-49a8-aab0-93438500bc76", "expiration_time": "2030-01-01"}))
        .await;
    assert_eq!(
        (manager.status, &manager.json),
        (201, &json!({"expiration_time": "2030-01-01T00:00:00Z"}))
    );

    w.api
        .call(
            "POST",
            "/api/roles/ba2566b01ed44752a8747823c89c3d1a/disable/",
            Some(&admin),
            None,
        )
        .await;
    let inactive = add(json!({"user": bob, "role": "CUSTOMER.READER"})).await;
    assert_eq!(
        inactive.json,
        json!({"non_field_errors": ["Role is not active."]})
    );
}

#[tokio::test]
async fn list_users_pages_filters_and_hides_from_outsiders() {
    let w = World::new().await;
    let admin = w.api.admin_token.clone();
    let (alice, _) = w.user("alice").await;
    let (bob, bob_token) = w.user("bob").await;
    let (_, carol_token) = w.user("carol").await;
    w.grant(&admin, &w.customer_path(), &alice, OWNER).await;
    w.grant(&admin, &w.customer_path(), &bob, "CUSTOMER.SUPPORT")
        .await;
    w.grant(&admin, &w.project_path(), &bob, "PROJECT.ADMIN").await;

    let all = get(&w.api, &admin, &format!("{}list_users/", w.customer_path())).await;
    assert_eq!(
        all.header("x-result-count"),
        Some("2"),
        "project roles are not customer members"
    );
    assert_eq!(usernames(&all), ["alice", "bob"]);
    let first = &all.json[0];
    assert_eq!(first["role_name"], OWNER);
    assert_eq!(first["role_uuid"], "afab8022f4df457fba97346cd4c6a4a1");
    assert_eq!(first["user_email"], "alice@example.com");
    assert_eq!(first["user_full_name"], "alice Tester");
    assert_eq!(first["user_uuid"], alice.as_str());
    assert_eq!(first["created_by_uuid"], w.api.admin.uuid.to_string());
    assert_eq!(first["user_image"], Value::Null);
    assert!(first["created"].as_str().unwrap().ends_with('Z'));

    let owners = get(
        &w.api,
        &bob_token,
        &format!("{}list_users/?role={OWNER}", w.customer_path()),
    )
    .await;
    assert_eq!(usernames(&owners), ["alice"]);
    let by_uuid = get(
        &w.api,
        &admin,
        &format!(
            "{}list_users/?role=7a54bcc72de64bddad11c6c514067470",
            w.customer_path()
        ),
    )
    .await;
    assert_eq!(usernames(&by_uuid), ["bob"]);
    let searched = get(
        &w.api,
        &admin,
        &format!("{}list_users/?search_string=ALICE@", w.customer_path()),
    )
    .await;
    assert_eq!(usernames(&searched), ["alice"]);
    let ordered = get(
        &w.api,
        &admin,
        &format!("{}list_users/?o=-username", w.customer_path()),
    )
    .await;
    assert_eq!(usernames(&ordered), ["bob", "alice"]);
    let unknown_user = get(
        &w.api,
        &admin,
        &format!("{}list_users/?user=not-a-uuid", w.customer_path()),
    )
    .await;
    assert_eq!(unknown_user.header("x-result-count"), Some("2"));

    let paged = get(
        &w.api,
        &admin,
        &format!("{}list_users/?page_size=1&page=2", w.customer_path()),
    )
    .await;
    assert_eq!(usernames(&paged), ["bob"]);
    assert!(paged.header("link").unwrap().contains("rel=\"prev\""));
    assert_eq!(
        get(
            &w.api,
            &admin,
            &format!("{}list_users/?page=3&page_size=1", w.customer_path())
        )
        .await
        .status,
        404
    );

    let outsider = get(&w.api, &carol_token, &format!("{}list_users/", w.customer_path())).await;
    assert_eq!(
        (outsider.status, &outsider.json),
        (404, &json!({"detail": "No Customer matches the given query."}))
    );
    let outsider_add = w.grant(&carol_token, &w.customer_path(), &bob, OWNER).await;
    assert_eq!(outsider_add.status, 404);
}

#[tokio::test]
async fn who_may_grant_what() {
    let w = World::new().await;
    let admin = w.api.admin_token.clone();
    let (owner, owner_token) = w.user("owner").await;
    let (manager, manager_token) = w.user("manager").await;
    let (project_admin, project_admin_token) = w.user("padmin").await;
    let (target, _) = w.user("target").await;
    let (_, support_token) = w.api.user("support", false, true).await;
    w.grant(&admin, &w.customer_path(), &owner, OWNER).await;
    w.grant(&admin, &w.project_path(), &manager, "PROJECT.MANAGER")
        .await;
    w.grant(&admin, &w.project_path(), &project_admin, "PROJECT.ADMIN")
        .await;

    // The owner manages the customer's roles and its projects'.
    assert_eq!(
        w.grant(&owner_token, &w.customer_path(), &target, "CUSTOMER.MANAGER")
            .await
            .status,
        201
    );
    assert_eq!(
        w.grant(&owner_token, &w.project_path(), &target, "PROJECT.MANAGER")
            .await
            .status,
        201
    );
    // The project manager manages members and admins of their project, not their own role,
    // and cannot hand out permissions they do not hold.
    assert_eq!(
        w.grant(&manager_token, &w.project_path(), &target, "PROJECT.MEMBER")
            .await
            .status,
        201
    );
    assert_eq!(
        w.grant(&manager_token, &w.project_path(), &target, "PROJECT.ADMIN")
            .await
            .status,
        201
    );
    let own = post(
        &w.api,
        &manager_token,
        &format!("{}delete_user/", w.project_path()),
        json!({"user": manager, "role": "PROJECT.MANAGER"}),
    )
    .await;
    assert_eq!(
        (own.status, &own.json),
        (
            400,
            &json!({"non_field_errors": ["User can not manage own role."]})
        )
    );
    let custom = post(
        &w.api,
        &admin,
        "/api/roles/",
        json!({"name": "PROJECT.APPROVER", "content_type": "project", "permissions": ["ORDER.APPROVE"]}),
    )
    .await;
    assert_eq!(custom.status, 201);
    assert_eq!(
        w.grant(&manager_token, &w.project_path(), &target, "PROJECT.APPROVER")
            .await
            .status,
        403
    );
    assert_eq!(
        w.grant(&manager_token, &w.customer_path(), &target, "CUSTOMER.READER")
            .await
            .status,
        403
    );
    let other = format!("/api/projects/{}/", w.other_project);
    assert_eq!(
        w.grant(&manager_token, &other, &target, "PROJECT.MEMBER")
            .await
            .status,
        404
    );
    // A project admin and global support see the project but may not change its members.
    assert_eq!(
        w.grant(
            &project_admin_token,
            &w.project_path(),
            &target,
            "PROJECT.MANAGER"
        )
        .await
        .status,
        403
    );
    let support = w
        .grant(&support_token, &w.project_path(), &target, "PROJECT.MANAGER")
        .await;
    assert_eq!(
        (support.status, &support.json),
        (
            403,
            &json!({"detail": "You do not have permission to perform this action."})
        )
    );
    // Field errors come before permission errors.
    assert_eq!(
        w.grant(&project_admin_token, &w.project_path(), &target, "NO.SUCH")
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn update_and_delete_user() {
    let w = World::new().await;
    let admin = w.api.admin_token.clone();
    let (bob, _) = w.user("bob").await;
    let path = w.project_path();
    let body =
        |expiration: Value| json!({"user": bob, "role": "PROJECT.ADMIN", "expiration_time": expiration});
    let missing = post(&w.api, &admin, &format!("{path}update_user/"), body(json!(null))).await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        post(
            &w.api,
            &admin,
            &format!("{path}add_user/"),
            body(json!("2030-01-01T00:00:00Z"))
        )
        .await
        .status,
        201
    );
    let updated = post(
        &w.api,
        &admin,
        &format!("{path}update_user/"),
        body(json!("2031-01-01")),
    )
    .await;
    assert_eq!(
        (updated.status, &updated.json),
        (200, &json!({"expiration_time": "2031-01-01T00:00:00Z"}))
    );
    let listed = get(&w.api, &admin, &format!("{path}list_users/")).await;
    assert_eq!(listed.json[0]["expiration_time"], "2031-01-01T00:00:00Z");
    let permanent = post(
        &w.api,
        &admin,
        &format!("{path}update_user/"),
        json!({"user": bob, "role": "PROJECT.ADMIN"}),
    )
    .await;
    assert_eq!(permanent.json, json!({"expiration_time": null}));

    let roles_before = get(&w.api, &admin, "/api/roles/85ae032608494d65a02605e5644767f3/")
        .await
        .json["users_count"]
        .clone();
    assert_eq!(roles_before, 1);
    for _ in 0..2 {
        let deleted = post(
            &w.api,
            &admin,
            &format!("{path}delete_user/"),
            json!({"user": bob, "role": "PROJECT.ADMIN"}),
        )
        .await;
        assert_eq!((deleted.status, deleted.text.as_str()), (200, ""));
    }
    let after = get(&w.api, &admin, &format!("{path}list_users/")).await;
    assert_eq!(
        (after.header("x-result-count"), &after.json),
        (Some("0"), &json!([]))
    );
    assert_eq!(
        get(&w.api, &admin, "/api/roles/85ae032608494d65a02605e5644767f3/")
            .await
            .json["users_count"],
        0
    );
    // A role with no grants left can be deleted again; the project can be deleted too.
    assert_eq!(w.api.call("DELETE", &path, Some(&admin), None).await.status, 204);
}

#[tokio::test]
async fn expired_grants_count_for_nothing() {
    let w = World::new().await;
    let admin = w.api.admin_token.clone();
    let (bob, bob_token) = w.user("bob").await;
    let path = w.project_path();
    post(
        &w.api,
        &admin,
        &format!("{path}add_user/"),
        json!({"user": bob, "role": "PROJECT.MANAGER", "expiration_time": "2030-01-01"}),
    )
    .await;
    let check = format!(
        "/api/permissions/check/?user={bob}&permission=PROJECT.UPDATE&scope_type=project&scope={}",
        w.project
    );
    assert_eq!(get(&w.api, &bob_token, &check).await.json["allowed"], true);

    // Time passes: the stored expiration is now in the past, and the sweeper has not run.
    let store = w.api.store();
    let items = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("PK = :pk AND begins_with(SK, :grant)")
        .expression_attribute_values(":pk", s(format!("USER#{bob}")))
        .expression_attribute_values(":grant", s("GRANT#"))
        .send()
        .await
        .unwrap();
    let sk = items.items()[0]["SK"].as_s().unwrap().clone();
    let past = s("2020-01-01T00:00:00.000000Z");
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("PK", s(format!("USER#{bob}")))
        .key("SK", s(sk.clone()))
        .update_expression("SET expiration_time = :past")
        .expression_attribute_values(":past", past.clone())
        .send()
        .await
        .unwrap();
    // The copy on the user item, which authorization reads.
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("PK", s(format!("USER#{bob}")))
        .key("SK", s("#META"))
        .update_expression("SET held.#grant.e = :past")
        .expression_attribute_names("#grant", sk.trim_start_matches("GRANT#"))
        .expression_attribute_values(":past", past)
        .send()
        .await
        .unwrap();
    // Bob no longer sees the project: the check answers as for a scope that does not exist.
    let hidden = get(&w.api, &bob_token, &check).await;
    assert_eq!(
        (hidden.status, hidden.json),
        (400, json!({"scope": ["Object does not exist."]}))
    );
    assert_eq!(get(&w.api, &bob_token, &path).await.status, 404);
    let regrant = post(
        &w.api,
        &admin,
        &format!("{path}add_user/"),
        json!({"user": bob, "role": "PROJECT.MANAGER"}),
    )
    .await;
    assert_eq!(
        regrant.status, 201,
        "an expired grant does not block a new one: {}",
        regrant.text
    );
    assert_eq!(get(&w.api, &bob_token, &check).await.json["allowed"], true);
}

#[tokio::test]
async fn permission_check_explains_itself() {
    let w = World::new().await;
    let admin = w.api.admin_token.clone();
    let (alice, alice_token) = w.user("alice").await;
    let (bob, bob_token) = w.user("bob").await;
    w.grant(&admin, &w.customer_path(), &alice, OWNER).await;
    w.grant(&admin, &w.project_path(), &bob, "PROJECT.MEMBER").await;
    let check = |user: &str, permission: &str| {
        format!(
            "/api/permissions/check/?user={user}&permission={permission}&scope_type=project&scope={}",
            w.project
        )
    };
    let owner = get(&w.api, &alice_token, &check(&alice, "PROJECT.UPDATE")).await;
    assert_eq!(
        owner.json,
        json!({"allowed": true, "is_staff": false, "granted_by": [{"role": OWNER, "scope_type": "customer", "scope_uuid": w.customer}]})
    );
    let member = get(&w.api, &bob_token, &check(&bob, "PROJECT.UPDATE")).await;
    assert_eq!(
        (member.json["allowed"].as_bool(), &member.json["granted_by"]),
        (Some(false), &json!([]))
    );
    assert_eq!(
        get(&w.api, &bob_token, &check(&alice, "PROJECT.UPDATE"))
            .await
            .status,
        403
    );
    let staff = get(&w.api, &admin, &check(&w.api.admin.uuid.to_string(), "ANYTHING")).await;
    assert_eq!(
        (staff.json["allowed"].as_bool(), staff.json["is_staff"].as_bool()),
        (Some(true), Some(true))
    );
    let invalid = get(&w.api, &admin, "/api/permissions/check/?scope_type=planet").await;
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.json["user"], json!(["This field is required."]));
}

#[tokio::test]
async fn concurrent_duplicate_grants_make_one() {
    let w = World::new().await;
    let (bob, _) = w.user("bob").await;
    let path = w.project_path();
    let answers = join_all((0..20).map(|_| w.grant(&w.api.admin_token, &path, &bob, "PROJECT.ADMIN"))).await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    let duplicates = answers
        .iter()
        .filter(|a| a.json == json!({"non_field_errors": ["User has already the same role in this scope."]}))
        .count();
    assert_eq!((created, duplicates), (1, 19), "{answers:?}");
    let listed = get(
        &w.api,
        &w.api.admin_token,
        &format!("{}list_users/", w.project_path()),
    )
    .await;
    assert_eq!(
        (
            listed.header("x-result-count"),
            listed.json.as_array().unwrap().len()
        ),
        (Some("1"), 1)
    );
    let role = get(
        &w.api,
        &w.api.admin_token,
        "/api/roles/85ae032608494d65a02605e5644767f3/",
    )
    .await;
    assert_eq!(role.json["users_count"], 1);
}

#[tokio::test]
async fn a_role_deleted_while_granted_is_never_granted() {
    let w = World::new().await;
    let admin = w.api.admin_token.clone();
    let role = post(
        &w.api,
        &admin,
        "/api/roles/",
        json!({"name": "PROJECT.TEMP", "content_type": "project", "permissions": []}),
    )
    .await;
    let role_path = format!("/api/roles/{}/", role.json["uuid"].as_str().unwrap());
    let mut users = Vec::new();
    for i in 0..20 {
        users.push(w.user(&format!("u{i}")).await.0);
    }
    let path = w.project_path();
    let grants = join_all(users.iter().map(|u| w.grant(&admin, &path, u, "PROJECT.TEMP")));
    let (grants, delete) = tokio::join!(grants, w.api.call("DELETE", &role_path, Some(&admin), None));
    integration_tests::assert_race(&grants, &[201, 400], "grants racing the role's delete");
    integration_tests::assert_race(std::slice::from_ref(&delete), &[204, 400], "the delete");
    let granted = grants.iter().filter(|a| a.status == 201).count();
    let listed = get(
        &w.api,
        &admin,
        &format!("{}list_users/?role=PROJECT.TEMP&page_size=100", w.project_path()),
    )
    .await;
    if delete.status == 204 {
        assert_eq!(get(&w.api, &admin, &role_path).await.status, 404);
        assert_eq!(
            listed.json.as_array().unwrap().len(),
            0,
            "no grant of a deleted role may exist"
        );
    } else {
        assert_eq!(delete.json, json!(["Role is still used."]));
        assert!(granted > 0);
        assert_eq!(get(&w.api, &admin, &role_path).await.json["users_count"], granted);
    }
    let members = get(
        &w.api,
        &admin,
        &format!("{}list_users/?page_size=100", w.project_path()),
    )
    .await;
    assert_eq!(members.json.as_array().unwrap().len(), granted);
}

#[tokio::test]
async fn every_grant_change_is_audited() {
    let w = World::new().await;
    let admin = w.api.admin_token.clone();
    let (bob, _) = w.user("bob").await;
    let path = w.project_path();
    post(
        &w.api,
        &admin,
        &format!("{path}add_user/"),
        json!({"user": bob, "role": "PROJECT.ADMIN"}),
    )
    .await;
    post(
        &w.api,
        &admin,
        &format!("{path}update_user/"),
        json!({"user": bob, "role": "PROJECT.ADMIN", "expiration_time": "2035-01-01"}),
    )
    .await;
    post(
        &w.api,
        &admin,
        &format!("{path}delete_user/"),
        json!({"user": bob, "role": "PROJECT.ADMIN"}),
    )
    .await;
    let store = w.api.store();
    let events = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", s(format!("AUDIT#PROJECT#{}", w.project)))
        .send()
        .await
        .unwrap();
    let mut kinds: Vec<String> = events
        .items()
        .iter()
        .map(|i| i["event_type"].as_s().unwrap().clone())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["project_created", "role_granted", "role_revoked", "role_updated"]
    );
    let granted = events
        .items()
        .iter()
        .find(|i| i["event_type"].as_s().unwrap() == "role_granted")
        .unwrap();
    assert_eq!(granted["actor_username"].as_s().unwrap(), "admin");
}

#[tokio::test]
async fn a_disabled_role_still_honours_existing_grants_but_grants_no_more() {
    let w = World::new().await;
    let admin = w.api.admin_token.clone();
    let (bob, bob_token) = w.user("bob").await;
    let (carol, _) = w.user("carol").await;
    w.grant(&admin, &w.project_path(), &bob, "PROJECT.MANAGER").await;
    let manager_role = "/api/roles/667a517eba64403e9b7472bb48c31e3a/";
    assert_eq!(
        w.api
            .call("POST", &format!("{manager_role}disable/"), Some(&admin), None)
            .await
            .status,
        200
    );
    let check = format!(
        "/api/permissions/check/?user={bob}&permission=PROJECT.UPDATE&scope_type=project&scope={}",
        w.project
    );
    let answer = get(&w.api, &bob_token, &check).await;
    assert_eq!(answer.json["allowed"], true, "{}", answer.text);
    assert_eq!(answer.json["granted_by"][0]["role"], "PROJECT.MANAGER");
    let refused = w
        .grant(&admin, &w.project_path(), &carol, "PROJECT.MANAGER")
        .await;
    assert_eq!(refused.json, json!({"non_field_errors": ["Role is not active."]}));
}
