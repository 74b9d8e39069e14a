//! The permission listings of seed 001 and `/api/user-permissions/`.

use integration_tests::TestApi;
use serde_json::{Value, json};

struct Org {
    api: TestApi,
    customer: String,
    project: String,
    other_customer: String,
}

async fn org() -> Org {
    let api = TestApi::new().await;
    let admin = api.admin_token.clone();
    let mut customers = Vec::new();
    for name in ["Org", "Other"] {
        let created = api
            .call(
                "POST",
                "/api/customers/",
                Some(&admin),
                Some(json!({"name": name})),
            )
            .await;
        customers.push(created.json);
    }
    let project = api
        .call(
            "POST",
            "/api/projects/",
            Some(&admin),
            Some(json!({"name": "Proj", "customer": customers[0]["url"]})),
        )
        .await
        .json;
    Org {
        customer: customers[0]["uuid"].as_str().unwrap().to_owned(),
        other_customer: customers[1]["uuid"].as_str().unwrap().to_owned(),
        project: project["uuid"].as_str().unwrap().to_owned(),
        api,
    }
}

impl Org {
    async fn grant(&self, collection: &str, scope: &str, user: &str, role: &str) {
        let body = json!({"user": user, "role": role});
        let path = format!("/api/{collection}/{scope}/add_user/");
        let answer = self
            .api
            .call("POST", &path, Some(&self.api.admin_token), Some(body))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
    }
}

fn usernames(rows: &Value) -> Vec<&str> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_username"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn customer_and_project_permission_listings() {
    let o = org().await;
    let (alice, alice_token) = o.api.user("alice", false, false).await;
    let (bob, bob_token) = o.api.user("bob", false, false).await;
    let (carol, carol_token) = o.api.user("carol", false, false).await;
    o.grant(
        "customers",
        &o.customer,
        &alice.uuid.to_string(),
        "CUSTOMER.OWNER",
    )
    .await;
    o.grant("projects", &o.project, &bob.uuid.to_string(), "PROJECT.ADMIN")
        .await;
    o.grant(
        "customers",
        &o.other_customer,
        &carol.uuid.to_string(),
        "CUSTOMER.OWNER",
    )
    .await;
    let admin = o.api.admin_token.clone();

    let all = o
        .api
        .call(
            "GET",
            "/api/customer-permissions/?o=user__username",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(usernames(&all.json), ["alice", "carol"]);
    let row = &all.json[0];
    assert_eq!(row["role"], "owner");
    assert_eq!(row["customer_name"], "Org");
    assert_eq!(row["customer_uuid"], o.customer.as_str());
    assert_eq!(row["user_uuid"], alice.uuid.to_string());
    assert_eq!(
        row["url"],
        format!(
            "http://testserver/api/customer-permissions/{}/",
            row["pk"].as_str().unwrap()
        )
    );
    let one = o
        .api
        .call(
            "GET",
            &format!("/api/customer-permissions/{}/", row["pk"].as_str().unwrap()),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(one.json, *row);

    let by_customer = format!("/api/customer-permissions/?customer={}", o.other_customer);
    assert_eq!(
        usernames(&o.api.call("GET", &by_customer, Some(&admin), None).await.json),
        ["carol"]
    );
    let by_name = o
        .api
        .call(
            "GET",
            "/api/customer-permissions/?full_name=ALI",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(usernames(&by_name.json), ["alice"]);
    let descending = o
        .api
        .call(
            "GET",
            "/api/customer-permissions/?o=-user__username",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(usernames(&descending.json), ["carol", "alice"]);
    let bogus = o
        .api
        .call("GET", "/api/customer-permissions/?o=bogus", Some(&admin), None)
        .await;
    assert_eq!(bogus.status, 400);

    let projects = o
        .api
        .call("GET", "/api/project-permissions/", Some(&alice_token), None)
        .await;
    assert_eq!(usernames(&projects.json), ["bob"]);
    assert_eq!(projects.json[0]["project_name"], "Proj");
    assert_eq!(projects.json[0]["role"], "admin");

    // Each sees the grants of the scopes they see: bob sees his customer's owner, not carol.
    let seen_by_bob = o
        .api
        .call("GET", "/api/customer-permissions/", Some(&bob_token), None)
        .await;
    assert_eq!(usernames(&seen_by_bob.json), ["alice"]);
    let seen_by_carol = o
        .api
        .call("GET", "/api/project-permissions/", Some(&carol_token), None)
        .await;
    assert_eq!(seen_by_carol.json, json!([]));
    let hidden = format!(
        "/api/customer-permissions/{}/",
        all.json[0]["pk"].as_str().unwrap()
    );
    assert_eq!(
        o.api.call("GET", &hidden, Some(&carol_token), None).await.status,
        404
    );
    assert_eq!(
        o.api
            .call(
                "POST",
                "/api/customer-permissions/",
                Some(&admin),
                Some(json!({}))
            )
            .await
            .status,
        405,
        "a read-only listing (DRF's answer, from the $default route)"
    );
}

#[tokio::test]
async fn user_permissions_listing() {
    let o = org().await;
    let (alice, alice_token) = o.api.user("alice", false, false).await;
    o.grant(
        "customers",
        &o.customer,
        &alice.uuid.to_string(),
        "CUSTOMER.OWNER",
    )
    .await;
    o.grant("projects", &o.project, &alice.uuid.to_string(), "PROJECT.MANAGER")
        .await;
    let rows = o
        .api
        .call("GET", "/api/user-permissions/?o=role", Some(&alice_token), None)
        .await;
    assert_eq!(rows.header("x-result-count"), Some("2"));
    let customer_row = &rows.json[0];
    assert_eq!(customer_row["role_name"], "CUSTOMER.OWNER");
    assert_eq!(customer_row["scope_type"], "customer");
    assert_eq!(customer_row["scope_name"], "Org");
    assert!(
        customer_row.get("customer_uuid").is_none(),
        "customer keys only on project rows"
    );
    assert_eq!(customer_row["created_by_username"], "admin");
    let project_row = &rows.json[1];
    assert_eq!(
        (
            project_row["scope_name"].as_str(),
            project_row["customer_name"].as_str()
        ),
        (Some("Proj"), Some("Org"))
    );
    let only_projects = o
        .api
        .call(
            "GET",
            "/api/user-permissions/?scope_type=project",
            Some(&alice_token),
            None,
        )
        .await;
    assert_eq!(only_projects.json.as_array().unwrap().len(), 1);
    let by_role = o
        .api
        .call(
            "GET",
            "/api/user-permissions/?role_name=PROJECT.MANAGER",
            Some(&alice_token),
            None,
        )
        .await;
    assert_eq!(by_role.json[0]["scope_uuid"], o.project.as_str());
    let anonymous = o.api.call("GET", "/api/user-permissions/", None, None).await;
    assert_eq!(anonymous.status, 401);
}
