//! Permission reviews, the review scheduler and the expiry sweeper against DynamoDB Local. The
//! scheduled jobs take the present as a parameter, so time is simulated, not waited for.

use chrono::Duration;
use integration_tests::TestApi;
use serde_json::{Value, json};
use shared::reviews::Schedule;
use shared::scheduler;
use shared::time::{self, Timestamp};

struct Org {
    api: TestApi,
    customer: String,
    project: String,
    owner_token: String,
}

async fn org() -> Org {
    let api = TestApi::new().await;
    let (customer, project) = api.customer_with_project("Reviewed", "P").await;
    let (owner, owner_token) = api.user("alice", false, false).await;
    let customer = customer["uuid"].as_str().unwrap().to_owned();
    api.grant(
        &format!("/api/customers/{customer}/"),
        &owner.uuid,
        "CUSTOMER.OWNER",
    )
    .await;
    Org {
        api,
        customer,
        project: project["uuid"].as_str().unwrap().to_owned(),
        owner_token,
    }
}

fn at(text: &str) -> Timestamp {
    time::parse_input(text).unwrap()
}

async fn run_reviews(api: &TestApi, now: &Timestamp) -> scheduler::Report {
    let schedule = Schedule::default();
    let opened = scheduler::open_due_reviews(api.store(), &schedule, now)
        .await
        .unwrap();
    let reminded = scheduler::send_reminders(api.store(), &schedule, now)
        .await
        .unwrap();
    scheduler::Report {
        reminders_sent: reminded.reminders_sent,
        ..opened
    }
}

#[tokio::test]
async fn reviews_open_once_for_scopes_with_users() {
    let o = org().await;
    let admin = o.api.admin_token.clone();
    // A customer without users, and one whose only user holds a project role.
    o.api
        .call(
            "POST",
            "/api/customers/",
            Some(&admin),
            Some(json!({"name": "Empty"})),
        )
        .await;
    let other = o
        .api
        .call(
            "POST",
            "/api/customers/",
            Some(&admin),
            Some(json!({"name": "Projects only"})),
        )
        .await
        .json;
    let project = o
        .api
        .call(
            "POST",
            "/api/projects/",
            Some(&admin),
            Some(json!({"name": "Q", "customer": other["url"]})),
        )
        .await
        .json;
    let (bob, _) = o.api.user("bob", false, false).await;
    let grant = json!({"user": bob.uuid, "role": "PROJECT.MEMBER"});
    let path = format!("/api/projects/{}/add_user/", project["uuid"].as_str().unwrap());
    assert_eq!(
        o.api.call("POST", &path, Some(&admin), Some(grant)).await.status,
        201
    );

    let first = run_reviews(&o.api, &at("2027-01-01T06:00:00Z")).await;
    assert_eq!(
        first.reviews_opened, 3,
        "two customers with users and the project with a member: {first:?}"
    );
    assert_eq!(first.scopes_scanned, 5, "three customers and two projects");
    let again = run_reviews(&o.api, &at("2027-01-01T18:00:00Z")).await;
    assert_eq!(again.reviews_opened, 0, "a second run the same day opens nothing");

    let customers = o
        .api
        .call("GET", "/api/customer-permissions-reviews/", Some(&admin), None)
        .await;
    assert_eq!(customers.header("x-result-count"), Some("2"));
    let pending = &customers.json[0];
    for key in ["reviewer_full_name", "reviewer_uuid", "closed"] {
        assert_eq!(
            pending[key],
            Value::Null,
            "{key} is null while pending, but present"
        );
    }
    assert_eq!(pending["is_pending"], true);
    let projects = o
        .api
        .call("GET", "/api/project-permissions-reviews/", Some(&admin), None)
        .await;
    assert_eq!(projects.json[0]["project_name"], "Q");
}

