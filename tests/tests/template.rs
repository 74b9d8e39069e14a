//! Checks of template.yaml that `sam validate --lint` cannot make: every route reaches a handler
//! that serves it, every function is built the same way, and the table has the keys the code
//! uses.

use integration_tests::{TestApi, router};
use serde_yaml::Value;

fn template() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn functions(template: &Value) -> Vec<(String, &Value)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(name, r)| (name.as_str().unwrap().to_owned(), r))
        .collect()
}

#[tokio::test]
async fn every_route_reaches_its_handler() {
    let api = TestApi::new().await;
    let routes = router().routes().to_vec();
    assert!(routes.len() >= 11, "the roles routes at least");
    for route in routes {
        let path = route
            .path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "00000000000000000000000000000000"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let answer = api.call(&route.method, &path, Some(&api.admin_token), None).await;
        let gateway_not_found = answer.status == 404 && answer.json.get("message").is_some();
        assert!(
            !gateway_not_found && answer.status != 405 && answer.status < 500,
            "{} {} answered {} {}",
            route.method,
            route.path,
            answer.status,
            answer.text
        );
    }
}

#[test]
fn functions_are_arm64_cargo_lambda_builds() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["Architectures"][0], "arm64");
    let functions = functions(&template);
    assert!(!functions.is_empty());
    for (name, function) in functions {
        assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda", "{name}");
        assert!(
            function["Metadata"]["BuildProperties"]["Binary"].is_string(),
            "{name}"
        );
        assert!(
            function["Properties"]["Policies"].is_sequence(),
            "{name} needs its own policy"
        );
    }
}

#[test]
fn table_matches_the_store() {
    let template = template();
    let table = &template["Resources"]["Table"]["Properties"];
    let keys: Vec<(&str, &str)> = table["KeySchema"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap(),
                k["KeyType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys, [("PK", "HASH"), ("SK", "RANGE")]);
    let indexes: Vec<&str> = table["GlobalSecondaryIndexes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|i| i["IndexName"].as_str().unwrap())
        .collect();
    assert_eq!(indexes, shared::store::GSI_NAMES);
    for index in table["GlobalSecondaryIndexes"].as_sequence().unwrap() {
        let name = index["IndexName"].as_str().unwrap();
        assert_eq!(
            index["KeySchema"][0]["AttributeName"],
            format!("{name}PK").as_str()
        );
        assert_eq!(
            index["KeySchema"][1]["AttributeName"],
            format!("{name}SK").as_str()
        );
    }
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"], "expires_at");
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
}
