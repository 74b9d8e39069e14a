//! The roles endpoint group against DynamoDB Local, through the template's routes.

use std::time::{Duration, Instant};

use futures::future::join_all;
use integration_tests::{TestApi, client_for};
use serde_json::{Value, json};
use shared::Context;
use shared::store::{Store, s};

const OWNER_UUID: &str = "afab8022f4df457fba97346cd4c6a4a1";
const OWNER_DASHED: &str = "afab8022-f4df-457f-ba97-346cd4c6a4a1";
const SYSTEM_ROLE_NAMES: [&str; 12] = [
    "CALL.MANAGER",
    "CALL.REVIEWER",
    "CUSTOMER.MANAGER",
    "CUSTOMER.OWNER",
    "CUSTOMER.READER",
    "CUSTOMER.SUPPORT",
    "OFFERING.MANAGER",
    "PROJECT.ADMIN",
    "PROJECT.MANAGER",
    "PROJECT.MEMBER",
    "PROPOSAL.MANAGER",
    "PROPOSAL.MEMBER",
];

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

fn custom_role(name: &str) -> Value {
    json!({"name": name, "content_type": "project", "permissions": ["PROJECT.UPDATE"], "description": "Custom"})
}

async fn create(api: &TestApi, name: &str) -> Value {
    let answer = api
        .call(
            "POST",
            "/api/roles/",
            Some(&api.admin_token),
            Some(custom_role(name)),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json
}

/// Stands in for grants (a later endpoint group) by setting the counter they maintain.
async fn set_users_count(store: &Store, uuid: &str, count: i64) {
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("PK", s("ROLES"))
        .key("SK", s(format!("ROLE#{uuid}")))
        .update_expression("SET users_count = :c")
        .expression_attribute_values(":c", shared::store::n(count))
        .send()
        .await
        .unwrap();
}

async fn audit_events(store: &Store, uuid: &str) -> Vec<String> {
    let output = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", s(format!("AUDIT#ROLE#{uuid}")))
        .send()
        .await
        .unwrap();
    output
        .items()
        .iter()
        .map(|item| item["event_type"].as_s().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn anonymous_list_is_paginated_like_waldur() {
    let api = TestApi::new().await;
    let first = api.call("GET", "/api/roles/", None, None).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-result-count"), Some("12"));
    assert_eq!(names(&first.json), SYSTEM_ROLE_NAMES[..10]);
    assert_eq!(
        first.header("link"),
        Some(
            "<http://testserver/api/roles/>; rel=\"first\", <http://testserver/api/roles/?page=2>; rel=\"next\", \
             <http://testserver/api/roles/?page=2>; rel=\"last\""
        )
    );
    assert!(
        first.json[0].get("users_count").is_none(),
        "users_count is for staff and support"
    );
    assert_eq!(first.json[3]["uuid"], OWNER_UUID);
    assert_eq!(first.json[3]["description"], "Organization owner");
    assert_eq!(first.json[3]["description_et"], Value::Null);
    assert_eq!(first.json[3]["permissions"].as_array().unwrap().len(), 73);

    let second = api.call("GET", "/api/roles/?page=2", None, None).await;
    assert_eq!(names(&second.json), SYSTEM_ROLE_NAMES[10..]);
    assert!(
        second
            .header("link")
            .unwrap()
            .contains("<http://testserver/api/roles/>; rel=\"prev\"")
    );
    assert!(!second.header("link").unwrap().contains("rel=\"next\""));

    let sized = api
        .call("GET", "/api/roles/?page_size=3&page=2", None, None)
        .await;
    assert_eq!(names(&sized.json), SYSTEM_ROLE_NAMES[3..6]);
    assert!(
        sized
            .header("link")
            .unwrap()
            .contains("<http://testserver/api/roles/?page=4&page_size=3>; rel=\"last\"")
    );
    assert_eq!(
        names(
            &api.call("GET", "/api/roles/?page=last&page_size=5", None, None)
                .await
                .json
        )
        .len(),
        2
    );

    for bad_page in ["3", "0", "x"] {
        let answer = api
            .call("GET", &format!("/api/roles/?page={bad_page}"), None, None)
            .await;
        assert_eq!(
            (answer.status, &answer.json),
            (404, &json!({"detail": "Invalid page."})),
            "{bad_page}"
        );
    }
    let capped = api.call("GET", "/api/roles/?page_size=100000", None, None).await;
    assert_eq!(names(&capped.json).len(), 12);
    let negative = api.call("GET", "/api/roles/?page_size=-5", None, None).await;
    assert_eq!(names(&negative.json).len(), 10);
}

#[tokio::test]
async fn head_answers_the_count_without_a_body() {
    let api = TestApi::new().await;
    let answer = api.call("HEAD", "/api/roles/?is_active=true", None, None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-result-count"), Some("12"));
    assert!(answer.text.is_empty());
}

#[tokio::test]
async fn users_count_is_shown_to_staff_and_support_only() {
    let api = TestApi::new().await;
    let (_, support) = api.user("sam", false, true).await;
    let (_, plain) = api.user("pat", false, false).await;
    for (token, visible) in [(&api.admin_token, true), (&support, true), (&plain, false)] {
        let list = api.call("GET", "/api/roles/", Some(token), None).await;
        assert_eq!(list.json[0].get("users_count").is_some(), visible);
        let one = api
            .call("GET", &format!("/api/roles/{OWNER_UUID}/"), Some(token), None)
            .await;
        assert_eq!(one.json.get("users_count").is_some(), visible);
    }
}

#[tokio::test]
async fn authentication_errors_use_drf_texts() {
    let api = TestApi::new().await;
    let cases = [
        ("Token nope", "Invalid token."),
        ("Token", "Invalid token. No credentials provided."),
        (
            "Token a b",
            "Invalid token. Token string should not contain spaces.",
        ),
    ];
    for (header, detail) in cases {
        let request = lambda_http::http::Request::builder()
            .uri("http://testserver/api/roles/")
            .header("authorization", header)
            .body(lambda_http::Body::Empty)
            .unwrap();
        let answer = api.send(request).await;
        assert_eq!(answer.status, 401, "{header}");
        assert_eq!(answer.json, json!({"detail": detail}));
        assert_eq!(answer.header("www-authenticate"), Some("Token"));
    }
    let lower_case_keyword = lambda_http::http::Request::builder()
        .uri("http://testserver/api/roles/")
        .header("authorization", format!("token {}", api.admin_token))
        .body(lambda_http::Body::Empty)
        .unwrap();
    assert!(
        api.send(lower_case_keyword).await.json[0]
            .get("users_count")
            .is_some()
    );
    let anonymous_write = api
        .call("POST", "/api/roles/", None, Some(custom_role("A.B")))
        .await;
    assert_eq!(anonymous_write.status, 401);
    assert_eq!(
        anonymous_write.json,
        json!({"detail": "Authentication credentials were not provided."})
    );
}

#[tokio::test]
async fn filters_ordering_and_field_selection() {
    let api = TestApi::new().await;
    let get = |query: &'static str| {
        let api = &api;
        async move {
            api.call(
                "GET",
                &format!("/api/roles/?{query}"),
                Some(&api.admin_token),
                None,
            )
            .await
        }
    };
    assert_eq!(
        names(&get("content_type=call").await.json),
        ["CALL.MANAGER", "CALL.REVIEWER"]
    );
    assert_eq!(
        names(&get("name=project.m").await.json),
        ["PROJECT.MANAGER", "PROJECT.MEMBER"]
    );
    assert_eq!(
        names(&get("description=organization").await.json),
        ["CUSTOMER.MANAGER", "CUSTOMER.OWNER"]
    );
    assert_eq!(
        get("is_system_role=false").await.header("x-result-count"),
        Some("0")
    );
    assert_eq!(get("is_active=maybe").await.header("x-result-count"), Some("12"));
    assert_eq!(
        get("content_type=call&content_type=proposal")
            .await
            .header("x-result-count"),
        Some("4")
    );
    assert_eq!(
        names(&get("o=-name&page_size=2").await.json),
        ["PROPOSAL.MEMBER", "PROPOSAL.MANAGER"]
    );
    let ordered = get("o=scope&o=-name&page_size=3").await;
    assert_eq!(
        names(&ordered.json),
        ["CALL.REVIEWER", "CALL.MANAGER", "CUSTOMER.SUPPORT"]
    );
    let bogus = get("o=bogus").await;
    assert_eq!(bogus.status, 400);
    assert_eq!(
        bogus.json,
        json!({"o": ["Select a valid choice. bogus is not one of the available choices."]})
    );

    let fields = get("field=uuid&field=name&field=nonsense").await;
    let first = fields.json[0].as_object().unwrap();
    assert_eq!(first.keys().collect::<Vec<_>>(), ["uuid", "name"]);
    let (_, plain) = api.user("pat", false, false).await;
    let hidden = api
        .call(
            "GET",
            "/api/roles/?field=name&field=users_count",
            Some(&plain),
            None,
        )
        .await;
    assert_eq!(
        hidden.json[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["name"]
    );
}

#[tokio::test]
async fn retrieve_accepts_both_uuid_forms() {
    let api = TestApi::new().await;
    for path in [OWNER_UUID, OWNER_DASHED] {
        let answer = api.call("GET", &format!("/api/roles/{path}/"), None, None).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json["name"], "CUSTOMER.OWNER");
        assert_eq!(answer.json["content_type"], "customer");
        assert_eq!(answer.json["is_system_role"], true);
    }
    for missing in ["00000000000000000000000000000000", "not-a-uuid", "..%2F..%2Fetc"] {
        let answer = api
            .call("GET", &format!("/api/roles/{missing}/"), None, None)
            .await;
        assert_eq!(
            (answer.status, &answer.json),
            (404, &json!({"detail": "No Role matches the given query."}))
        );
    }
    let unrouted = api.call("GET", "/api/roles", None, None).await;
    assert_eq!(unrouted.status, 404);
}

#[tokio::test]
async fn description_follows_accept_language() {
    let api = TestApi::new().await;
    let role = create(&api, "X.LANG").await;
    let uuid = role["uuid"].as_str().unwrap();
    let path = format!("/api/roles/{uuid}/update_descriptions/");
    let answer = api
        .call(
            "PUT",
            &path,
            Some(&api.admin_token),
            Some(json!({"description_de": "Projektrolle"})),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let keys: Vec<&String> = answer.json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 15, "description and 14 translations only: {keys:?}");
    assert_eq!(answer.json["description_de"], "Projektrolle");
    let request = lambda_http::http::Request::builder()
        .uri(format!("http://testserver/api/roles/{uuid}/"))
        .header("accept-language", "de-DE,de;q=0.9,en;q=0.5")
        .body(lambda_http::Body::Empty)
        .unwrap();
    assert_eq!(api.send(request).await.json["description"], "Projektrolle");
    let default = api.call("GET", &format!("/api/roles/{uuid}/"), None, None).await;
    assert_eq!(default.json["description"], "Custom");
}

#[tokio::test]
async fn create_validates_and_answers_201() {
    let api = TestApi::new().await;
    let token = Some(api.admin_token.as_str());
    let body = json!({"name": "X.ROLE", "permissions": {"PROJECT.CREATE": true}, "content_type": "customer", "description": "d"});
    let answer = api.call("POST", "/api/roles/", token, Some(body)).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let uuid = answer.json["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        answer.header("location"),
        Some(format!("http://testserver/api/roles/{uuid}/").as_str())
    );
    assert_eq!(answer.json["permissions"], json!(["PROJECT.CREATE"]));
    assert_eq!(answer.json["is_system_role"], false);
    assert_eq!(answer.json["is_active"], true);
    assert_eq!(answer.json["users_count"], 0);
    assert_eq!(answer.json["description_en"], "d");

    let cases = [
        (
            json!({}),
            json!({"name": ["This field is required."], "content_type": ["This field is required."], "permissions": ["This field is required."]}),
        ),
        (
            json!({"name": "X.ROLE", "content_type": "customer", "permissions": []}),
            json!({"name": ["Name should be unique."]}),
        ),
        (
            json!({"name": "X.NEW", "content_type": "galaxy", "permissions": []}),
            json!({"content_type": ["Invalid content type."]}),
        ),
        (
            json!({"name": "X.NEW", "content_type": "project", "permissions": ["Z.Z", "A.A"]}),
            json!({"permissions": ["Invalid permissions A.A,Z.Z"]}),
        ),
        (
            json!({"name": "x".repeat(151), "content_type": "project", "permissions": []}),
            json!({"name": ["Ensure this field has no more than 150 characters."]}),
        ),
        (
            json!({"name": "X.NEW", "content_type": "project", "permissions": [], "is_active": "yes"}),
            json!({"is_active": ["Must be a valid boolean."]}),
        ),
        (
            json!(["X"]),
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
        ),
    ];
    for (body, expected) in cases {
        let answer = api.call("POST", "/api/roles/", token, Some(body.clone())).await;
        assert_eq!((answer.status, &answer.json), (400, &expected), "{body}");
    }
    assert_eq!(
        api.call("GET", "/api/roles/", None, None)
            .await
            .header("x-result-count"),
        Some("13")
    );
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    let api = TestApi::new().await;
    let raw = |body: Vec<u8>, content_type: &str| {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("http://testserver/api/roles/")
            .header("authorization", format!("Token {}", api.admin_token))
            .header("content-type", content_type)
            .body(lambda_http::Body::Binary(body))
            .unwrap()
    };
    let broken = api.send(raw(b"{\"name\": ".to_vec(), "application/json")).await;
    assert_eq!(broken.status, 400);
    assert!(
        broken.json["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error")
    );
    let form = api
        .send(raw(b"name=x".to_vec(), "application/x-www-form-urlencoded"))
        .await;
    assert_eq!(form.status, 415);
    assert_eq!(
        form.json,
        json!({"detail": "Unsupported media type \"application/x-www-form-urlencoded\" in request."})
    );
    let huge = api.send(raw(vec![b' '; (1 << 20) + 1], "application/json")).await;
    assert_eq!(huge.status, 413);
    assert!(huge.json["detail"].is_string());
}

#[tokio::test]
async fn writes_are_for_staff_only() {
    let api = TestApi::new().await;
    let (_, plain) = api.user("pat", false, false).await;
    let (_, support) = api.user("sam", false, true).await;
    let role = create(&api, "X.GUARDED").await;
    let uuid = role["uuid"].as_str().unwrap();
    for token in [&plain, &support] {
        let attempts = [
            ("POST", "/api/roles/".to_owned(), Some(custom_role("X.OTHER"))),
            ("PUT", format!("/api/roles/{uuid}/"), Some(custom_role("X.OTHER"))),
            (
                "PATCH",
                format!("/api/roles/{uuid}/"),
                Some(json!({"is_active": false})),
            ),
            (
                "PUT",
                format!("/api/roles/{uuid}/update_descriptions/"),
                Some(json!({})),
            ),
            ("DELETE", format!("/api/roles/{uuid}/"), None),
            ("POST", format!("/api/roles/{uuid}/disable/"), None),
            ("POST", format!("/api/roles/{uuid}/enable/"), None),
        ];
        for (method, path, body) in attempts {
            let answer = api.call(method, &path, Some(token), body).await;
            assert_eq!(answer.status, 403, "{method} {path}");
            assert_eq!(
                answer.json,
                json!({"detail": "You do not have permission to perform this action."})
            );
        }
    }
    let unchanged = api.call("GET", &format!("/api/roles/{uuid}/"), None, None).await;
    assert_eq!(
        unchanged.json,
        json!({
            "uuid": role["uuid"], "name": "X.GUARDED", "description": "Custom", "description_en": "Custom",
            "description_et": null, "description_lt": null, "description_lv": null, "description_ru": null,
            "description_it": null, "description_de": null, "description_da": null, "description_sv": null,
            "description_es": null, "description_fr": null, "description_nb": null, "description_ar": null,
            "description_cs": null, "permissions": ["PROJECT.UPDATE"], "is_system_role": false, "is_active": true,
            "content_type": "project"
        })
    );
}

#[tokio::test]
async fn put_replaces_and_patch_changes_parts() {
    let api = TestApi::new().await;
    let token = Some(api.admin_token.as_str());
    let role = create(&api, "X.EDIT").await;
    let path = format!("/api/roles/{}/", role["uuid"].as_str().unwrap());

    let partial_put = api
        .call("PUT", &path, token, Some(json!({"name": "X.EDITED"})))
        .await;
    assert_eq!(partial_put.status, 400);
    assert_eq!(
        partial_put.json["permissions"],
        json!(["This field is required."])
    );

    let put = api
        .call("PUT", &path, token, Some(json!({"name": "X.EDITED", "content_type": "customer", "permissions": ["CUSTOMER.UPDATE", "PROJECT.CREATE"]})))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json["name"], "X.EDITED");
    assert_eq!(put.json["content_type"], "customer");
    assert_eq!(
        put.json["permissions"],
        json!(["CUSTOMER.UPDATE", "PROJECT.CREATE"])
    );

    let patch = api
        .call(
            "PATCH",
            &path,
            token,
            Some(json!({"description": "new", "is_active": false})),
        )
        .await;
    assert_eq!(patch.status, 200);
    assert_eq!(
        (
            patch.json["description"].as_str(),
            patch.json["is_active"].as_bool()
        ),
        (Some("new"), Some(false))
    );
    assert_eq!(patch.json["name"], "X.EDITED");
    assert_eq!(
        patch.json["permissions"],
        json!(["CUSTOMER.UPDATE", "PROJECT.CREATE"])
    );

    let empty_patch = api.call("PATCH", &path, token, None).await;
    assert_eq!(empty_patch.status, 200);

    // The old name is free again and the new one is taken.
    create(&api, "X.EDIT").await;
    let clash = api
        .call("PATCH", &path, token, Some(json!({"name": "X.EDIT"})))
        .await;
    assert_eq!(
        (clash.status, &clash.json),
        (400, &json!({"name": ["Name should be unique."]}))
    );
    let missing = api
        .call(
            "PATCH",
            "/api/roles/00000000000000000000000000000000/",
            token,
            Some(json!({"name": 1})),
        )
        .await;
    assert_eq!(missing.status, 404, "a missing role is reported before the body");
}

#[tokio::test]
async fn system_roles_keep_their_names_and_cannot_be_deleted() {
    let api = TestApi::new().await;
    let token = Some(api.admin_token.as_str());
    let path = format!("/api/roles/{OWNER_UUID}/");
    let rename = api
        .call("PATCH", &path, token, Some(json!({"name": "CUSTOMER.BOSS"})))
        .await;
    assert_eq!(rename.status, 400);
    assert_eq!(
        rename.json,
        json!({"non_field_errors": ["Changing name for system role is not possible."]})
    );
    let describe = api
        .call(
            "PATCH",
            &path,
            token,
            Some(json!({"name": "CUSTOMER.OWNER", "description_et": "Omanik"})),
        )
        .await;
    assert_eq!(describe.status, 200);
    assert_eq!(describe.json["description_et"], "Omanik");
    let delete = api.call("DELETE", &path, token, None).await;
    assert_eq!(
        (delete.status, &delete.json),
        (400, &json!(["Destroying of system role is not available."]))
    );
    assert_eq!(api.call("GET", &path, None, None).await.status, 200);
}

#[tokio::test]
async fn a_role_in_use_cannot_be_deleted_or_change_scope_type() {
    let api = TestApi::new().await;
    let token = Some(api.admin_token.as_str());
    let role = create(&api, "X.USED").await;
    let uuid = role["uuid"].as_str().unwrap();
    set_users_count(api.store(), uuid, 1).await;
    let path = format!("/api/roles/{uuid}/");
    let delete = api.call("DELETE", &path, token, None).await;
    assert_eq!(
        (delete.status, &delete.json),
        (400, &json!(["Role is still used."]))
    );
    let retype = api
        .call("PATCH", &path, token, Some(json!({"content_type": "customer"})))
        .await;
    assert_eq!(retype.status, 400);
    assert!(retype.json["content_type"].is_array());
    assert_eq!(api.call("GET", &path, token, None).await.json["users_count"], 1);

    set_users_count(api.store(), uuid, 0).await;
    assert_eq!(api.call("DELETE", &path, token, None).await.status, 204);
    assert_eq!(api.call("GET", &path, token, None).await.status, 404);
    assert_eq!(api.call("DELETE", &path, token, None).await.status, 404);
    // The name marker went with the role: the name can be used again.
    create(&api, "X.USED").await;
}

#[tokio::test]
async fn enable_and_disable_are_idempotent() {
    let api = TestApi::new().await;
    let token = Some(api.admin_token.as_str());
    let path = format!("/api/roles/{OWNER_UUID}/");
    for _ in 0..2 {
        let answer = api.call("POST", &format!("{path}disable/"), token, None).await;
        assert_eq!(
            (answer.status, &answer.json),
            (
                200,
                &json!({"detail": "The role CUSTOMER.OWNER has been disabled"})
            )
        );
        assert_eq!(api.call("GET", &path, None, None).await.json["is_active"], false);
    }
    let inactive = api.call("GET", "/api/roles/?is_active=false", None, None).await;
    assert_eq!(names(&inactive.json), ["CUSTOMER.OWNER"]);
    let answer = api.call("POST", &format!("{path}enable/"), token, None).await;
    assert_eq!(
        answer.json,
        json!({"detail": "The role CUSTOMER.OWNER has been enabled"})
    );
    assert_eq!(api.call("GET", &path, None, None).await.json["is_active"], true);
    let missing = api
        .call(
            "POST",
            "/api/roles/00000000000000000000000000000000/enable/",
            token,
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn every_change_leaves_an_audit_event() {
    let api = TestApi::new().await;
    let token = Some(api.admin_token.as_str());
    let role = create(&api, "X.AUDITED").await;
    let uuid = role["uuid"].as_str().unwrap();
    let path = format!("/api/roles/{uuid}/");
    api.call("PATCH", &path, token, Some(json!({"description": "x"})))
        .await;
    api.call("POST", &format!("{path}disable/"), token, None).await;
    api.call("POST", &format!("{path}enable/"), token, None).await;
    api.call("DELETE", &path, token, None).await;
    let mut events = audit_events(api.store(), uuid).await;
    events.sort();
    assert_eq!(
        events,
        [
            "role_created",
            "role_deleted",
            "role_disabled",
            "role_enabled",
            "role_updated"
        ]
    );
    // A refused change writes nothing.
    let before = audit_events(api.store(), OWNER_UUID).await.len();
    api.call(
        "PATCH",
        &format!("/api/roles/{OWNER_UUID}/"),
        token,
        Some(json!({"name": "NOPE"})),
    )
    .await;
    api.call("DELETE", &format!("/api/roles/{OWNER_UUID}/"), token, None)
        .await;
    assert_eq!(audit_events(api.store(), OWNER_UUID).await.len(), before);
}

#[tokio::test]
async fn concurrent_creates_of_one_name_make_one_role() {
    let api = TestApi::new().await;
    let answers = join_all((0..20).map(|_| {
        api.call(
            "POST",
            "/api/roles/",
            Some(&api.admin_token),
            Some(custom_role("X.RACE")),
        )
    }))
    .await;
    integration_tests::assert_race(&answers, &[201, 400], "concurrent creates of one name");
    let created = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    let list = api.call("GET", "/api/roles/?name=X.RACE", None, None).await;
    assert_eq!(list.header("x-result-count"), Some("1"));
}

#[tokio::test]
async fn concurrent_patches_lose_no_update() {
    let api = TestApi::new().await;
    let role = create(&api, "X.BUSY").await;
    let path = format!("/api/roles/{}/", role["uuid"].as_str().unwrap());
    let languages = ["et", "lt", "lv", "ru", "it", "de", "da", "sv"];
    let answers = join_all(languages.iter().map(|lang| {
        let body = json!({ format!("description_{lang}"): format!("text {lang}") });
        api.call("PATCH", &path, Some(&api.admin_token), Some(body))
    }))
    .await;
    let succeeded: Vec<&str> = languages
        .iter()
        .zip(&answers)
        .filter(|(_, a)| a.status == 200)
        .map(|(lang, _)| *lang)
        .collect();
    assert!(
        answers.iter().all(|a| a.status == 200 || a.status == 409),
        "{answers:?}"
    );
    let current = api.call("GET", &path, None, None).await.json;
    for lang in languages {
        let kept = current[format!("description_{lang}")] == json!(format!("text {lang}"));
        assert_eq!(
            kept,
            succeeded.contains(&lang),
            "{lang}: an answered change must persist, a refused one must not"
        );
    }
}

#[tokio::test]
async fn seeding_twice_changes_nothing() {
    let api = TestApi::new().await;
    let now = shared::time::now();
    assert_eq!(
        shared::roles::seed_system_roles(api.store(), &now).await.unwrap(),
        0
    );
    assert_eq!(
        api.call("GET", "/api/roles/", None, None)
            .await
            .header("x-result-count"),
        Some("12")
    );
}

#[tokio::test]
async fn a_new_token_replaces_the_old_one() {
    let api = TestApi::new().await;
    let now = shared::time::now();
    let old = api.admin_token.clone();
    let new = shared::users::issue_token(api.store(), None, &api.admin, &now)
        .await
        .unwrap();
    assert_eq!(api.call("GET", "/api/roles/", Some(&old), None).await.status, 401);
    assert_eq!(api.call("GET", "/api/roles/", Some(&new), None).await.status, 200);
}

#[tokio::test]
async fn an_unreachable_store_answers_503_quickly() {
    let api = TestApi::new().await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = TestApi {
        ctx: Context::new(Store::new(
            client_for(&format!("http://127.0.0.1:{closed_port}")),
            "none",
        )),
        router: api.router.clone(),
        admin: api.admin.clone(),
        admin_token: api.admin_token.clone(),
        round_trips: api.round_trips.clone(),
        token_keys: api.token_keys.clone(),
    };
    let started = Instant::now();
    let answer = dead.call("GET", "/api/roles/", None, None).await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(answer.json["detail"].is_string());
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}
