//! DynamoDB round trips per request, counted by an SDK interceptor, for every route of the
//! template (see `integration_tests::route_costs`). Counts are deterministic, so the budgets are
//! asserted here; `make bench` prints the same table into bench/RESULTS.md.

use integration_tests::TestApi;
use integration_tests::route_costs::{self, READ_BUDGET};
use serde_json::json;

#[tokio::test]
async fn every_route_stays_within_its_round_trip_budget() {
    let api = TestApi::new().await;
    let costs = route_costs::measure_every_route(&api).await;
    println!("{}", route_costs::table(&costs));

    let unmeasured = route_costs::unmeasured_routes(&api, &costs);
    assert!(
        unmeasured.is_empty(),
        "routes without a measured request: {unmeasured:?}"
    );
    for cost in &costs {
        if cost.method == "GET" || cost.method == "HEAD" {
            assert!(
                cost.read_budget <= READ_BUDGET,
                "{cost:?}: a read's budget is {READ_BUDGET}"
            );
            assert_eq!(cost.writes, 0, "{cost:?}: a read writes nothing");
        }
    }
    let over: Vec<_> = costs.iter().filter(|cost| !cost.within_allowance()).collect();
    assert!(over.is_empty(), "over budget: {over:#?}");
    // An exception that is no longer needed goes, so that the budget holds from then on.
    let stale: Vec<_> = costs
        .iter()
        .filter(|cost| cost.exception.is_some() && cost.within_budget())
        .map(|cost| format!("{} {}", cost.method, cost.route))
        .collect();
    assert!(
        stale.is_empty(),
        "these routes now meet the budget; remove their exceptions: {stale:?}"
    );
    let exceptions = route_costs::EXCEPTIONS.len();
    println!(
        "{} requests over {} routes; {} within the budget, {exceptions} known exceptions",
        costs.len(),
        costs
            .iter()
            .map(|c| (&c.method, &c.route))
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        costs.iter().filter(|c| c.within_budget()).count()
    );
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
            api.grant(&path, &user.uuid, "CUSTOMER.SUPPORT").await;
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

/// A scope's ended grants (history rows in its partition, after the members) cost a page of
/// its members nothing: one live member and 0 or 40 revoked grants read the same.
#[tokio::test]
async fn a_page_of_members_costs_the_same_whatever_the_history() {
    let mut costs = Vec::new();
    for revoked in [0, 40] {
        let api = TestApi::new().await;
        let admin = api.admin_token.clone();
        let (customer, _) = api.customer_with_project("Org", "P").await;
        let path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
        let (member, _) = api.user("member", false, false).await;
        api.grant(&path, &member.uuid, "CUSTOMER.OWNER").await;
        let (passer, _) = api.user("passer", false, false).await;
        for _ in 0..revoked {
            api.grant(&path, &passer.uuid, "CUSTOMER.SUPPORT").await;
            let body = json!({"user": passer.uuid, "role": "CUSTOMER.SUPPORT"});
            let answer = api
                .call("POST", &format!("{path}delete_user/"), Some(&admin), Some(body))
                .await;
            assert_eq!(answer.status, 200, "{}", answer.text);
        }
        let (page, cost) = api
            .counted("GET", &format!("{path}list_users/"), Some(&admin), None)
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(page.json.as_array().map(Vec::len), Some(1), "{}", page.text);
        costs.push(cost);
    }
    assert_eq!(costs[0], costs[1], "first page cost with 0 and 40 ended grants");
}

/// The owner of one customer with 1 and with 50 projects (each with a member and an open
/// invitation): page 1 of the lists that read the customer's own partitions (its projects among
/// them: one index partition in the list's order, counted by the customer) costs the same
/// requests. (The lists that read one partition per scope, and those of a member of many
/// customers, still grow: bench/RESULTS.md §3b.)
#[tokio::test]
async fn an_owners_pages_cost_the_same_whatever_the_project_count() {
    const LISTS: [&str; 6] = [
        "/api/customers/",
        "/api/projects/",
        "/api/customer-permissions/",
        "/api/customer-permissions-reviews/",
        "/api/user-permission-requests/",
        "/api/user-group-invitations/",
    ];
    let mut costs = Vec::new();
    for projects in [1, 50] {
        let api = TestApi::new().await;
        let admin = api.admin_token.clone();
        let (customer, _) = api.customer_with_project("Org", "P0").await;
        let customer_path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
        let (owner, owner_token) = api.user("owner", false, false).await;
        api.grant(&customer_path, &owner.uuid, "CUSTOMER.OWNER").await;
        let role = api
            .call("GET", "/api/roles/?name=PROJECT.MEMBER", Some(&admin), None)
            .await
            .json[0]["uuid"]
            .clone();
        for i in 0..projects {
            let project = api
                .call(
                    "POST",
                    "/api/projects/",
                    Some(&admin),
                    Some(json!({"name": format!("P{}", i + 1), "customer": customer["url"]})),
                )
                .await;
            assert_eq!(project.status, 201, "{}", project.text);
            let (member, _) = api.user(&format!("m{i}"), false, false).await;
            let project_path = format!("/api/projects/{}/", project.json["uuid"].as_str().unwrap());
            api.grant(&project_path, &member.uuid, "PROJECT.MEMBER").await;
            let invitation = api
                .call(
                    "POST",
                    "/api/user-group-invitations/",
                    Some(&owner_token),
                    Some(json!({"scope": project.json["url"], "role": role})),
                )
                .await;
            assert_eq!(invitation.status, 201, "{}", invitation.text);
        }
        // The role cache is warm for every list alike.
        api.call("GET", "/api/roles/", Some(&owner_token), None).await;
        let mut pages = Vec::new();
        for list in LISTS {
            let (page, cost) = api.counted("GET", list, Some(&owner_token), None).await;
            assert_eq!(page.status, 200, "{list}: {}", page.text);
            let expected_count = match list {
                "/api/user-group-invitations/" => Some(projects),
                "/api/projects/" => Some(projects + 1),
                _ => None,
            };
            if let Some(count) = expected_count {
                assert_eq!(
                    page.header("x-result-count"),
                    Some(count.to_string().as_str()),
                    "{list}"
                );
            }
            assert!(cost > 0);
            pages.push((list, cost));
        }
        costs.push(pages);
    }
    assert_eq!(costs[0], costs[1], "page 1 as the owner of 1 and of 50 projects");
}

/// Staff over a table with 24 and with 50 users, customers and projects (each project with an
/// invitation and a request through it, each user with a role in the customer and one in the
/// project, half the customer roles ended): page 1 of each list, and a deep page, costs the
/// same requests and queries the same items (one Query per index partition that stops after the
/// page, beside the list's tally), in the list's order, and the counts are the table's.
#[tokio::test]
async fn staff_pages_cost_the_same_whatever_the_table_holds() {
    const LISTS: [&str; 16] = [
        "/api/users/",
        "/api/customers/",
        "/api/projects/",
        "/api/user-group-invitations/",
        "/api/user-permission-requests/",
        "/api/customer-permissions/",
        "/api/project-permissions/",
        "/api/user-permissions/",
        "/api/users/?page=3&page_size=2",
        "/api/customers/?page=3&page_size=2",
        "/api/projects/?page=3&page_size=2",
        "/api/user-group-invitations/?page=3&page_size=2&o=created",
        "/api/user-permission-requests/?page=3&page_size=2&o=-created",
        "/api/customer-permissions/?page=3&page_size=2",
        "/api/project-permissions/?page=3&page_size=2",
        "/api/user-permissions/?page=3&page_size=2",
    ];
    let mut costs = Vec::new();
    for rows in [24, 50] {
        let api = TestApi::new().await;
        let admin = api.admin_token.clone();
        let role = api
            .call("GET", "/api/roles/?name=PROJECT.MEMBER", Some(&admin), None)
            .await
            .json[0]["uuid"]
            .clone();
        for i in 0..rows {
            let (_, project) = api
                .customer_with_project(&format!("Org {i:02}"), &format!("P {i:02}"))
                .await;
            let (holder, token) = api.user(&format!("u{i:02}"), false, false).await;
            let body = json!({"scope": project["url"], "role": role});
            let invitation = api
                .call("POST", "/api/user-group-invitations/", Some(&admin), Some(body))
                .await;
            assert_eq!(invitation.status, 201, "{}", invitation.text);
            let submit = format!(
                "/api/user-group-invitations/{}/submit_request/",
                invitation.json["uuid"].as_str().unwrap()
            );
            let request = api.call("POST", &submit, Some(&token), None).await;
            assert!(request.status < 300, "{}", request.text);
            // A role in the customer and one in the project; every other customer role ended.
            let (customer_path, project_path) = (
                format!("/api/customers/{}/", project["customer_uuid"].as_str().unwrap()),
                format!("/api/projects/{}/", project["uuid"].as_str().unwrap()),
            );
            api.grant(&customer_path, &holder.uuid, "CUSTOMER.SUPPORT").await;
            api.grant(&project_path, &holder.uuid, "PROJECT.MEMBER").await;
            if i % 2 == 0 {
                let body = json!({"user": holder.uuid, "role": "CUSTOMER.SUPPORT"});
                let path = format!("{customer_path}delete_user/");
                let revoked = api.call("POST", &path, Some(&admin), Some(body)).await;
                assert!(revoked.status < 300, "{}", revoked.text);
            }
        }
        let mut pages = Vec::new();
        for list in LISTS {
            // The container's role cache is warm for every list alike: it lives 10 s, less than
            // a busy machine may take to measure all of them.
            api.call("GET", list, Some(&admin), None).await;
            let mark = api.round_trips.count();
            let (page, cost) = api.counted("GET", list, Some(&admin), None).await;
            let queried = api.round_trips.queried_since(mark);
            assert_eq!(page.status, 200, "{list}: {}", page.text);
            // The users are the admin and the ones made here; half the customer roles ended.
            let expected = match list.split('?').next().unwrap() {
                "/api/users/" => rows + 1,
                "/api/customer-permissions/" => rows / 2,
                "/api/user-permissions/" => 2 * rows,
                _ => rows,
            };
            assert_eq!(
                page.header("x-result-count"),
                Some(expected.to_string().as_str()),
                "{list}"
            );
            let rows_of = |field: &str| -> Vec<String> {
                let rows = page.json.as_array().unwrap();
                rows.iter().map(|row| row[field].to_string()).collect()
            };
            // Each list in its order: by name (users by username), or by creation (the
            // invitations oldest first with `o=created`, else both newest first).
            let (keys, newest_first) = match list.split('?').next().unwrap() {
                "/api/users/" => (rows_of("username"), false),
                "/api/user-group-invitations/" => (rows_of("created"), !list.contains("o=created")),
                "/api/user-permission-requests/" => (rows_of("created"), true),
                "/api/customer-permissions/" | "/api/project-permissions/" => (rows_of("created"), true),
                "/api/user-permissions/" => (rows_of("created"), false),
                _ => (rows_of("name"), false),
            };
            let deep = list.contains("page=3");
            assert_eq!(keys.len(), if deep { 2 } else { expected.min(10) }, "{list}");
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            if newest_first {
                sorted.reverse();
            }
            assert_eq!(keys, sorted, "{list} in its order");
            let by_name = ["/api/users/", "/api/customers/", "/api/projects/"];
            if deep && by_name.iter().any(|named| list.starts_with(named)) && !list.contains("o=") {
                let first = if list.starts_with("/api/users/") {
                    "u03"
                } else {
                    "04"
                };
                assert!(keys[0].trim_matches('"').ends_with(first), "{list}: {keys:?}");
            }
            pages.push((list, cost, queried));
        }
        costs.push(pages);
    }
    assert_eq!(
        costs[0], costs[1],
        "requests and items queried for page 1 and page 3 over 24 and 50 rows"
    );
}
