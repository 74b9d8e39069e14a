//! Wire details of Waldur that operators' scripts depend on (issue "The rest of Waldur's
//! listings ..."): DRF-style answers for what no route serves, and the texts of the request flow.

use integration_tests::TestApi;
use serde_json::json;

#[tokio::test]
async fn what_no_route_serves_answers_drf_style() {
    let api = TestApi::new().await;
    let token = Some(api.admin_token.as_str());
    let cases = [
        ("POST", "/api/users/me/", 405, Some("GET, HEAD")),
        ("DELETE", "/api/roles/", 405, Some("GET, HEAD, POST")),
        ("GET", "/api/nothing-here/", 404, None),
        ("GET", "/api/users", 404, None),
        ("PUT", "/", 404, None),
    ];
    for (method, path, status, allow) in cases {
        let answer = api.call(method, path, token, None).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.text);
        let detail = match status {
            405 => format!("Method \"{method}\" not allowed."),
            _ => "Not found.".to_owned(),
        };
        assert_eq!(answer.json, json!({ "detail": detail }), "{method} {path}");
        if let Some(allow) = allow {
            let mut methods: Vec<&str> = answer.header("allow").unwrap_or_default().split(", ").collect();
            methods.sort_unstable();
            assert_eq!(methods.join(", "), allow, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn a_customer_invitation_lists_its_customers_projects() {
    let api = &TestApi::new().await;
    let admin = Some(api.admin_token.as_str());
    let (customer, first) = api.customer_with_project("Org", "First").await;
    let body = json!({"name": "Second", "customer": customer["url"]});
    let second = api.call("POST", "/api/projects/", admin, Some(body)).await;
    let (_, other) = api.user("other", false, false).await;
    let invite = |scope: &serde_json::Value, role: &str| {
        let body = json!({"scope": scope, "role": role});
        async move {
            let answer = api
                .call("POST", "/api/user-group-invitations/", admin, Some(body))
                .await;
            assert_eq!(answer.status, 201, "{}", answer.text);
            answer.json["uuid"].as_str().unwrap().to_owned()
        }
    };
    let offer = invite(&customer["url"], "afab8022f4df457fba97346cd4c6a4a1").await;
    let path = format!("/api/user-group-invitations/{offer}/projects/?page_size=1");
    let page = api.call("GET", &path, Some(&other), None).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.header("x-result-count"), Some("2"));
    assert_eq!(
        page.json,
        json!([{"uuid": first["uuid"], "url": first["url"]}]),
        "the customer's projects, oldest first"
    );
    let rest = api
        .call("GET", &format!("{}&page=2", path), Some(&other), None)
        .await;
    assert_eq!(rest.json[0]["uuid"], second.json["uuid"]);
    let project_offer = invite(&first["url"], "9c9547bad0d742adafd4d54ef992e605").await;
    let none = api
        .call(
            "GET",
            &format!("/api/user-group-invitations/{project_offer}/projects/"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!((none.status, none.text.as_str()), (404, ""));
}

#[tokio::test]
async fn the_request_flow_answers_the_2025_texts() {
    let api = &TestApi::new().await;
    let admin = Some(api.admin_token.as_str());
    let (_, project) = api.customer_with_project("Org", "P").await;
    let (_, bob) = api.user("bob", false, false).await;
    let (_, carol) = api.user("carol", false, false).await;
    let mut offers = Vec::new();
    for role in [
        "9c9547bad0d742adafd4d54ef992e605",
        "85ae032608494d65a02605e5644767f3",
    ] {
        let body = json!({"scope": project["url"], "role": role});
        let answer = api
            .call("POST", "/api/user-group-invitations/", admin, Some(body))
            .await;
        offers.push(answer.json["uuid"].as_str().unwrap().to_owned());
    }
    let submit = |offer: &str, token: &str| {
        let path = format!("/api/user-group-invitations/{offer}/submit_request/");
        let token = token.to_owned();
        async move { api.call("POST", &path, Some(&token), Some(json!({}))).await }
    };
    let first = submit(&offers[0], &bob).await;
    assert_eq!(first.status, 200, "{}", first.text);
    for offer in &offers {
        let again = submit(offer, &bob).await;
        assert_eq!(
            (again.status, &again.json),
            (400, &json!(["Permission request already exists for this scope."]))
        );
    }
    let cancel = format!(
        "/api/user-permission-requests/{}/cancel_request/",
        first.json["uuid"].as_str().unwrap()
    );
    let unseen = api.call("POST", &cancel, Some(&carol), None).await;
    assert_eq!(unseen.status, 404, "a request carol cannot see: {}", unseen.text);
    // The project's manager sees the request but may not cancel it for the requester.
    let manager = shared::users::find_by_username(api.store(), "carol")
        .await
        .unwrap()
        .unwrap();
    let project_path = format!("/api/projects/{}/", project["uuid"].as_str().unwrap());
    api.grant(&project_path, &manager.uuid, "PROJECT.MANAGER").await;
    let by_manager = api.call("POST", &cancel, Some(&carol), None).await;
    assert_eq!(
        (by_manager.status, &by_manager.json),
        (
            403,
            &json!({"detail": "You can only cancel your own permission requests."})
        )
    );
    assert_eq!(
        api.call("POST", &cancel, admin, None).await.status,
        200,
        "staff may"
    );
    let twice = api.call("POST", &cancel, Some(&bob), None).await;
    assert_eq!(
        (twice.status, &twice.json),
        (400, &json!(["Only pending or draft requests can be canceled."]))
    );
    assert_eq!(
        submit(&offers[1], &bob).await.status,
        200,
        "a canceled request frees the scope"
    );
}

#[tokio::test]
async fn users_carry_their_permissions_as_user_permission_rows() {
    let api = &TestApi::new().await;
    let (customer, project) = api.customer_with_project("Org", "P").await;
    let (bob, _) = api.user("bob", false, false).await;
    let customer_path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
    let project_path = format!("/api/projects/{}/", project["uuid"].as_str().unwrap());
    api.grant(&customer_path, &bob.uuid, "CUSTOMER.SUPPORT").await;
    api.grant(&project_path, &bob.uuid, "PROJECT.ADMIN").await;
    let admin = Some(api.admin_token.as_str());
    let path = format!(
        "/api/users/{}/?field=permissions&field=username&field=bogus",
        bob.uuid
    );
    let detail = api.call("GET", &path, admin, None).await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    let keys: Vec<&String> = detail.json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["permissions", "username"],
        "only the valid fields, as asked"
    );
    let rows = detail.json["permissions"].as_array().unwrap();
    let listed = api
        .call(
            "GET",
            &format!("/api/user-permissions/?user={}", bob.uuid),
            admin,
            None,
        )
        .await;
    let by_uuid = |rows: &[serde_json::Value]| {
        let mut rows = rows.to_vec();
        rows.sort_by_key(|row| row["uuid"].as_str().unwrap_or_default().to_owned());
        rows
    };
    assert_eq!(
        by_uuid(rows),
        by_uuid(listed.json.as_array().unwrap()),
        "the rows of /api/user-permissions/"
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["role_name"], "CUSTOMER.SUPPORT");
    assert!(
        rows[0].get("customer_uuid").is_none(),
        "no customer keys on a customer row"
    );
    assert_eq!(rows[1]["customer_name"], "Org");
    assert_eq!(rows[1]["created_by_username"], "admin");
    let all = api
        .call(
            "GET",
            &format!("/api/users/{}/?field=bogus", bob.uuid),
            admin,
            None,
        )
        .await;
    assert!(
        all.json.get("permissions").is_some() && all.json.get("email").is_some(),
        "no valid field: all"
    );
    let list = api
        .call("GET", "/api/users/?field=permissions&username=bob", admin, None)
        .await;
    assert_eq!(&list.json[0]["permissions"], &detail.json["permissions"]);
}

#[tokio::test]
async fn the_customer_member_overview() {
    let api = &TestApi::new().await;
    let admin = Some(api.admin_token.as_str());
    let (customer, project) = api.customer_with_project("Org", "Lab").await;
    let customer_path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
    let project_path = format!("/api/projects/{}/", project["uuid"].as_str().unwrap());
    let (owner, owner_token) = api.user("olga", false, false).await;
    let (both, _) = api.user("bert", false, false).await;
    let (member, member_token) = api.user("mia", false, false).await;
    let (gone, _) = api.user("gone", false, false).await;
    api.grant(&customer_path, &owner.uuid, "CUSTOMER.OWNER").await;
    api.grant(&customer_path, &both.uuid, "CUSTOMER.SUPPORT").await;
    api.grant(&project_path, &both.uuid, "PROJECT.ADMIN").await;
    api.grant(&project_path, &member.uuid, "PROJECT.MEMBER").await;
    api.grant(&project_path, &gone.uuid, "PROJECT.MEMBER").await;
    let path = format!("/api/users/{}/", gone.uuid);
    api.call("PATCH", &path, admin, Some(json!({"is_active": false})))
        .await;

    let overview = format!("{customer_path}users/");
    let all = api.call("GET", &overview, Some(&owner_token), None).await;
    assert_eq!(all.status, 200, "{}", all.text);
    let names: Vec<&str> = all
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bert", "mia", "olga"], "active users, each once");
    let bert = &all.json[0];
    assert_eq!(
        (&bert["role"], &bert["role_name"]),
        (&json!("support"), &json!("CUSTOMER.SUPPORT"))
    );
    assert_eq!(bert["projects"][0]["name"], "Lab");
    assert_eq!(bert["projects"][0]["role"], "admin");
    assert_eq!(
        all.json[1]["role"],
        serde_json::Value::Null,
        "mia holds no customer role"
    );

    let filtered = api
        .call(
            "GET",
            &format!(
                "{overview}?project_role=PROJECT.MEMBER&organization_role=CUSTOMER.OWNER&o=-concatenated_name"
            ),
            admin,
            None,
        )
        .await;
    let names: Vec<&str> = filtered
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["olga", "mia"], "OR-ed role filters, descending");
    let refused = api.call("GET", &overview, Some(&member_token), None).await;
    assert_eq!(
        (refused.status, refused.text.as_str()),
        (403, ""),
        "a member: 403, empty"
    );
    let (_, stranger) = api.user("stranger", false, false).await;
    assert_eq!(
        api.call("GET", &overview, Some(&stranger), None).await.status,
        404
    );
}

#[tokio::test]
async fn users_count_counts_each_user_of_a_customer_once_under_concurrent_changes() {
    let api = &TestApi::new().await;
    let admin = Some(api.admin_token.as_str());
    let (customer, first) = api.customer_with_project("Org", "P1").await;
    let body = json!({"name": "P2", "customer": customer["url"]});
    let second = api.call("POST", "/api/projects/", admin, Some(body)).await.json;
    let customer_path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
    let scopes = [
        (customer_path.clone(), "CUSTOMER.SUPPORT"),
        (
            format!("/api/projects/{}/", first["uuid"].as_str().unwrap()),
            "PROJECT.MEMBER",
        ),
        (
            format!("/api/projects/{}/", second["uuid"].as_str().unwrap()),
            "PROJECT.ADMIN",
        ),
    ];
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(api.user(&format!("u{i}"), false, false).await.0);
    }
    // The last four already hold P1's role, which is revoked during the race.
    for user in &users[4..] {
        api.grant(&scopes[1].0, &user.uuid, scopes[1].1).await;
    }
    let mut changes = Vec::new();
    for user in &users[..4] {
        for (path, role) in &scopes {
            changes.push((
                format!("{path}add_user/"),
                json!({"user": user.uuid, "role": role}),
            ));
        }
    }
    for user in &users[4..] {
        changes.push((
            format!("{}delete_user/", scopes[1].0),
            json!({"user": user.uuid, "role": scopes[1].1}),
        ));
        changes.push((
            format!("{}add_user/", scopes[2].0),
            json!({"user": user.uuid, "role": scopes[2].1}),
        ));
    }
    assert!(changes.len() >= 20);
    let answers = futures::future::join_all(
        changes
            .into_iter()
            .map(|(path, body)| async move { api.call("POST", &path, admin, Some(body)).await }),
    )
    .await;
    integration_tests::assert_race(&answers, &[200, 201], "grants and revocations of one customer");
    let read = api.call("GET", &customer_path, admin, None).await;
    assert_eq!(
        read.json["users_count"], 8,
        "eight users, each counted once: {}",
        read.text
    );
    integration_tests::consistency::assert_consistent(api).await;
    // The last role of a user in the customer goes: the user leaves the count.
    let body = json!({"user": users[7].uuid, "role": scopes[2].1});
    api.call("POST", &format!("{}delete_user/", scopes[2].0), admin, Some(body))
        .await;
    let read = api.call("GET", &customer_path, admin, None).await;
    assert_eq!(read.json["users_count"], 7);
}

#[tokio::test]
async fn user_permissions_keep_the_history_of_revoked_and_expired_grants() {
    let api = &TestApi::new().await;
    let admin = Some(api.admin_token.as_str());
    let (customer, project) = api.customer_with_project("Org", "P").await;
    let customer_path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
    let project_path = format!("/api/projects/{}/", project["uuid"].as_str().unwrap());
    let (bob, _) = api.user("bob", false, false).await;
    let (owner, owner_token) = api.user("olga", false, false).await;
    api.grant(&customer_path, &owner.uuid, "CUSTOMER.OWNER").await;
    api.grant(&project_path, &bob.uuid, "PROJECT.MEMBER").await;
    api.grant(&project_path, &bob.uuid, "PROJECT.ADMIN").await;
    let revoke = json!({"user": bob.uuid, "role": "PROJECT.MEMBER"});
    let answer = api
        .call(
            "POST",
            &format!("{project_path}delete_user/"),
            admin,
            Some(revoke),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    let listed = |query: String, token: String| async move {
        api.call(
            "GET",
            &format!("/api/user-permissions/{query}"),
            Some(&token),
            None,
        )
        .await
    };
    let staff = || api.admin_token.clone();
    let all = listed(format!("?user={}", bob.uuid), staff()).await;
    let rows = all.json.as_array().unwrap();
    let summary: Vec<(&str, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["role_name"].as_str().unwrap(),
                r["is_active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("PROJECT.MEMBER", false), ("PROJECT.ADMIN", true)],
        "oldest first, with the revoked one"
    );
    assert_eq!(
        rows[0]["created_by_username"], "admin",
        "the history keeps who granted"
    );
    let history = listed(format!("?user={}&is_active=false", bob.uuid), staff()).await;
    assert_eq!(history.json.as_array().unwrap().len(), 1);
    let pk = rows[0]["uuid"].as_str().unwrap();
    let one = api
        .call("GET", &format!("/api/user-permissions/{pk}/"), admin, None)
        .await;
    assert_eq!(
        (one.status, &one.json["is_active"]),
        (200, &json!(false)),
        "{}",
        one.text
    );
    let seed = api
        .call("GET", &format!("/api/project-permissions/{pk}/"), admin, None)
        .await;
    assert_eq!(seed.status, 404, "the seed listings show live grants only");
    let seed_list = api
        .call(
            "GET",
            &format!("/api/project-permissions/?user={}", bob.uuid),
            admin,
            None,
        )
        .await;
    assert_eq!(seed_list.json.as_array().unwrap().len(), 1);

    // The owner sees the history of her customer; once bob is inactive, none of his rows.
    let seen = listed(format!("?user={}", bob.uuid), owner_token.clone()).await;
    assert_eq!(seen.json.as_array().unwrap().len(), 2, "{}", seen.text);
    let path = format!("/api/users/{}/", bob.uuid);
    api.call("PATCH", &path, admin, Some(json!({"is_active": false})))
        .await;
    let seen = listed(format!("?user={}", bob.uuid), owner_token.clone()).await;
    assert_eq!(seen.json, json!([]));
    let by_staff = listed(format!("?user={}", bob.uuid), staff()).await;
    assert_eq!(
        by_staff.json.as_array().unwrap().len(),
        2,
        "staff see inactive users' rows"
    );
    integration_tests::consistency::assert_consistent(api).await;
}
