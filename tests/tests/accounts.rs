//! Accounts and tokens (issue "Accounts and tokens that behave as Waldur's do"): sliding token
//! lifetime, one token per user answered by every login, logout, the lockout, passwords,
//! deleting users, header details and impersonation, against DynamoDB Local.

use futures::future::join_all;
use integration_tests::consistency::assert_consistent;
use integration_tests::{Answer, TestApi};
use serde_json::{Value, json};
use shared::auth::TokenItem;
use shared::store::s;
use shared::users::User;

const PASSWORD: &str = "correct horse 1";

/// The token item of `user`, as stored.
async fn token_item(api: &TestApi, user: &User) -> TokenItem {
    let user = shared::users::get(api.store(), &user.uuid)
        .await
        .unwrap()
        .unwrap();
    let (pk, sk) = TokenItem::key(user.token_hash.as_deref().expect("a token"));
    api.store().get(&pk, &sk).await.unwrap().expect("the token item")
}

/// Moves the token's last use into the past, as time passing would.
async fn age_token(api: &TestApi, user: &User, seconds: i64) {
    let item = token_item(api, user).await;
    let past = shared::time::storage(&(shared::time::now() - chrono::Duration::seconds(seconds)));
    let store = api.store();
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("PK", s(item.pk))
        .key("SK", s(item.sk))
        .update_expression("SET last_used = :past")
        .expression_attribute_values(":past", s(past))
        .send()
        .await
        .unwrap();
}

async fn me(api: &TestApi, token: &str) -> Answer {
    api.call("GET", "/api/users/me/", Some(token), None).await
}

async fn login(api: &TestApi, username: &str, password: &str) -> Answer {
    let body = json!({"username": username, "password": password});
    api.call("POST", "/api-auth/password/", None, Some(body)).await
}