#[tokio::test]
async fn closing_follows_the_rules_and_restarts_the_period() {
    let o = org().await;
    let (bob, bob_token) = o.api.user("bob", false, false).await;
    let (_, carol_token) = o.api.user("carol", false, false).await;
    let grant = json!({"user": bob.uuid, "role": "PROJECT.ADMIN"});
    let path = format!("/api/projects/{}/add_user/", o.project);
    assert_eq!(
        o.api
            .call("POST", &path, Some(&o.api.admin_token), Some(grant))
            .await
            .status,
        201
    );
    run_reviews(&o.api, &at("2027-01-01T06:00:00Z")).await;
    let mine = o
        .api
        .call(
            "GET",
            &format!(
                "/api/customer-permissions-reviews/?customer_uuid={}&is_pending=true",
                o.customer
            ),
            Some(&o.owner_token),
            None,
        )
        .await;
    let uuid = mine.json[0]["uuid"].as_str().unwrap().to_owned();
    let review = format!("/api/customer-permissions-reviews/{uuid}/");

    // Waldur shows a customer's reviews only to those with a role on the customer itself.
    assert_eq!(
        o.api.call("GET", &review, Some(&bob_token), None).await.status,
        404,
        "a project admin does not see the customer's review"
    );
    let hidden = o.api.call("GET", &review, Some(&carol_token), None).await;
    assert_eq!(
        (hidden.status, &hidden.json),
        (
            404,
            &json!({"detail": "No CustomerPermissionReview matches the given query."})
        )
    );
    assert_eq!(
        o.api
            .call(
                "GET",
                "/api/customer-permissions-reviews/",
                Some(&carol_token),
                None
            )
            .await
            .json,
        json!([])
    );
    assert_eq!(
        o.api
            .call("POST", &format!("{review}close/"), Some(&bob_token), None)
            .await
            .status,
        404
    );
    let closed = o
        .api
        .call("POST", &format!("{review}close/"), Some(&o.owner_token), None)
        .await;
    assert_eq!((closed.status, closed.text.as_str()), (200, ""));
    let twice = o
        .api
        .call("POST", &format!("{review}close/"), Some(&o.owner_token), None)
        .await;
    assert_eq!(
        (twice.status, &twice.json),
        (400, &json!(["Review is already closed."]))
    );
    let detail = o.api.call("GET", &review, Some(&o.owner_token), None).await.json;
    assert_eq!(
        (
            detail["is_pending"].as_bool(),
            detail["reviewer_full_name"].as_str()
        ),
        (Some(false), Some("alice Tester"))
    );
    assert!(detail["closed"].is_string());

    // The next review comes a review period after the close, not before.
    let closed_at = time::parse_input(detail["closed"].as_str().unwrap()).unwrap();
    let early = run_reviews(&o.api, &(closed_at + Duration::days(89))).await;
    assert_eq!(
        early.reviews_opened, 0,
        "the customer was reviewed recently, the project's review is pending: {early:?}"
    );
    let reopened = o
        .api
        .call(
            "GET",
            "/api/customer-permissions-reviews/?is_pending=true",
            Some(&o.owner_token),
            None,
        )
        .await;
    assert_eq!(reopened.header("x-result-count"), Some("0"));
    let due = run_reviews(&o.api, &(closed_at + Duration::days(91))).await;
    assert_eq!(due.reviews_opened, 1);
    let reopened = o
        .api
        .call(
            "GET",
            "/api/customer-permissions-reviews/?is_pending=true",
            Some(&o.owner_token),
            None,
        )
        .await;
    assert_eq!(reopened.header("x-result-count"), Some("1"));
}

#[tokio::test]
async fn reminders_go_out_once_per_interval() {
    let o = org().await;
    let opened_at = at("2027-03-01T06:00:00Z");
    run_reviews(&o.api, &opened_at).await;
    let reminders = |days: i64| {
        let api = &o.api;
        async move {
            run_reviews(api, &(opened_at + Duration::days(days)))
                .await
                .reminders_sent
        }
    };
    assert_eq!(reminders(3).await, 0, "not pending long enough");
    assert_eq!(reminders(8).await, 1);
    assert_eq!(reminders(8).await, 0, "the same day again");
    assert_eq!(reminders(12).await, 0, "within the interval of the last reminder");
    assert_eq!(reminders(16).await, 1);
}

