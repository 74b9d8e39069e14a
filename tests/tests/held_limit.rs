//! A user item carries the user's grants (`held`); DynamoDB caps an item at 400 KB, so a user
//! can hold about 2,000 grants at once. A grant past the cap is refused with a clear 400, and
//! nothing of it is written.

use integration_tests::TestApi;
use serde_json::json;
use shared::store::s;

#[tokio::test]
async fn a_grant_past_the_item_size_limit_is_refused_and_leaves_nothing() {
    let api = TestApi::new().await;
    let admin = api.admin_token.clone();
    let (bob, _) = api.user("bob", false, false).await;
    let (_, project) = api.customer_with_project("Org", "P").await;
    let path = format!("/api/projects/{}/", project["uuid"].as_str().unwrap());

    // Fill bob's item to just under the limit, as some 2,000 grants would: the largest padding
    // (in steps of 100 bytes) that still fits, so that a grant's entry (some 200 bytes) does not.
    let store = api.store();
    let mut padding = 409_600;
    loop {
        padding -= 100;
        let filled = store
            .client()
            .update_item()
            .table_name(store.table())
            .key("PK", s(format!("USER#{}", bob.uuid)))
            .key("SK", s("#META"))
            .update_expression("SET held_padding = :padding")
            .expression_attribute_values(":padding", s("x".repeat(padding)))
            .send()
            .await;
        if filled.is_ok() {
            break;
        }
        assert!(padding > 400_000, "the item never fit");
    }
    let items_before = api.all_items().await.len();

    let answer = api
        .call(
            "POST",
            &format!("{path}add_user/"),
            Some(&admin),
            Some(json!({"user": bob.uuid, "role": "PROJECT.MEMBER"})),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(
        answer.json,
        json!({"non_field_errors": [shared::grants::TOO_MANY_ROLES]})
    );
    assert_eq!(api.all_items().await.len(), items_before, "nothing written");
}
