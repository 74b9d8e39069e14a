//! The consistency check of the whole table, for tests that break or race the store: no
//! half-written state anywhere.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::TestApi;

fn of_entity<'a>(items: &'a [Value], entity: &str) -> Vec<&'a Value> {
    items.iter().filter(|item| item["entity"] == entity).collect()
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// No half-written state: both items of every grant, counters and tallies that match what they count,
/// tokens and users that agree, one owner per workspace, one marker per user name and address.
pub async fn assert_consistent(api: &TestApi) -> usize {
    let items = api.all_items().await;
    let user_sides: BTreeSet<String> = of_entity(&items, "grant")
        .iter()
        .map(|g| text(&g["uuid"]))
        .collect();
    let member_sides: BTreeSet<String> = of_entity(&items, "member")
        .iter()
        .map(|m| text(&m["uuid"]))
        .collect();
    assert_eq!(user_sides, member_sides, "grants with one of their two items");
    // Each user item's `held` map records exactly the user's grants.
    let held: BTreeSet<String> = of_entity(&items, "user")
        .iter()
        .flat_map(|user| user["held"].as_object().cloned().unwrap_or_default())
        .map(|(_, role)| text(&role["g"]))
        .collect();
    assert_eq!(user_sides, held, "grants recorded on their user items");

    let mut members_per_scope: BTreeMap<String, i64> = BTreeMap::new();
    let mut expiring_per_scope: BTreeMap<String, i64> = BTreeMap::new();
    for member in of_entity(&items, "member") {
        *members_per_scope.entry(text(&member["PK"])).or_default() += 1;
        if member["expiration_time"].is_string() {
            *expiring_per_scope.entry(text(&member["PK"])).or_default() += 1;
        }
    }
    for scope in of_entity(&items, "customer")
        .into_iter()
        .chain(of_entity(&items, "project"))
    {
        let counted = members_per_scope.get(&text(&scope["PK"])).copied().unwrap_or(0);
        assert_eq!(
            scope["member_count"].as_i64().unwrap_or(0),
            counted,
            "member_count of {}",
            scope["PK"]
        );
        let expiring = expiring_per_scope.get(&text(&scope["PK"])).copied().unwrap_or(0);
        assert_eq!(
            scope["expiring_count"].as_i64().unwrap_or(0),
            expiring,
            "expiring_count of {}",
            scope["PK"]
        );
    }

    // Each customer's users_count: the distinct users with a grant on it or its projects; each
    // user's count of grants per customer.
    let project_customer: BTreeMap<String, String> = of_entity(&items, "project")
        .iter()
        .map(|p| (text(&p["PK"]), text(&p["customer_uuid"])))
        .collect();
    let mut users_per_customer: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut grants_per_user_customer: BTreeMap<(String, String), i64> = BTreeMap::new();
    for grant in of_entity(&items, "grant") {
        let customer = text(&grant["customer_uuid"]);
        users_per_customer
            .entry(customer.clone())
            .or_default()
            .insert(text(&grant["user_uuid"]));
        *grants_per_user_customer
            .entry((text(&grant["user_uuid"]), customer))
            .or_default() += 1;
    }
    assert!(
        project_customer.values().all(|c| !c.is_empty()),
        "projects name their customer"
    );
    for customer in of_entity(&items, "customer") {
        let counted = users_per_customer
            .get(&text(&customer["uuid"]))
            .map_or(0, |users| users.len() as i64);
        assert_eq!(
            customer["users_count"].as_i64().unwrap_or(0),
            counted,
            "users_count of {}",
            customer["PK"]
        );
    }
    for user in of_entity(&items, "user") {
        let recorded: BTreeMap<String, i64> = user["customer_grants"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let counted: BTreeMap<String, i64> = grants_per_user_customer
            .iter()
            .filter(|((u, _), _)| *u == text(&user["uuid"]))
            .map(|((_, c), n)| (c.clone(), *n))
            .collect();
        assert_eq!(recorded, counted, "customer_grants of {}", user["username"]);
    }

    let mut projects_per_customer: BTreeMap<String, i64> = BTreeMap::new();
    for customer in project_customer.values() {
        *projects_per_customer.entry(customer.clone()).or_default() += 1;
    }
    for customer in of_entity(&items, "customer") {
        assert_eq!(
            customer["project_count"].as_i64().unwrap_or(0),
            projects_per_customer
                .get(&text(&customer["uuid"]))
                .copied()
                .unwrap_or(0),
            "project_count of {}",
            customer["PK"]
        );
    }
    // Each list's tally (the sum of its shards, `<list>#<shard>`) counts its index partition,
    // which the list names, where one was written (a table without one counts the partition
    // when asked).
    let mut tallies: BTreeMap<String, i64> = BTreeMap::new();
    for shard in of_entity(&items, "tally") {
        let sk = text(&shard["SK"]);
        let list = sk.rsplit_once('#').map_or(sk.as_str(), |(list, _)| list);
        *tallies.entry(list.to_owned()).or_default() += shard["count"].as_i64().unwrap_or(0);
    }
    for (list, counted) in &tallies {
        let listed = items
            .iter()
            .filter(|item| {
                ["GSI1PK", "GSI2PK", "GSI3PK"]
                    .iter()
                    .any(|index| item[*index] == list.as_str())
            })
            .count() as i64;
        assert_eq!(*counted, listed, "the tally of {list}");
    }
    // Customers and projects sort by name in their lists' partitions.
    for scope in of_entity(&items, "customer")
        .into_iter()
        .chain(of_entity(&items, "project"))
    {
        let order = format!("{}\u{1}", text(&scope["name"]));
        assert!(
            text(&scope["GSI1SK"]).starts_with(&order),
            "the list order of {}",
            scope["PK"]
        );
    }

    let mut grants_per_role: BTreeMap<String, i64> = BTreeMap::new();
    for grant in of_entity(&items, "grant") {
        *grants_per_role.entry(text(&grant["role_uuid"])).or_default() += 1;
    }
    for role in of_entity(&items, "role") {
        let counted = grants_per_role.get(&text(&role["uuid"])).copied().unwrap_or(0);
        assert_eq!(
            role["users_count"].as_i64().unwrap_or(0),
            counted,
            "users_count of {}",
            role["name"]
        );
    }

    let users = of_entity(&items, "user");
    for token in of_entity(&items, "token") {
        let owner = users
            .iter()
            .find(|user| user["uuid"] == token["user_uuid"])
            .unwrap_or_else(|| panic!("a token of no user: {token}"));
        let hash = text(&owner["token_hash"]);
        assert!(
            text(&token["PK"]).contains(&hash),
            "a token the user no longer has: {token}"
        );
    }
    let with_token = users.iter().filter(|user| user["token_hash"].is_string()).count();
    assert_eq!(
        with_token,
        of_entity(&items, "token").len(),
        "one token item per user with a token"
    );
    assert_eq!(
        of_entity(&items, "username").len(),
        users.len(),
        "one username marker per user"
    );

    for workspace in of_entity(&items, "workspace") {
        let owners: Vec<_> = of_entity(&items, "workspace_permission")
            .into_iter()
            .filter(|p| p["workspace"] == workspace["id"] && p["role"] == "OWNER")
            .collect();
        assert_eq!(owners.len(), 1, "owners of workspace {}", workspace["id"]);
        assert_eq!(
            owners[0]["user"], workspace["owner_user_pk"],
            "workspace {}",
            workspace["id"]
        );
    }
    items.len()
}
