//! DynamoDB round trips per operation, counted by an SDK interceptor. They are deterministic, so
//! the budgets are asserted here: a read costs authentication + authorization + its own read
//! (at most 3 requests), a change costs the reads that authorize it plus one write.
//! Run with `--nocapture` to print the table kept in bench/RESULTS.md.

use integration_tests::TestApi;
use serde_json::json;

struct Row {
    operation: &'static str,
    measured: usize,
    budget: usize,
}

#[tokio::test]
async fn round_trips_stay_within_budget() {
    let api = TestApi::new().await;
    let admin = api.admin_token.clone();
    let (owner, owner_token) = api.user("owner", false, false).await;
    let (customer, project) = api.customer_with_project("Org", "P").await;
    let customer_path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
    let project_uuid = project["uuid"].as_str().unwrap().to_owned();
    let project_path = format!("/api/projects/{project_uuid}/");
    api.grant(&customer_path, &owner.uuid, "CUSTOMER.OWNER").await;
    let mut members = Vec::new();
    for i in 0..30 {
        members.push(api.user(&format!("member{i}"), false, false).await.0);
    }
    // Warm this container's role cache, as a warm Lambda has it.
    api.call(
        "GET",
        &format!("{project_path}list_users/"),
        Some(&owner_token),
        None,
    )
    .await;

    let mut rows = Vec::new();
    let mut measure = async |operation: &'static str,
                             budget: usize,
                             method: &str,
                             path: String,
                             token: Option<&str>,
                             body| {
        let (answer, measured) = api.counted(method, &path, token, body).await;
        assert!(
            answer.status < 400,
            "{operation}: {} {}",
            answer.status,
            answer.text
        );
        rows.push(Row {
            operation,
            measured,
            budget,
        });
    };

    measure(
        "GET /api/roles/ (anonymous)",
        3,
        "GET",
        "/api/roles/".into(),
        None,
        None,
    )
    .await;
    measure(
        "GET /api/roles/ (token)",
        3,
        "GET",
        "/api/roles/".into(),
        Some(&admin),
        None,
    )
    .await;
    measure(
        "GET /api/roles/{uuid}/",
        3,
        "GET",
        "/api/roles/afab8022f4df457fba97346cd4c6a4a1/".into(),
        Some(&admin),
        None,
    )
    .await;
    let project_check = format!(
        "/api/permissions/check/?user={}&permission=PROJECT.UPDATE&scope_type=project&scope={project_uuid}",
        owner.uuid
    );
    measure(
        "GET /api/permissions/check/ (own)",
        3,
        "GET",
        project_check,
        Some(&owner_token),
        None,
    )
    .await;
    measure(
        "GET /api/customers/ (owner)",
        3,
        "GET",
        "/api/customers/".into(),
        Some(&owner_token),
        None,
    )
    .await;
    measure(
        "GET /api/projects/{uuid}/ (owner; + its customer's names)",
        4,
        "GET",
        project_path.clone(),
        Some(&owner_token),
        None,
    )
    .await;
    for (i, member) in members.iter().enumerate() {
        let body = json!({"user": member.uuid, "role": "PROJECT.MEMBER"});
        let label = if i == 0 {
            "POST add_user (owner: token, grants, scope, user + 1 write)"
        } else {
            ""
        };
        let path = format!("{project_path}add_user/");
        if i == 0 {
            measure(label, 5, "POST", path, Some(&owner_token), Some(body)).await;
        } else {
            assert_eq!(
                api.call("POST", &path, Some(&owner_token), Some(body))
                    .await
                    .status,
                201
            );
        }
    }
    measure(
        "GET list_users, page 1 of 30 members (owner)",
        3,
        "GET",
        format!("{project_path}list_users/"),
        Some(&owner_token),
        None,
    )
    .await;
    measure(
        "GET list_users, page 3 of 30 members (owner)",
        3,
        "GET",
        format!("{project_path}list_users/?page=3"),
        Some(&owner_token),
        None,
    )
    .await;
    let update = json!({"user": members[0].uuid, "role": "PROJECT.MEMBER", "expiration_time": "2040-01-01"});
    measure(
        "POST update_user (owner: + existing grant + 1 write)",
        6,
        "POST",
        format!("{project_path}update_user/"),
        Some(&owner_token),
        Some(update),
    )
    .await;
    let delete = json!({"user": members[0].uuid, "role": "PROJECT.MEMBER"});
    measure(
        "POST delete_user (owner)",
        6,
        "POST",
        format!("{project_path}delete_user/"),
        Some(&owner_token),
        Some(delete),
    )
    .await;

    let role = json!({"name": "PROJECT.X", "content_type": "project", "permissions": []});
    measure(
        "POST /api/roles/ (staff: token + 1 write)",
        2,
        "POST",
        "/api/roles/".into(),
        Some(&admin),
        Some(role),
    )
    .await;

    println!("| operation | DynamoDB requests | budget |\n| --- | --- | --- |");
    for row in &rows {
        println!("| {} | {} | {} |", row.operation, row.measured, row.budget);
    }
    for row in &rows {
        assert!(
            row.measured <= row.budget,
            "{} took {} requests, budget {}",
            row.operation,
            row.measured,
            row.budget
        );
    }
}

#[tokio::test]
async fn a_page_of_members_costs_the_same_whatever_the_member_count() {
    let mut costs = Vec::new();
    for member_count in [3, 60] {
        let api = TestApi::new().await;
        let admin = api.admin_token.clone();
        let customer = api
            .call(
                "POST",
                "/api/customers/",
                Some(&admin),
                Some(json!({"name": "Org"})),
            )
            .await
            .json;
        let path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
        for i in 0..member_count {
            let (user, _) = api.user(&format!("u{i}"), false, false).await;
            let body = json!({"user": user.uuid, "role": "CUSTOMER.READER"});
            assert_eq!(
                api.call("POST", &format!("{path}add_user/"), Some(&admin), Some(body))
                    .await
                    .status,
                201
            );
        }
        let (page, cost) = api
            .counted("GET", &format!("{path}list_users/"), Some(&admin), None)
            .await;
        assert_eq!(
            page.header("x-result-count"),
            Some(member_count.to_string().as_str())
        );
        costs.push(cost);
    }
    assert_eq!(
        costs[0], costs[1],
        "first page cost with 3 and 60 members: {costs:?}"
    );
}
