//! The official client's operations beyond the seeds' (issue 22), as flows across requests:
//! moving a project, a grant row's revoke and restore, the e-mail change by a mailed code,
//! editing and deleting invitations and requests, a user's token and password, a project's
//! other users, slug and actions, a customer's contact details.

use integration_tests::consistency::assert_consistent;
use integration_tests::{Answer, TestApi};
use serde_json::{Value, json};
use shared::store::s;

const MEMBER_ROLE: &str = "9c9547bad0d742adafd4d54ef992e605";
const MANAGER_ROLE: &str = "PROJECT.MANAGER";

fn uuid_of(value: &Value) -> String {
    value["uuid"].as_str().expect("a uuid").to_owned()
}

async fn staff(api: &TestApi, method: &str, path: &str, body: Option<Value>) -> Answer {
    api.call(method, path, Some(&api.admin_token), body).await
}

/// The `users_count` and `projects_count` of a customer, as staff reads them.
async fn customer_counts(api: &TestApi, customer: &str) -> (i64, i64) {
    let answer = staff(api, "GET", &format!("/api/customers/{customer}/"), None).await;
    (
        answer.json["users_count"].as_i64().unwrap(),
        answer.json["projects_count"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn a_moved_project_takes_its_grants_counts_invitations_and_requests_along() {
    let api = TestApi::new().await;
    let (from, project) = api.customer_with_project("Acme", "Genome").await;
    let (to, _) = api.customer_with_project("Beta", "Robotics").await;
    let (from, to, project) = (uuid_of(&from), uuid_of(&to), uuid_of(&project));
    let project_path = format!("/api/projects/{project}/");
    let (pam, pam_token) = api.user("pam", false, false).await;
    let (mia, _) = api.user("mia", false, false).await;
    let (olivia, olivia_token) = api.user("olivia", false, false).await;
    api.grant(&project_path, &pam.uuid, MANAGER_ROLE).await;
    api.grant(&project_path, &mia.uuid, "PROJECT.MEMBER").await;
    // Olivia owns Acme: she stays in Acme's count after the move.
    api.grant(&format!("/api/customers/{from}/"), &olivia.uuid, "CUSTOMER.OWNER")
        .await;
    api.grant(&project_path, &olivia.uuid, "PROJECT.ADMIN").await;
    let offer = json!({"scope": format!("http://testserver{project_path}"), "role": MEMBER_ROLE});
    let invitation = api
        .call(
            "POST",
            "/api/user-group-invitations/",
            Some(&pam_token),
            Some(offer),
        )
        .await;
    assert_eq!(invitation.status, 201, "{}", invitation.text);
    let (_, nina_token) = api.user("nina", false, false).await;
    let request = api
        .call(
            "POST",
            &format!(
                "/api/user-group-invitations/{}/submit_request/",
                uuid_of(&invitation.json)
            ),
            Some(&nina_token),
            None,
        )
        .await;
    assert_eq!(request.status, 200, "{}", request.text);
    assert_eq!(customer_counts(&api, &from).await, (3, 1));
    assert_eq!(customer_counts(&api, &to).await, (0, 1));
    // A review of Acme, opened before the move, covers the project's grants.
    let store = api.store();
    let acme = shared::scopes::get_scope(
        store,
        shared::roles::ContentType::Customer,
        &shared::ids::Id::parse(&from).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    let now = shared::time::now();
    let review = shared::reviews::open(store, &acme, &now, &now)
        .await
        .unwrap()
        .unwrap();

    let to_url = format!("http://testserver/api/customers/{to}/");
    let move_body = |preserve: bool| Some(json!({"customer": to_url, "preserve_permissions": preserve}));
    let path = format!("{project_path}move_project/");
    let refused = api
        .call("POST", &path, Some(&olivia_token), move_body(true))
        .await;
    assert_eq!(refused.status, 403, "only staff move projects: {}", refused.text);
    let moved = staff(&api, "POST", &path, move_body(true)).await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(moved.json["customer_uuid"], json!(to));
    assert_eq!(moved.json["customer_name"], json!("Beta"));

    // Olivia keeps Acme (her owner grant); pam and mia leave it; all three join Beta.
    assert_eq!(customer_counts(&api, &from).await, (1, 0));
    assert_eq!(customer_counts(&api, &to).await, (3, 2));
    let members = staff(&api, "GET", &format!("{project_path}list_users/"), None).await;
    assert_eq!(members.json.as_array().unwrap().len(), 3, "{}", members.text);
    // The grants answer under the new customer: pam manages the project as before, and her
    // permission rows name Beta.
    let pam_view = api
        .call(
            "GET",
            &format!("/api/users/{}/", pam.uuid),
            Some(&pam_token),
            None,
        )
        .await;
    assert_eq!(
        pam_view.json["project_permissions"][0]["customer_name"],
        json!("Beta")
    );
    let invitations = api
        .call(
            "GET",
            &format!("/api/user-group-invitations/?customer_uuid={to}"),
            Some(&pam_token),
            None,
        )
        .await;
    assert_eq!(
        invitations.json.as_array().unwrap().len(),
        1,
        "{}",
        invitations.text
    );
    let requests = staff(
        &api,
        "GET",
        &format!("/api/user-permission-requests/?customer_uuid={to}"),
        None,
    )
    .await;
    assert_eq!(requests.json.as_array().unwrap().len(), 1, "{}", requests.text);
    // Acme's owner may no longer decide on the moved project's grants from Acme's review.
    let revoke = api
        .call(
            "POST",
            &format!("/api/customer-permissions-reviews/{}/revoke/", review.uuid),
            Some(&olivia_token),
            Some(json!({"user": mia.uuid, "role": "PROJECT.MEMBER", "scope": project})),
        )
        .await;
    assert_eq!(revoke.status, 400, "{}", revoke.text);
    assert_eq!(
        revoke.json,
        json!(["This grant is no longer in this organization."])
    );
    assert_consistent(&api).await;

    let same = staff(&api, "POST", &path, move_body(true)).await;
    assert_eq!(same.status, 400, "{}", same.text);
    // Back to Acme without its permissions: every grant of the project is revoked first.
    let back = staff(
        &api,
        "POST",
        &path,
        Some(json!({"customer": format!("http://testserver/api/customers/{from}/"), "preserve_permissions": false})),
    )
    .await;
    assert_eq!(back.status, 200, "{}", back.text);
    let members = staff(&api, "GET", &format!("{project_path}list_users/"), None).await;
    assert_eq!(members.json, json!([]));
    assert_eq!(customer_counts(&api, &from).await, (1, 1));
    assert_eq!(customer_counts(&api, &to).await, (0, 1));
    assert_consistent(&api).await;
}

#[tokio::test]
async fn a_grant_row_is_revoked_and_restored_with_the_rights_of_delete_user_and_add_user() {
    let api = TestApi::new().await;
    let (_, project) = api.customer_with_project("Acme", "Genome").await;
    let (_, other) = api.customer_with_project("Beta", "Robotics").await;
    let project_path = format!("/api/projects/{}/", uuid_of(&project));
    let (pam, pam_token) = api.user("pam", false, false).await;
    let (mia, _) = api.user("mia", false, false).await;
    let (stranger, stranger_token) = api.user("stranger", false, false).await;
    api.grant(&project_path, &pam.uuid, MANAGER_ROLE).await;
    api.grant(&project_path, &mia.uuid, "PROJECT.MEMBER").await;
    api.grant(
        &format!("/api/projects/{}/", uuid_of(&other)),
        &stranger.uuid,
        MANAGER_ROLE,
    )
    .await;
    let mia_item = shared::users::get(api.store(), &mia.uuid).await.unwrap().unwrap();
    let row = shared::grants::held_by(&mia_item).remove(0).uuid;
    let act = |token: String, action: &'static str| {
        let api = &api;
        async move {
            api.call(
                "POST",
                &format!("/api/user-permissions/{row}/{action}/"),
                Some(&token),
                Some(json!({"reason": "tested"})),
            )
            .await
        }
    };
    let listed = async || {
        staff(&api, "GET", &format!("{project_path}list_users/"), None)
            .await
            .json
            .as_array()
            .unwrap()
            .len()
    };
    // A manager of another project cannot see the row.
    assert_eq!(act(stranger_token.clone(), "revoke").await.status, 404);
    let cases = [
        ("revoke", 200, Value::Null, 1),
        ("revoke", 400, json!(["Role is already revoked."]), 1),
        ("restore", 200, Value::Null, 2),
        // The restore made a new grant (a new row); the revoked row stays in the history.
        (
            "restore",
            400,
            json!(["An active grant for this role already exists."]),
            2,
        ),
        ("revoke", 400, json!(["Role is already revoked."]), 2),
    ];
    for (action, status, body, members) in cases {
        let answer = act(pam_token.clone(), action).await;
        assert_eq!(answer.status, status, "{action}: {}", answer.text);
        assert_eq!(answer.json, body, "{action}");
        assert_eq!(listed().await, members, "members after {action}");
    }
    assert_consistent(&api).await;
}

#[tokio::test]
async fn an_email_change_is_confirmed_once_by_the_code_mailed_to_the_new_address() {
    let api = TestApi::new().await;
    let (bob, bob_token) = api.user("bob", false, false).await;
    let (carol, _) = api.user("carol", false, false).await;
    let path = format!("/api/users/{}/", bob.uuid);
    let ask = async |email: &str| {
        api.call(
            "POST",
            &format!("{path}change_email/"),
            Some(&bob_token),
            Some(json!({ "email": email })),
        )
        .await
    };
    let taken = ask(&carol.email).await;
    assert_eq!(taken.status, 400, "{}", taken.text);
    assert_eq!(
        taken.json,
        json!({"email": ["User with this email already exists."]})
    );
    assert_eq!(ask("not-an-address").await.status, 400);

    assert_eq!(ask("bob.first@example.org").await.status, 200);
    let cancel = async || {
        api.call(
            "POST",
            &format!("{path}cancel_change_email/"),
            Some(&bob_token),
            None,
        )
        .await
        .json["detail"]
            .clone()
    };
    assert_eq!(
        cancel().await,
        json!("The change email request has been successfully deleted.")
    );
    assert_eq!(
        cancel().await,
        json!("The change email request has not been found.")
    );

    let asked = ask("bob.new@example.org").await;
    assert_eq!(
        asked.json,
        json!({"detail": "The change email request has been successfully created."})
    );
    // The code went to the new address through the outbox.
    let items = api.all_items().await;
    let mail = items
        .iter()
        .rev()
        .find(|item| item["entity"] == "outbox" && item["recipients"]["email"] == "bob.new@example.org")
        .expect("a mail to the new address");
    let code = mail["payload"]["code"].as_str().unwrap().to_owned();
    let confirm = async |code: &str| {
        api.call(
            "POST",
            "/api/users/confirm_email/",
            None,
            Some(json!({ "code": code })),
        )
        .await
    };
    assert_eq!(
        confirm("not a code").await.json,
        json!(["The confirmation code is required."])
    );
    let confirmed = confirm(&code).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let me = api.call("GET", "/api/users/me/", Some(&bob_token), None).await;
    assert_eq!(me.json["email"], json!("bob.new@example.org"));
    assert_eq!(confirm(&code).await.status, 404, "a code confirms once");

    // A code older than a day has expired.
    assert_eq!(ask("bob.late@example.org").await.status, 200);
    let code = shared::users::get(api.store(), &bob.uuid)
        .await
        .unwrap()
        .unwrap()
        .email_change
        .unwrap();
    api.store()
        .client()
        .update_item()
        .table_name(api.store().table())
        .key("PK", s(format!("EMAILCHANGE#{code}")))
        .key("SK", s("#META"))
        .update_expression("SET created = :old")
        .expression_attribute_values(":old", s("2020-01-01T00:00:00.000000Z"))
        .send()
        .await
        .unwrap();
    let late = confirm(&code.to_string()).await;
    assert_eq!((late.status, late.json), (400, json!(["Request has expired."])));
}

#[tokio::test]
async fn invitations_are_edited_while_active_and_deleted_once_canceled() {
    let api = TestApi::new().await;
    let (_, project) = api.customer_with_project("Acme", "Genome").await;
    let project_path = format!("/api/projects/{}/", uuid_of(&project));
    let project_url = format!("http://testserver{project_path}");
    let (pam, pam_token) = api.user("pam", false, false).await;
    api.grant(&project_path, &pam.uuid, MANAGER_ROLE).await;
    let created = api
        .call(
            "POST",
            "/api/user-group-invitations/",
            Some(&pam_token),
            Some(json!({"scope": project_url, "role": MEMBER_ROLE})),
        )
        .await;
    let path = format!("/api/user-group-invitations/{}/", uuid_of(&created.json));
    let call = async |method: &str, suffix: &str, body: Option<Value>| {
        api.call(method, &format!("{path}{suffix}"), Some(&pam_token), body)
            .await
    };
    let patched = call("PATCH", "", Some(json!({"custom_text": "Welcome"}))).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json["custom_text"], json!("Welcome"));
    assert_eq!(
        patched.json["role"],
        json!(MEMBER_ROLE),
        "the terms not sent are kept"
    );
    // A project manager may not offer the owner's role of the customer.
    let customer_url = project["customer"].clone();
    let escalated = call(
        "PUT",
        "",
        Some(json!({"scope": customer_url, "role": "afab8022f4df457fba97346cd4c6a4a1"})),
    )
    .await;
    assert_eq!(escalated.status, 403, "{}", escalated.text);
    let early = call("DELETE", "", None).await;
    assert_eq!(early.json, json!(["Only canceled invitation can be deleted."]));
    assert_eq!(call("POST", "cancel/", None).await.status, 200);
    let late = call("PATCH", "", Some(json!({"custom_text": "Too late"}))).await;
    assert_eq!(late.json, json!(["Only active invitations can be edited."]));
    assert_eq!(call("DELETE", "", None).await.status, 204);
    assert_eq!(call("GET", "", None).await.status, 404);
}

#[tokio::test]
async fn staff_delete_a_request_and_its_requester_may_ask_again() {
    let api = TestApi::new().await;
    let (_, project) = api.customer_with_project("Acme", "Genome").await;
    let project_url = format!("http://testserver/api/projects/{}/", uuid_of(&project));
    let invitation = staff(
        &api,
        "POST",
        "/api/user-group-invitations/",
        Some(json!({"scope": project_url, "role": MEMBER_ROLE})),
    )
    .await;
    let submit = format!(
        "/api/user-group-invitations/{}/submit_request/",
        uuid_of(&invitation.json)
    );
    let (_, nina_token) = api.user("nina", false, false).await;
    let request = api.call("POST", &submit, Some(&nina_token), None).await;
    let path = format!("/api/user-permission-requests/{}/", uuid_of(&request.json));
    assert_eq!(
        api.call("DELETE", &path, Some(&nina_token), None).await.status,
        403
    );
    assert_eq!(staff(&api, "DELETE", &path, None).await.status, 204);
    assert_eq!(staff(&api, "GET", &path, None).await.status, 404);
    let again = api.call("POST", &submit, Some(&nina_token), None).await;
    assert_eq!(
        again.status, 200,
        "the open-request slot was freed: {}",
        again.text
    );
}

#[tokio::test]
async fn staff_read_a_users_token_and_remove_a_password() {
    let api = TestApi::new().await;
    let (bob, bob_token) = api.user_with_password("bob", "first secret 1").await;
    let path = format!("/api/users/{}/", bob.uuid);
    let token = staff(&api, "GET", &format!("{path}token/"), None).await;
    assert_eq!(token.status, 200, "{}", token.text);
    assert_eq!(token.json["token"], json!(bob_token));
    assert_eq!(token.json["user_username"], json!("bob"));
    let own = api
        .call("GET", &format!("{path}token/"), Some(&bob_token), None)
        .await;
    assert_eq!(own.status, 403);
    let login = json!({"username": "bob", "password": "first secret 1"});
    assert_eq!(
        api.call("POST", "/api-auth/password/", None, Some(login.clone()))
            .await
            .status,
        200
    );
    let removed = staff(&api, "POST", &format!("{path}remove_password/"), None).await;
    assert_eq!(removed.json, json!({"status": "password removed"}));
    assert_eq!(
        api.call("POST", "/api-auth/password/", None, Some(login))
            .await
            .status,
        401
    );
    // The token is not the password: it still works.
    assert_eq!(
        api.call("GET", "/api/users/me/", Some(&bob_token), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn project_actions_other_users_slug_sync_recover_and_customer_contact() {
    let api = TestApi::new().await;
    let (customer, genome) = api.customer_with_project("Acme", "Genome Lab").await;
    let climate = staff(
        &api,
        "POST",
        "/api/projects/",
        Some(json!({"name": "Climate", "customer": customer["url"]})),
    )
    .await
    .json;
    let genome_path = format!("/api/projects/{}/", uuid_of(&genome));
    let climate_path = format!("/api/projects/{}/", uuid_of(&climate));
    let (pam, pam_token) = api.user("pam", false, false).await;
    let (mia, _) = api.user("mia", false, false).await;
    api.grant(&genome_path, &pam.uuid, MANAGER_ROLE).await;
    api.grant(&climate_path, &pam.uuid, "PROJECT.MEMBER").await;
    api.grant(&climate_path, &mia.uuid, "PROJECT.MEMBER").await;
    let others = api
        .call(
            "GET",
            &format!("{genome_path}other_users/"),
            Some(&pam_token),
            None,
        )
        .await;
    let names: Vec<&str> = others
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mia", "pam"], "{}", others.text);
    assert_eq!(others.header("x-result-count"), Some("2"));

    assert_eq!(genome["slug"], json!("genome-lab"));
    let set_slug = format!("{genome_path}set_slug/");
    let slug = |body: Value| staff(&api, "POST", &set_slug, Some(body));
    assert_eq!(slug(json!({"slug": "not a slug"})).await.status, 400);
    assert_eq!(slug(json!({"slug": "genome-2"})).await.status, 200);
    assert_eq!(
        staff(&api, "GET", &genome_path, None).await.json["slug"],
        json!("genome-2")
    );
    let by_manager = api
        .call(
            "POST",
            &format!("{genome_path}sync_user_roles/"),
            Some(&pam_token),
            None,
        )
        .await;
    assert_eq!(by_manager.status, 403);
    assert_eq!(
        staff(&api, "POST", &format!("{genome_path}sync_user_roles/"), None)
            .await
            .status,
        200
    );
    let recovered = staff(&api, "POST", &format!("{genome_path}recover/"), Some(json!({}))).await;
    assert_eq!(
        (recovered.status, recovered.json),
        (400, json!(["Project is not deleted and cannot be recovered."]))
    );

    let contact = format!("/api/customers/{}/contact/", uuid_of(&customer));
    let bad = staff(
        &api,
        "POST",
        &contact,
        Some(json!({"notification_emails": "a@example.org, nope"})),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let body = json!({"phone_number": "+372 5555 0000", "homepage": "https://acme.example.org", "email": "office@acme.example.org"});
    let updated = staff(&api, "POST", &contact, Some(body)).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json["phone_number"], json!("+372 5555 0000"));
    let detail = staff(
        &api,
        "GET",
        &format!("/api/customers/{}/", uuid_of(&customer)),
        None,
    )
    .await;
    assert_eq!(detail.json["homepage"], json!("https://acme.example.org"));
    assert_eq!(detail.json["email"], json!("office@acme.example.org"));
}

#[tokio::test]
async fn a_role_cloned_into_an_organization_is_its_own_and_supersedes_the_template_there() {
    let api = TestApi::new().await;
    let (acme, acme_project) = api.customer_with_project("Acme Research", "Genome").await;
    let (beta, beta_project) = api.customer_with_project("Beta", "Robotics").await;
    let (olivia, olivia_token) = api.user("olivia", false, false).await;
    let (oscar, oscar_token) = api.user("oscar", false, false).await;
    api.grant(
        &format!("/api/customers/{}/", uuid_of(&acme)),
        &olivia.uuid,
        "CUSTOMER.OWNER",
    )
    .await;
    api.grant(
        &format!("/api/customers/{}/", uuid_of(&beta)),
        &oscar.uuid,
        "CUSTOMER.OWNER",
    )
    .await;
    let clone_path = format!("/api/roles/{MEMBER_ROLE}/clone_to_customer/");
    let clone = |body: Value| staff(&api, "POST", &clone_path, Some(body));
    let refused = api
        .call(
            "POST",
            &format!("/api/roles/{MEMBER_ROLE}/clone_to_customer/"),
            Some(&olivia_token),
            Some(json!({"customer": uuid_of(&acme)})),
        )
        .await;
    assert_eq!(refused.status, 403);
    let cloned = clone(json!({"customer": uuid_of(&acme), "description": "Acme member"})).await;
    assert_eq!(cloned.status, 200, "{}", cloned.text);
    assert_eq!(cloned.json["name"], json!("PROJECT.acme-research.MEMBER"));
    assert_eq!(cloned.json["description"], json!("Acme member"));
    let template = staff(&api, "GET", &format!("/api/roles/{MEMBER_ROLE}/"), None).await;
    assert_eq!(cloned.json["permissions"], template.json["permissions"]);
    let twice = clone(json!({"customer": uuid_of(&acme)})).await;
    assert_eq!(
        twice.json,
        json!(["This template has already been cloned into this organization."])
    );
    let clone_uuid = uuid_of(&cloned.json);
    let of_clone = staff(
        &api,
        "POST",
        &format!("/api/roles/{clone_uuid}/clone_to_customer/"),
        Some(json!({"customer": uuid_of(&beta)})),
    )
    .await;
    assert_eq!(
        of_clone.json,
        json!(["A clone cannot be cloned. Clone the original role instead."])
    );

    // Only Acme's members (and staff) see it.
    let sees = async |token: Option<&str>| {
        let roles = api.call("GET", "/api/roles/?page_size=100", token, None).await;
        roles
            .json
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["uuid"] == json!(clone_uuid))
    };
    assert!(sees(Some(&olivia_token)).await);
    assert!(sees(Some(&api.admin_token)).await);
    assert!(!sees(Some(&oscar_token)).await);
    assert!(!sees(None).await);
    let hidden = api
        .call(
            "GET",
            &format!("/api/roles/{clone_uuid}/"),
            Some(&oscar_token),
            None,
        )
        .await;
    assert_eq!(hidden.status, 404);

    // Granted only in Acme, where it supersedes the template; Beta keeps the template.
    let (mia, _) = api.user("mia", false, false).await;
    let add = async |project: &Value, role: &str| {
        staff(
            &api,
            "POST",
            &format!("/api/projects/{}/add_user/", uuid_of(project)),
            Some(json!({"user": mia.uuid, "role": role})),
        )
        .await
    };
    let cases = [
        (&acme_project, clone_uuid.as_str(), 201),
        (&beta_project, clone_uuid.as_str(), 400),
        (&acme_project, MEMBER_ROLE, 400),
        (&beta_project, MEMBER_ROLE, 201),
    ];
    for (project, role, status) in cases {
        let answer = add(project, role).await;
        assert_eq!(
            answer.status, status,
            "{role} on {}: {}",
            project["name"], answer.text
        );
        if status == 400 {
            assert_eq!(
                answer.json,
                json!({"non_field_errors": [shared::roles::NOT_AVAILABLE]})
            );
        }
    }
    // Without concealment the template stays grantable in the organization.
    let kept = staff(
        &api,
        "POST",
        "/api/roles/85ae032608494d65a02605e5644767f3/clone_to_customer/",
        Some(json!({"customer": uuid_of(&acme), "conceal_template": false})),
    )
    .await;
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert_eq!(add(&acme_project, "PROJECT.ADMIN").await.status, 201);
    assert_consistent(&api).await;
}
