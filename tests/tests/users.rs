//! Users, tokens and password login against DynamoDB Local.

use integration_tests::TestApi;
use serde_json::{Value, json};

async fn with_org(api: &TestApi) -> (String, String) {
    let (customer, project) = api.customer_with_project("Admin org", "a project").await;
    (
        customer["uuid"].as_str().unwrap().to_owned(),
        project["uuid"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn password_login_answers_the_users_token() {
    let api = TestApi::new().await;
    let (alice, old_token) = api.user("alice", false, false).await;
    shared::users::set_password(
        api.store(),
        None,
        &alice,
        "correct horse battery",
        &shared::time::now(),
    )
    .await
    .unwrap();
    let login = |username: &str, password: &str| {
        let body = json!({"username": username, "password": password});
        api.call("POST", "/api-auth/password/", None, Some(body))
    };
    let answer = login("alice", "correct horse battery").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let token = answer.json["token"].as_str().unwrap().to_owned();
    assert_eq!(
        token, old_token,
        "the current token, so other clients keep working"
    );
    assert_eq!(
        api.call("GET", "/api/users/me/", Some(&token), None).await.json["username"],
        "alice"
    );

    for (username, password) in [("alice", "wrong password"), ("nobody", "correct horse battery")] {
        let refused = login(username, password).await;
        assert_eq!(
            (refused.status, &refused.json),
            (401, &json!({"detail": "Invalid username/password."}))
        );
    }
    let missing = api
        .call("POST", "/api-auth/password/", None, Some(json!({})))
        .await;
    assert_eq!(
        (missing.status, &missing.json),
        (
            400,
            &json!({"username": ["This field is required."], "password": ["This field is required."]})
        )
    );
}

#[tokio::test]
async fn field_selection_shows_permission_rows() {
    let api = TestApi::new().await;
    let (customer, project) = with_org(&api).await;
    let admin_uuid = api.admin.uuid;
    api.grant(
        &format!("/api/customers/{customer}/"),
        &admin_uuid,
        "CUSTOMER.OWNER",
    )
    .await;
    api.grant(&format!("/api/projects/{project}/"), &admin_uuid, "PROJECT.ADMIN")
        .await;
    let path = "/api/users/?username=admin&field=uuid&field=customer_permissions&field=project_permissions";
    let answer = api.call("GET", path, Some(&api.admin_token), None).await;
    assert_eq!(answer.header("x-result-count"), Some("1"));
    let user = answer.json[0].as_object().unwrap();
    assert_eq!(
        user.keys().collect::<Vec<_>>(),
        ["uuid", "customer_permissions", "project_permissions"]
    );
    let customer_row = &user["customer_permissions"][0];
    let pk = customer_row["pk"].as_str().unwrap();
    assert_eq!(
        customer_row,
        &json!({
            "customer_abbreviation": "",
            "customer_name": "Admin org",
            "customer_native_name": "",
            "customer_uuid": customer,
            "pk": pk,
            "role": "owner",
            "url": format!("http://testserver/api/customer-permissions/{pk}/"),
        })
    );
    let project_row = &user["project_permissions"][0];
    assert_eq!(project_row["customer_name"], "Admin org");
    assert_eq!(project_row["project_name"], "a project");
    assert_eq!(project_row["project_uuid"], project.as_str());
    assert_eq!(project_row["role"], "admin");
}

#[tokio::test]
async fn users_see_themselves_and_their_colleagues() {
    let api = TestApi::new().await;
    let (customer, project) = with_org(&api).await;
    let (alice, alice_token) = api.user("alice", false, false).await;
    let (bob, _) = api.user("bob", false, false).await;
    let (carol, carol_token) = api.user("carol", false, false).await;
    api.grant(
        &format!("/api/projects/{project}/"),
        &alice.uuid,
        "PROJECT.MEMBER",
    )
    .await;
    api.grant(
        &format!("/api/customers/{customer}/"),
        &bob.uuid,
        "CUSTOMER.OWNER",
    )
    .await;

    let seen = api.call("GET", "/api/users/", Some(&alice_token), None).await;
    let names: Vec<&str> = seen
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["alice", "bob"],
        "a project member sees the customer's owner, not outsiders or staff"
    );
    assert!(
        seen.json[0].get("is_staff").is_none(),
        "flags are for staff and support"
    );
    assert_eq!(
        api.call(
            "GET",
            &format!("/api/users/{}/", carol.uuid),
            Some(&alice_token),
            None
        )
        .await
        .status,
        404
    );
    let alone = api.call("GET", "/api/users/", Some(&carol_token), None).await;
    assert_eq!(alone.json.as_array().unwrap().len(), 1);

    let everyone = api
        .call("GET", "/api/users/?is_active=true", Some(&api.admin_token), None)
        .await;
    assert_eq!(everyone.header("x-result-count"), Some("4"));
    assert_eq!(everyone.json[0]["is_staff"], true);
    let filtered = api
        .call("GET", "/api/users/?full_name=ALICE", Some(&api.admin_token), None)
        .await;
    assert_eq!(filtered.json.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn creating_and_editing_users() {
    let api = TestApi::new().await;
    let admin = api.admin_token.clone();
    let (alice, alice_token) = api.user("alice", false, false).await;
    let body = json!({"username": "dave", "email": "dave@example.com", "first_name": "Dave", "password": "long enough"});
    let created = api
        .call("POST", "/api/users/", Some(&admin), Some(body.clone()))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["full_name"], "Dave");
    let duplicate = api.call("POST", "/api/users/", Some(&admin), Some(body)).await;
    assert_eq!(
        duplicate.json,
        json!({"username": ["A user with that username already exists."]})
    );
    let by_user = api
        .call(
            "POST",
            "/api/users/",
            Some(&alice_token),
            Some(json!({"username": "eve"})),
        )
        .await;
    assert_eq!(by_user.status, 403);
    let login = api
        .call(
            "POST",
            "/api-auth/password/",
            None,
            Some(json!({"username": "dave", "password": "long enough"})),
        )
        .await;
    assert_eq!(login.status, 200);

    // A user edits their own names; flags are not theirs to set.
    let own = format!("/api/users/{}/", alice.uuid);
    let edited = api
        .call(
            "PATCH",
            &own,
            Some(&alice_token),
            Some(json!({"last_name": "Liddell", "is_staff": true})),
        )
        .await;
    assert_eq!(
        (edited.status, edited.json["full_name"].as_str()),
        (200, Some("alice Liddell"))
    );
    let roles = api.call("GET", "/api/roles/", Some(&alice_token), None).await;
    assert!(roles.json[0].get("users_count").is_none(), "still not staff");
    let new_password = json!({"password": "a new secret"});
    assert_eq!(
        api.call("PATCH", &own, Some(&alice_token), Some(new_password))
            .await
            .status,
        200
    );
    let login = json!({"username": "alice", "password": "a new secret"});
    let fresh = api.call("POST", "/api-auth/password/", None, Some(login)).await;
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    let alice_token = fresh.json["token"].as_str().unwrap().to_owned();
    let dave = format!("/api/users/{}/", created.json["uuid"].as_str().unwrap());
    assert_eq!(
        api.call(
            "PATCH",
            &dave,
            Some(&alice_token),
            Some(json!({"first_name": "X"}))
        )
        .await
        .status,
        404
    );

    // Staff makes alice support: her existing token carries the new flag at once.
    let promoted = api
        .call("PATCH", &own, Some(&admin), Some(json!({"is_support": true})))
        .await;
    assert_eq!(promoted.json["is_support"], true);
    let roles = api.call("GET", "/api/roles/", Some(&alice_token), None).await;
    assert!(roles.json[0].get("users_count").is_some());
    let bad = api
        .call(
            "PATCH",
            &own,
            Some(&admin),
            Some(json!({"email": "nope", "is_active": "yes"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json["email"], json!(["Enter a valid email address."]));
}

#[tokio::test]
async fn renamed_users_are_renamed_in_member_listings() {
    let api = TestApi::new().await;
    let (customer, _) = with_org(&api).await;
    let (alice, alice_token) = api.user("alice", false, false).await;
    let scope = format!("/api/customers/{customer}/");
    api.grant(&scope, &alice.uuid, "CUSTOMER.SUPPORT").await;
    let renamed = api
        .call(
            "PATCH",
            &format!("/api/users/{}/", alice.uuid),
            Some(&alice_token),
            Some(json!({"username": "alicia"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let members = api
        .call(
            "GET",
            &format!("{scope}list_users/"),
            Some(&api.admin_token),
            None,
        )
        .await;
    assert_eq!(members.json[0]["user_username"], "alicia");
    let body = json!({"username": "alice", "email": "another.alice@example.com"});
    let reused = api
        .call("POST", "/api/users/", Some(&api.admin_token), Some(body))
        .await;
    assert_eq!(
        reused.status, 201,
        "the old username is free again: {}",
        reused.text
    );
}

#[tokio::test]
async fn refreshing_a_token() {
    let api = TestApi::new().await;
    let (alice, alice_token) = api.user("alice", false, false).await;
    let (bob, bob_token) = api.user("bob", false, false).await;
    let path = format!("/api/users/{}/refresh_token/", alice.uuid);
    assert_eq!(api.call("POST", &path, Some(&bob_token), None).await.status, 404);
    let fresh = api.call("POST", &path, Some(&alice_token), None).await;
    let token = fresh.json["token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call("GET", "/api/users/me/", Some(&alice_token), None)
            .await
            .status,
        401
    );
    assert_eq!(
        api.call("GET", "/api/users/me/", Some(&token), None).await.json["uuid"],
        alice.uuid.to_string()
    );
    let by_staff = api
        .call(
            "POST",
            &format!("/api/users/{}/refresh_token/", bob.uuid),
            Some(&api.admin_token),
            None,
        )
        .await;
    assert!(
        matches!(&by_staff.json["token"], Value::String(t) if t.len() == 72 && t.starts_with(&bob.uuid.to_string()))
    );
    assert_eq!(
        api.call("GET", "/api/users/me/", Some(&bob_token), None)
            .await
            .status,
        401
    );
}

/// Staff pages of `/api/users/` are read on their own (by username), and agree with the whole
/// list: counts, order, the last page and the page past it, with and without filters.
#[tokio::test]
async fn staff_pages_of_users_agree_with_the_whole_list() {
    let api = TestApi::new().await;
    for i in (0..24).rev() {
        api.user(&format!("user{i:02}"), false, false).await;
    }
    let admin = Some(api.admin_token.as_str());
    let all = api
        .call("GET", "/api/users/?page_size=100&email=example", admin, None)
        .await;
    let names = |answer: &integration_tests::Answer| -> Vec<String> {
        answer
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    let everyone = names(&all);
    assert_eq!(everyone.len(), 25, "24 users and admin");
    let mut sorted = everyone.clone();
    sorted.sort();
    assert_eq!(everyone, sorted);
    let mut paged = Vec::new();
    for page in 1..=3 {
        let answer = api
            .call(
                "GET",
                &format!("/api/users/?page_size=10&page={page}"),
                admin,
                None,
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.header("x-result-count"), Some("25"));
        paged.extend(names(&answer));
    }
    assert_eq!(paged, everyone);
    let past = api
        .call("GET", "/api/users/?page_size=10&page=4", admin, None)
        .await;
    assert_eq!(
        (past.status, &past.json),
        (404, &json!({"detail": "Invalid page."}))
    );
    let whole = api.call("GET", "/api/users/?page_size=100", admin, None).await;
    assert_eq!(whole.header("x-result-count"), Some("25"));
    assert_eq!(names(&whole), everyone);
}