/// A user created through the API (so with the default lifetime of 3600 s), with a password.
async fn api_user(api: &TestApi, username: &str) -> (User, String) {
    let body =
        json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
    let created = api
        .call("POST", "/api/users/", Some(&api.admin_token), Some(body))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let answer = login(api, username, PASSWORD).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let user = shared::users::find_by_username(api.store(), username)
        .await
        .unwrap()
        .unwrap();
    (user, answer.json["token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_token_unused_for_its_lifetime_expires_and_use_keeps_it_alive() {
    let api = TestApi::new().await;
    let (alice, token) = api_user(&api, "alice").await;
    assert_eq!(
        alice.token_lifetime,
        Some(3600),
        "the default lifetime of new users"
    );

    // Used 50 minutes ago: still alive, and this use is written down (alongside the request).
    age_token(&api, &alice, 3000).await;
    assert_eq!(me(&api, &token).await.status, 200);
    let used = shared::time::parse_stored(&token_item(&api, &alice).await.last_used).unwrap();
    assert!(
        shared::time::now() - used < chrono::Duration::seconds(30),
        "last use refreshed"
    );
    assert_eq!(me(&api, &token).await.status, 200);

    // Unused for longer than its lifetime.
    age_token(&api, &alice, 3601).await;
    let expired = me(&api, &token).await;
    assert_eq!(
        (expired.status, &expired.json),
        (401, &json!({"detail": "Token has expired."}))
    );
    assert_eq!(expired.header("www-authenticate"), Some("Token"));
    // A login then answers a new token, which works.
    let renewed = login(&api, "alice", PASSWORD).await;
    let new_token = renewed.json["token"].as_str().unwrap();
    assert_ne!(new_token, token);
    assert_eq!(me(&api, new_token).await.status, 200);

    // The lifetime is the user's to change (and only the user sees it); null is never.
    let path = format!("/api/users/{}/", alice.uuid);
    let short = api
        .call(
            "PATCH",
            &path,
            Some(new_token),
            Some(json!({"token_lifetime": 59})),
        )
        .await;
    assert_eq!(
        (short.status, &short.json),
        (
            400,
            &json!({"token_lifetime": ["Ensure this value is greater than or equal to 60."]})
        )
    );
    let never = api
        .call(
            "PATCH",
            &path,
            Some(new_token),
            Some(json!({"token_lifetime": null})),
        )
        .await;
    assert_eq!(never.status, 200, "{}", never.text);
    assert_eq!(never.json["token_lifetime"], Value::Null);
    assert_eq!(never.json["token"], new_token);
    age_token(&api, &alice, 10 * 365 * 86400).await;
    assert_eq!(
        me(&api, new_token).await.status,
        200,
        "a token that never expires"
    );
}

#[tokio::test]
async fn every_login_answers_the_same_token_and_only_its_owner_sees_it() {
    let api = TestApi::new().await;
    let (alice, token) = api_user(&api, "alice").await;
    let again = login(&api, "alice", PASSWORD).await;
    assert_eq!(again.json["token"], token, "a second machine gets the same token");
    assert_eq!(
        me(&api, &token).await.status,
        200,
        "the first machine keeps working"
    );

    let own = me(&api, &token).await;
    assert_eq!(
        (own.json["token"].as_str(), &own.json["token_lifetime"]),
        (Some(token.as_str()), &json!(3600))
    );
    let detail = api
        .call("GET", &format!("/api/users/{}/", alice.uuid), Some(&token), None)
        .await;
    assert_eq!(detail.json["token"], token);
    let by_staff = api
        .call(
            "GET",
            &format!("/api/users/{}/", alice.uuid),
            Some(&api.admin_token),
            None,
        )
        .await;
    assert!(by_staff.json.get("token").is_none() && by_staff.json.get("token_lifetime").is_none());
    let list = api.call("GET", "/api/users/", Some(&token), None).await;
    for row in list.json.as_array().unwrap() {
        assert!(row.get("token").is_none(), "a list shows no token: {row}");
    }
    // refresh_token answers Waldur's UserAuthToken, and the old token stops working.
    let refreshed = api
        .call(
            "POST",
            &format!("/api/users/{}/refresh_token/", alice.uuid),
            Some(&token),
            None,
        )
        .await;
    for key in [
        "created",
        "token",
        "user_first_name",
        "user_last_name",
        "user_username",
        "user_is_active",
        "user_token_lifetime",
    ] {
        assert!(refreshed.json.get(key).is_some(), "{key}: {}", refreshed.text);
    }
    assert_eq!(me(&api, &token).await.status, 401);
    let head = api
        .call(
            "HEAD",
            "/api/users/me/",
            Some(refreshed.json["token"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(head.header("x-result-count"), Some("1"));
}

#[tokio::test]
async fn logout_ends_the_token() {
    let api = TestApi::new().await;
    let (_, token) = api_user(&api, "alice").await;
    let events = api.audit_events().await;
    let answer = api.call("POST", "/api-auth/logout/", Some(&token), None).await;
    assert_eq!((answer.status, answer.text.as_str()), (204, ""));
    assert_eq!(api.audit_events().await, events + 1, "logout is audited");
    let after = me(&api, &token).await;
    assert_eq!(
        (after.status, &after.json),
        (401, &json!({"detail": "Invalid token."}))
    );
    let fresh = login(&api, "alice", PASSWORD).await;
    assert_ne!(fresh.json["token"], token, "a new token after logout");
}

#[tokio::test]
async fn the_fifth_attempt_after_four_failures_is_locked_out() {
    let api = TestApi::new().await;
    api_user(&api, "alice").await;
    for username in ["alice", "nobody"] {
        for _ in 0..4 {
            let wrong = login(&api, username, "wrong password").await;
            assert_eq!(
                (wrong.status, &wrong.json),
                (401, &json!({"detail": "Invalid username/password."})),
                "{username}"
            );
        }
        // The right password too: the lockout is checked before the password.
        let locked = login(&api, username, PASSWORD).await;
        assert_eq!(
            (locked.status, &locked.json),
            (
                401,
                &json!({"detail": "Username is locked out. Try in 10 minutes."})
            ),
            "{username}: the same answer whether or not the user exists"
        );
    }
    // Simultaneous guesses cannot beat it.
    let answers = join_all((0..20).map(|_| login(&api, "bob", "guess"))).await;
    let locked = answers
        .iter()
        .filter(|a| a.json["detail"] == "Username is locked out. Try in 10 minutes.")
        .count();
    assert_eq!(locked, 16, "of 20 simultaneous guesses, 4 are checked");
}

#[tokio::test]
async fn passwords_are_changed_by_their_owner_or_staff_and_end_sessions() {
    let api = TestApi::new().await;
    let (alice, token) = api_user(&api, "alice").await;
    let (_, other) = api_user(&api, "mallory").await;
    let session = api.session("alice@example.com", PASSWORD).await;
    let path = format!("/api/users/{}/change_password/", alice.uuid);
    let weak = api
        .call("POST", &path, Some(&token), Some(json!({"new_password": "abc"})))
        .await;
    assert_eq!(
        (weak.status, &weak.json),
        (
            400,
            &json!({"new_password": ["Ensure this field has at least 7 characters.", "Ensure this field has at least one digit."]})
        )
    );
    let missing = api.call("POST", &path, Some(&token), Some(json!({}))).await;
    assert_eq!(missing.json, json!({"new_password": ["This field is required."]}));
    let by_other = api
        .call(
            "POST",
            &path,
            Some(&other),
            Some(json!({"new_password": "taken over 1"})),
        )
        .await;
    assert!(matches!(by_other.status, 403 | 404), "{}", by_other.text);
    let changed = api
        .call(
            "POST",
            &path,
            Some(&token),
            Some(json!({"new_password": "new secret 2"})),
        )
        .await;
    assert_eq!(
        (changed.status, &changed.json),
        (200, &json!({"detail": "Password has been successfully updated."}))
    );
    assert_eq!(login(&api, "alice", PASSWORD).await.status, 401);
    assert_eq!(login(&api, "alice", "new secret 2").await.status, 200);
    let ended = api
        .with_session("GET", "/api/v1/workspaces/", &session, None)
        .await;
    assert_eq!(ended.status, 401, "sessions end with the password change");
    let by_staff = api
        .call(
            "POST",
            &path,
            Some(&api.admin_token),
            Some(json!({"new_password": "staff set 3"})),
        )
        .await;
    assert_eq!(by_staff.status, 200);
}

#[tokio::test]
async fn deleting_a_user_ends_their_access_and_revokes_every_grant() {
    let api = TestApi::new().await;
    let (alice, token) = api_user(&api, "alice").await;
    let (_, plain) = api_user(&api, "plain").await;
    let session = api.session("alice@example.com", PASSWORD).await;
    // More grants than one transaction revokes.
    let (customer, _) = api.customer_with_project("Org", "P0").await;
    let customer_path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
    api.grant(&customer_path, &alice.uuid, "CUSTOMER.OWNER").await;
    for i in 1..20 {
        let body = json!({"name": format!("P{i}"), "customer": customer["url"]});
        let project = api
            .call("POST", "/api/projects/", Some(&api.admin_token), Some(body))
            .await;
        let path = format!("/api/projects/{}/", project.json["uuid"].as_str().unwrap());
        api.grant(&path, &alice.uuid, "PROJECT.MEMBER").await;
    }
    let path = format!("/api/users/{}/", alice.uuid);
    assert_eq!(
        api.call("DELETE", &path, Some(&plain), None).await.status,
        404,
        "invisible to a plain user"
    );
    assert_eq!(
        api.call("DELETE", &path, Some(&token), None).await.status,
        403,
        "not even on herself"
    );
    let events = api.audit_events().await;
    let deleted = api.call("DELETE", &path, Some(&api.admin_token), None).await;
    assert_eq!((deleted.status, deleted.text.as_str()), (204, ""));
    assert_eq!(
        api.audit_events().await - events,
        20 + 2,
        "each revocation, start and end"
    );
    assert_eq!(me(&api, &token).await.status, 401);
    assert_eq!(
        api.with_session("GET", "/api/v1/workspaces/", &session, None)
            .await
            .status,
        401
    );
    assert_eq!(
        api.call("GET", &path, Some(&api.admin_token), None).await.status,
        404
    );
    let members = api
        .call(
            "GET",
            &format!("{customer_path}list_users/"),
            Some(&api.admin_token),
            None,
        )
        .await;
    assert_eq!(members.header("x-result-count"), Some("0"), "{}", members.text);
    assert_consistent(&api).await;
    // The username is free again.
    api_user(&api, "alice").await;
}

#[tokio::test]
async fn a_dump_of_the_table_holds_no_usable_token() {
    let api = TestApi::new().await;
    let (alice_user, alice) = api_user(&api, "alice").await;
    let (bob_user, bob) = api_user(&api, "bob").await;
    let dump: Vec<String> = api.all_items().await.iter().map(Value::to_string).collect();
    for token in [&alice, &bob, &api.admin_token] {
        // A key names its user in its first 32 digits; the 40 after them are the secret.
        let secret = &token[32..];
        assert_eq!(secret.len(), 40);
        assert!(
            !dump.iter().any(|item| item.contains(secret)),
            "a token's secret in clear"
        );
    }
    // Every 40-hex string of the dump, tried as a token alone and after a user's uuid (the shape
    // of this service's keys): none authenticates.
    let mut candidates: Vec<String> = Vec::new();
    for item in &dump {
        let bytes = item.as_bytes();
        for start in 0..bytes.len().saturating_sub(39) {
            let window = &item[start..start + 40];
            if window
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                candidates.push(window.to_owned());
            }
        }
    }
    candidates.sort();
    candidates.dedup();
    assert!(!candidates.is_empty(), "the dump has hex strings to try");
    for candidate in candidates.iter().take(400) {
        assert_eq!(me(&api, candidate).await.status, 401, "{candidate} authenticates");
    }
    for user in [&alice_user, &bob_user] {
        for candidate in candidates.iter().take(200) {
            let named = format!("{}{candidate}", user.uuid);
            assert_eq!(me(&api, &named).await.status, 401, "{named} authenticates");
        }
    }
}

#[tokio::test]
async fn header_details_follow_waldur() {
    let api = TestApi::new().await;
    let (_, token) = api_user(&api, "alice").await;
    let bare = api
        .call_with_headers("GET", "/api/users/me/", &[("authorization", "Token")], None)
        .await;
    assert_eq!(
        (bare.status, &bare.json),
        (401, &json!({"detail": "Invalid token. No credentials provided."}))
    );
    let query = api
        .call("GET", &format!("/api/users/me/?x-auth-token={token}"), None, None)
        .await;
    assert_eq!(query.status, 401, "?x-auth-token= never authenticates");
}

#[tokio::test]
async fn staff_impersonation_acts_as_the_user_and_is_audited_as_both() {
    let api = TestApi::new().await;
    let (alice, alice_token) = api_user(&api, "alice").await;
    let as_alice = |path: String, token: String, method: &'static str, body: Option<Value>| {
        let api = &api;
        let uuid = alice.uuid.to_string();
        async move {
            let bearer = format!("Token {token}");
            api.call_with_headers(
                method,
                &path,
                &[("authorization", &bearer), ("x-impersonated-user-uuid", &uuid)],
                body,
            )
            .await
        }
    };
    let me_as = as_alice("/api/users/me/".into(), api.admin_token.clone(), "GET", None).await;
    assert_eq!(me_as.json["username"], "alice", "{}", me_as.text);
    // Ignored for a non-staff token and for an unknown uuid.
    let (_, plain) = api_user(&api, "plain").await;
    assert_eq!(
        as_alice("/api/users/me/".into(), plain, "GET", None).await.json["username"],
        "plain"
    );
    let unknown = api
        .call_with_headers(
            "GET",
            "/api/users/me/",
            &[
                ("authorization", &format!("Token {}", api.admin_token)),
                ("x-impersonated-user-uuid", "ffffffffffffffffffffffffffffffff"),
            ],
            None,
        )
        .await;
    assert_eq!(unknown.json["username"], "admin");
    let path = format!("/api/users/{}/", alice.uuid);
    let changed = as_alice(
        path,
        api.admin_token.clone(),
        "PATCH",
        Some(json!({"first_name": "Alicia"})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let event = api
        .all_items()
        .await
        .into_iter()
        .find(|item| item["event_type"] == "user_updated")
        .expect("the change's audit event");
    assert_eq!(event["actor_uuid"], alice.uuid.to_string());
    assert_eq!(event["impersonator_uuid"], api.admin.uuid.to_string());
    assert_eq!(event["impersonator_username"], "admin");
    assert_eq!(me(&api, &alice_token).await.json["first_name"], "Alicia");
}
