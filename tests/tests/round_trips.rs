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
