//! Session login, workspaces and workspace permissions against DynamoDB Local.

use futures::future::join_all;
use integration_tests::{Answer, TestApi, assert_race};
use serde_json::{Value, json};
use shared::store::s;
use shared::users::User;

const PASSWORD: &str = "correct horse battery";

async fn with_password(api: &TestApi, name: &str) -> (User, String) {
    let (user, token) = api.user(name, false, false).await;
    shared::users::set_password(api.store(), None, &user, PASSWORD, &shared::time::now())
        .await
        .unwrap();
    (user, token)
}

/// A request with the session cookie instead of a token.
async fn with_cookie(api: &TestApi, method: &str, path: &str, cookie: &str, body: Option<Value>) -> Answer {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("http://testserver{path}"))
        .header("host", "testserver")
        .header("cookie", format!("sessionid={cookie}"));
    let body = match body {
        Some(value) => {
            builder = builder.header("content-type", "application/json");
            lambda_http::Body::Text(value.to_string())
        }
        None => lambda_http::Body::Empty,
    };
    api.send(builder.body(body).unwrap()).await
}

async fn login(api: &TestApi, email: &str, password: &str) -> Answer {
    api.call(
        "POST",
        "/api/v1/auth/",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

fn session_of(answer: &Answer) -> String {
    let cookie = answer.header("set-cookie").expect("a session cookie");
    cookie
        .trim_start_matches("sessionid=")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn session_login_and_logout() {
    let api = TestApi::new().await;
    let (alice, _) = with_password(&api, "alice").await;
    let methods = api.call("GET", "/api/v1/auth/", None, None).await;
    assert_eq!(methods.json["username_password_enabled"], true);
    assert_eq!(methods.json["oidc_providers"], json!([]));
    assert!(methods.json["session_timeout"].as_i64().unwrap() > 0);

    let answer = login(&api, "ALICE@example.com", PASSWORD).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(
        answer.json,
        json!({"new_password_required": false, "pk": alice.pk})
    );
    let cookie = answer.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let session = session_of(&answer);
    assert_eq!(
        with_cookie(&api, "GET", "/api/v1/workspaces/", &session, None)
            .await
            .status,
        200
    );

    for (email, password) in [
        ("alice@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
    ] {
        let refused = login(&api, email, password).await;
        assert_eq!(
            (refused.status, &refused.json),
            (400, &json!({"non_field_errors": ["Invalid credentials."]}))
        );
    }
    let invalid = api
        .call(
            "POST",
            "/api/v1/auth/",
            None,
            Some(json!({"email": "x", "password": "short"})),
        )
        .await;
    assert_eq!(invalid.status, 400);
    assert!(invalid.json["email"].is_array() && invalid.json["password"].is_array());

    let out = with_cookie(&api, "DELETE", "/api/v1/auth/", &session, None).await;
    assert_eq!((out.status, &out.json), (200, &json!({"status": "OK"})));
    assert_eq!(
        with_cookie(&api, "GET", "/api/v1/workspaces/", &session, None)
            .await
            .status,
        401
    );
    let stale = with_cookie(
        &api,
        "POST",
        "/api/v1/auth/",
        &session,
        Some(json!({"email": "alice@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(stale.status, 401, "an old session sent with the login is refused");
}

#[tokio::test]
async fn guessing_passwords_is_throttled() {
    let api = TestApi::new().await;
    with_password(&api, "alice").await;
    for _ in 0..10 {
        assert_eq!(
            login(&api, "alice@example.com", "not the password").await.status,
            400
        );
    }
    let throttled = login(&api, "alice@example.com", PASSWORD).await;
    assert_eq!(throttled.status, 429, "{}", throttled.text);
    assert!(throttled.json["detail"].is_string());
}

#[tokio::test]
async fn sessions_expire() {
    let api = TestApi::new().await;
    with_password(&api, "alice").await;
    let session = session_of(&login(&api, "alice@example.com", PASSWORD).await);
    let store = api.store();
    let hash = shared::auth::token_hash(&session);
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("PK", s(format!("SESSION#{hash}")))
        .key("SK", s("#META"))
        .update_expression("SET expires = :past")
        .expression_attribute_values(":past", s("2020-01-01T00:00:00.000000Z"))
        .send()
        .await
        .unwrap();
    let expired = with_cookie(&api, "GET", "/api/v1/workspaces/", &session, None).await;
    assert_eq!(expired.status, 401);
}

#[tokio::test]
async fn one_owner_per_workspace() {
    let api = TestApi::new().await;
    let (_, alice) = with_password(&api, "alice").await;
    let (bob, bob_token) = with_password(&api, "bob").await;
    let (carol, carol_token) = with_password(&api, "carol").await;
    let created = api
        .call(
            "POST",
            "/api/v1/workspaces/",
            Some(&alice),
            Some(json!({"name": "Data"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let workspace = created.json["id"].as_i64().unwrap();
    assert_eq!(created.json["permissions"][0]["role"], "OWNER");
    assert_eq!(created.json["permissions"][0]["data_access"], true);

    let share = |user: i64, role: &str| json!({"workspace": workspace, "user": user, "role": role, "data_access": false});
    let shared = api
        .call(
            "POST",
            "/api/v1/workspace_permissions/",
            Some(&alice),
            Some(share(bob.pk, "EDITOR")),
        )
        .await;
    assert_eq!(shared.status, 201, "{}", shared.text);
    assert_eq!(shared.json["role"], "EDITOR");
    let bob_permission = format!("/api/v1/workspace_permissions/{}/", shared.json["pk"]);

    let by_editor = api
        .call(
            "POST",
            "/api/v1/workspace_permissions/",
            Some(&bob_token),
            Some(share(carol.pk, "READER")),
        )
        .await;
    assert_eq!(by_editor.status, 403, "only the owner shares");
    assert_eq!(
        api.call(
            "GET",
            &format!("/api/v1/workspaces/{workspace}/"),
            Some(&carol_token),
            None
        )
        .await
        .status,
        404
    );
    let second_owner = api
        .call(
            "POST",
            "/api/v1/workspace_permissions/",
            Some(&alice),
            Some(share(carol.pk, "OWNER")),
        )
        .await;
    assert_eq!(second_owner.status, 400);
    let twice = api
        .call(
            "POST",
            "/api/v1/workspace_permissions/",
            Some(&alice),
            Some(share(bob.pk, "READER")),
        )
        .await;
    assert_eq!(
        twice.json,
        json!({"non_field_errors": ["The user already has a permission on this workspace."]})
    );
    let promote = api
        .call(
            "PATCH",
            &bob_permission,
            Some(&alice),
            Some(json!({"role": "OWNER"})),
        )
        .await;
    assert_eq!(promote.status, 400);

    let listed = api
        .call(
            "GET",
            &format!("/api/v1/workspace_permissions/?workspace={workspace}"),
            Some(&bob_token),
            None,
        )
        .await;
    let owner_permission = listed
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "OWNER")
        .unwrap()
        .clone();
    let owner_path = format!("/api/v1/workspace_permissions/{}/", owner_permission["pk"]);
    assert_eq!(
        api.call("DELETE", &owner_path, Some(&alice), None).await.status,
        400
    );
    let demote = api
        .call(
            "PATCH",
            &owner_path,
            Some(&alice),
            Some(json!({"data_access": false})),
        )
        .await;
    assert_eq!(demote.status, 400, "the owner always has data access");

    let changed = api
        .call(
            "PATCH",
            &bob_permission,
            Some(&alice),
            Some(json!({"role": "READER", "data_access": true})),
        )
        .await;
    assert_eq!(
        (
            changed.json["role"].as_str(),
            changed.json["data_access"].as_bool()
        ),
        (Some("READER"), Some(true))
    );
    assert_eq!(
        api.call("GET", &bob_permission, Some(&bob_token), None)
            .await
            .json["role"],
        "READER"
    );
    assert_eq!(
        api.call("DELETE", &bob_permission, Some(&alice), None)
            .await
            .status,
        204
    );
    assert_eq!(
        api.call(
            "GET",
            &format!("/api/v1/workspaces/{workspace}/"),
            Some(&bob_token),
            None
        )
        .await
        .status,
        404
    );
}

async fn workspace_of(api: &TestApi, token: &str, name: &str) -> i64 {
    let created = api
        .call(
            "POST",
            "/api/v1/workspaces/",
            Some(token),
            Some(json!({"name": name})),
        )
        .await;
    created.json["id"].as_i64().unwrap()
}

async fn roles_in(api: &TestApi, workspace: i64) -> Vec<(i64, String)> {
    let (_, permissions) = shared::workspaces::get(api.store(), workspace)
        .await
        .unwrap()
        .unwrap();
    let mut roles: Vec<(i64, String)> = permissions
        .into_iter()
        .map(|p| (p.user, p.role.as_str().to_owned()))
        .collect();
    roles.sort();
    roles
}

#[tokio::test]
async fn transfers_are_all_or_nothing() {
    let api = TestApi::new().await;
    let (alice, alice_token) = with_password(&api, "alice").await;
    let (bob, _) = with_password(&api, "bob").await;
    let (_, carol_token) = with_password(&api, "carol").await;
    let first = workspace_of(&api, &alice_token, "One").await;
    let second = workspace_of(&api, &alice_token, "Two").await;
    let foreign = workspace_of(&api, &carol_token, "Carol's").await;

    let body = |workspaces: Vec<i64>| json!({"role": "EDITOR", "workspaces": workspaces, "new_owner": "bob@example.com"});
    let refused = api
        .call(
            "PATCH",
            "/api/v1/workspace_permissions/transfer/",
            Some(&alice_token),
            Some(body(vec![first, foreign])),
        )
        .await;
    assert_eq!(
        refused.status, 404,
        "a workspace alice cannot see: {}",
        refused.text
    );
    let share = json!({"workspace": foreign, "user": alice.pk, "role": "READER"});
    assert_eq!(
        api.call(
            "POST",
            "/api/v1/workspace_permissions/",
            Some(&carol_token),
            Some(share)
        )
        .await
        .status,
        201
    );
    let forbidden = api
        .call(
            "PATCH",
            "/api/v1/workspace_permissions/transfer/",
            Some(&alice_token),
            Some(body(vec![first, foreign])),
        )
        .await;
    assert_eq!(forbidden.status, 403, "a workspace alice sees but does not own");
    assert_eq!(
        roles_in(&api, first).await,
        [(alice.pk, "OWNER".to_owned())],
        "nothing changed"
    );

    let moved = api
        .call(
            "PATCH",
            "/api/v1/workspace_permissions/transfer/",
            Some(&alice_token),
            Some(body(vec![first, second])),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(moved.json.as_array().unwrap().len(), 4);
    for workspace in [first, second] {
        assert_eq!(
            roles_in(&api, workspace).await,
            [(alice.pk, "EDITOR".to_owned()), (bob.pk, "OWNER".to_owned())]
        );
    }
    let unknown = json!({"role": "READER", "workspaces": [first], "new_owner": "nobody@example.com"});
    let refused = api
        .call(
            "PATCH",
            "/api/v1/workspace_permissions/transfer/",
            Some(&api.admin_token),
            Some(unknown),
        )
        .await;
    assert_eq!(refused.status, 400);
}

#[tokio::test]
async fn concurrent_transfers_leave_one_owner() {
    let api = TestApi::new().await;
    let (_, alice_token) = with_password(&api, "alice").await;
    let workspace = workspace_of(&api, &alice_token, "Contested").await;
    let mut heirs = Vec::new();
    for i in 0..20 {
        heirs.push(api.user(&format!("heir{i}"), false, false).await.0);
    }
    let answers = join_all(heirs.iter().map(|heir| {
        let body = json!({"role": "READER", "workspaces": [workspace], "new_owner": heir.email});
        api.call(
            "PATCH",
            "/api/v1/workspace_permissions/transfer/",
            Some(&alice_token),
            Some(body),
        )
    }))
    .await;
    // A loser that read the workspace after the winner committed is told it lost (409), as
    // one whose transaction failed its condition is.
    assert_race(&answers, &[200, 409], "concurrent transfers");
    let won = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        won,
        1,
        "{:?}",
        answers.iter().map(|a| (a.status, &a.text)).collect::<Vec<_>>()
    );
    let roles = roles_in(&api, workspace).await;
    assert_eq!(
        roles.iter().filter(|(_, role)| role == "OWNER").count(),
        1,
        "{roles:?}"
    );
    let (found, _) = shared::workspaces::get(api.store(), workspace)
        .await
        .unwrap()
        .unwrap();
    let owner = roles.iter().find(|(_, role)| role == "OWNER").unwrap().0;
    assert_eq!(found.owner_user_pk, owner);
}

#[tokio::test]
async fn only_the_owner_deletes_a_workspace() {
    let api = TestApi::new().await;
    let (_, alice_token) = with_password(&api, "alice").await;
    let (bob, bob_token) = with_password(&api, "bob").await;
    let workspace = workspace_of(&api, &alice_token, "Doomed").await;
    let share = json!({"workspace": workspace, "user": bob.pk, "role": "EDITOR"});
    assert_eq!(
        api.call(
            "POST",
            "/api/v1/workspace_permissions/",
            Some(&alice_token),
            Some(share)
        )
        .await
        .status,
        201
    );
    let path = format!("/api/v1/workspaces/{workspace}/");
    assert_eq!(
        api.call("DELETE", &path, Some(&bob_token), None).await.status,
        403
    );
    assert_eq!(
        api.call("DELETE", &path, Some(&alice_token), None).await.status,
        204
    );
    assert_eq!(api.call("GET", &path, Some(&alice_token), None).await.status, 404);
    let left = api
        .call("GET", "/api/v1/workspace_permissions/", Some(&bob_token), None)
        .await;
    assert_eq!(left.json, json!([]), "its permissions went with it");
}