#[tokio::test]
async fn the_sweeper_revokes_expired_grants() {
    let o = org().await;
    let admin = o.api.admin_token.clone();
    let (bob, bob_token) = o.api.user("bob", false, false).await;
    let body = json!({"user": bob.uuid, "role": "PROJECT.ADMIN", "expiration_time": "2030-01-01"});
    let path = format!("/api/projects/{}/", o.project);
    assert_eq!(
        o.api
            .call("POST", &format!("{path}add_user/"), Some(&admin), Some(body))
            .await
            .status,
        201
    );

    let before = scheduler::sweep_expired_grants(o.api.store(), &at("2029-12-31T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(before.grants_expired, 0);
    let swept = scheduler::sweep_expired_grants(o.api.store(), &at("2030-01-02T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(swept.grants_expired, 1);
    let again = scheduler::sweep_expired_grants(o.api.store(), &at("2030-01-03T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(again.grants_expired, 0, "idempotent");

    let members = o
        .api
        .call("GET", &format!("{path}list_users/"), Some(&admin), None)
        .await;
    assert_eq!(
        (members.header("x-result-count"), &members.json),
        (Some("0"), &json!([])),
        "counts drop too"
    );
    assert_eq!(o.api.call("GET", &path, Some(&bob_token), None).await.status, 404);
    let role = o
        .api
        .call(
            "GET",
            "/api/roles/85ae032608494d65a02605e5644767f3/",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(role.json["users_count"], 0);
}

#[tokio::test]
async fn a_review_lists_what_it_reviews_and_revokes_from_within() {
    let o = org().await;
    let admin = o.api.admin_token.clone();
    let (bob, bob_token) = o.api.user("bob", false, false).await;
    let grant = json!({"user": bob.uuid, "role": "PROJECT.ADMIN"});
    let project_path = format!("/api/projects/{}/", o.project);
    assert_eq!(
        o.api
            .call(
                "POST",
                &format!("{project_path}add_user/"),
                Some(&admin),
                Some(grant)
            )
            .await
            .status,
        201
    );
    run_reviews(&o.api, &at("2027-01-01T06:00:00Z")).await;
    let list = format!("/api/customer-permissions-reviews/?customer_uuid={}", o.customer);
    let uuid = o.api.call("GET", &list, Some(&o.owner_token), None).await.json[0]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let review = format!("/api/customer-permissions-reviews/{uuid}/");

    // A grant made after the review opened is not part of it.
    let (carol, _) = o.api.user("carol", false, false).await;
    let late = json!({"user": carol.uuid, "role": "PROJECT.MEMBER"});
    assert_eq!(
        o.api
            .call(
                "POST",
                &format!("{project_path}add_user/"),
                Some(&admin),
                Some(late)
            )
            .await
            .status,
        201
    );
    let covered = o
        .api
        .call(
            "GET",
            &format!("{review}permissions/"),
            Some(&o.owner_token),
            None,
        )
        .await;
    let rows: Vec<(&str, &str)> = covered
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user_username"].as_str().unwrap(),
                r["role_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("alice", "CUSTOMER.OWNER"), ("bob", "PROJECT.ADMIN")]);

    let body = json!({"user": bob.uuid, "role": "PROJECT.ADMIN", "scope": o.project});
    assert_eq!(
        o.api
            .call(
                "POST",
                &format!("{review}revoke/"),
                Some(&bob_token),
                Some(body.clone())
            )
            .await
            .status,
        404,
        "a project admin does not see the customer's review"
    );
    let revoked = o
        .api
        .call(
            "POST",
            &format!("{review}revoke/"),
            Some(&o.owner_token),
            Some(body.clone()),
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(
        (
            revoked.json["revoked"].as_bool(),
            revoked.json["revoked_by_username"].as_str()
        ),
        (Some(true), Some("alice"))
    );
    assert_eq!(
        o.api
            .call("GET", &project_path, Some(&bob_token), None)
            .await
            .status,
        404,
        "bob's grant is gone"
    );
    let again = o
        .api
        .call(
            "POST",
            &format!("{review}revoke/"),
            Some(&o.owner_token),
            Some(body),
        )
        .await;
    assert_eq!(again.status, 400);
    let outside = json!({"user": carol.uuid, "role": "PROJECT.MEMBER", "scope": o.project});
    let not_reviewed = o
        .api
        .call(
            "POST",
            &format!("{review}revoke/"),
            Some(&o.owner_token),
            Some(outside),
        )
        .await;
    assert_eq!(
        not_reviewed.json,
        json!({"non_field_errors": ["This grant is not part of the review."]})
    );
    let after = o
        .api
        .call(
            "GET",
            &format!("{review}permissions/"),
            Some(&o.owner_token),
            None,
        )
        .await;
    assert_eq!(after.json[1]["revoked"], true, "the decision stays on the review");
    o.api
        .call("POST", &format!("{review}close/"), Some(&o.owner_token), None)
        .await;
    let closed = json!({"user": o.api.admin.uuid, "role": "CUSTOMER.OWNER", "scope": o.customer});
    let too_late = o
        .api
        .call(
            "POST",
            &format!("{review}revoke/"),
            Some(&o.owner_token),
            Some(closed),
        )
        .await;
    assert_eq!(too_late.json, json!(["Review is already closed."]));
}

#[tokio::test]
async fn concurrent_closes_of_one_review_close_it_once() {
    let o = org().await;
    run_reviews(&o.api, &at("2027-01-01T06:00:00Z")).await;
    let pending = o
        .api
        .call(
            "GET",
            "/api/customer-permissions-reviews/?is_pending=true",
            Some(&o.owner_token),
            None,
        )
        .await;
    let uuid = pending.json[0]["uuid"].as_str().unwrap();
    let close = format!("/api/customer-permissions-reviews/{uuid}/close/");
    let answers =
        futures::future::join_all((0..20).map(|_| o.api.call("POST", &close, Some(&o.owner_token), None)))
            .await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    for refused in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(
            (refused.status, &refused.json),
            (400, &json!(["Review is already closed."]))
        );
    }
    let events = o
        .api
        .store()
        .client()
        .query()
        .table_name(o.api.store().table())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("AUDIT#CUSTOMER#{}", o.customer)),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let closings = events
        .iter()
        .filter(|e| {
            e.get("event_type")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some("permission_review_closed")
        })
        .count();
    assert_eq!(closings, 1, "one close, one audit event");
}
