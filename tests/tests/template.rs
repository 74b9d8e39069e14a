//! Checks of template.yaml that `sam validate --lint` cannot make: every route reaches a handler
//! that serves it, every function is built the same way, and the table has the keys the code
//! uses.

use integration_tests::{TestApi, router};
use serde_yaml::Value;

use std::collections::BTreeSet;

fn yaml(relative_path: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative_path);
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn template() -> Value {
    yaml("../template.yaml")
}

const READ_ACTIONS: [&str; 3] = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"];

/// Beyond the table, the notifier reads its SMTP secret and sends to its dead-letter queue.
const NOTIFIER_EXTRA: [&str; 2] = ["secretsmanager:GetSecretValue", "sqs:SendMessage"];

fn policy_actions(function: &Value) -> BTreeSet<String> {
    let Some(policies) = function["Properties"]["Policies"].as_sequence() else {
        return BTreeSet::new();
    };
    policies
        .iter()
        .flat_map(|policy| policy["Statement"].as_sequence().cloned().unwrap_or_default())
        .flat_map(|statement| statement["Action"].as_sequence().cloned().unwrap_or_default())
        .map(|action| action.as_str().unwrap().to_owned())
        .collect()
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
    // arm64 by default (the deployment); sam local passes x86_64 for this machine.
    assert_eq!(template["Parameters"]["Architecture"]["Default"], "arm64");
    assert_eq!(
        serde_yaml::to_string(&globals["Architectures"][0])
            .unwrap()
            .trim(),
        "!Ref Architecture"
    );
    let functions = functions(&template);
    assert!(!functions.is_empty());
    for (name, function) in functions {
        assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda", "{name}");
        assert!(
            function["Metadata"]["BuildProperties"]["Binary"].is_string(),
            "{name}"
        );
    }
}

/// Least privilege: no wildcard and no Scan anywhere; the read-only functions can only read, and
/// the schema function cannot touch the table at all.
#[test]
fn functions_get_only_the_table_access_they_need() {
    let template = template();
    for (name, function) in functions(&template) {
        let actions = policy_actions(function);
        for action in actions
            .iter()
            .filter(|a| !(name == "NotifierFunction" && NOTIFIER_EXTRA.contains(&a.as_str())))
        {
            assert!(
                action.starts_with("dynamodb:") && !action.contains('*') && action != "dynamodb:Scan",
                "{name} may {action}"
            );
        }
        match name.as_str() {
            "SchemaFunction" => assert!(actions.is_empty(), "{name} may {actions:?}"),
            "PermissionsFunction" => assert!(
                actions
                    .iter()
                    .all(|action| READ_ACTIONS.contains(&action.as_str())),
                "{name} is read-only but may {actions:?}"
            ),
            _ => assert!(!actions.is_empty(), "{name} needs its own policy"),
        }
    }
}

#[test]
fn every_function_has_a_log_group_with_retention() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    for (name, _) in functions(&template) {
        let log_group = &resources[format!("{name}Logs").as_str()];
        assert_eq!(log_group["Type"], "AWS::Logs::LogGroup", "{name}");
        assert!(!log_group["Properties"]["RetentionInDays"].is_null(), "{name}");
    }
}

/// The OpenAPI document and the template describe the same routes: a route added to one and
/// not the other fails here.
#[test]
fn openapi_document_has_exactly_the_template_routes() {
    let document = yaml("../docs/openapi.yaml");
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_mapping()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            let path = path.as_str().unwrap().to_owned();
            item.as_mapping()
                .unwrap()
                .keys()
                .filter_map(|key| key.as_str())
                .filter(|key| HTTP_METHODS.contains(key))
                .map(move |method| (method.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = router()
        .routes()
        .iter()
        .map(|route| (route.method.clone(), route.path.clone()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "in the template but not in docs/openapi.yaml: {undocumented:?}\n\
         in docs/openapi.yaml but not in the template: {unrouted:?}"
    );
}

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

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

#[tokio::test]
async fn the_document_is_served_at_api_schema() {
    let api = TestApi::new().await;
    let kept = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml"),
    )
    .unwrap();

    let as_yaml = api.call("GET", "/api/schema/", None, None).await;
    assert_eq!(as_yaml.status, 200);
    assert_eq!(
        as_yaml.header("content-type"),
        Some("application/vnd.oai.openapi")
    );
    assert_eq!(as_yaml.text, kept);

    let as_json = api.call("GET", "/api/schema/?format=json", None, None).await;
    assert_eq!(as_json.status, 200);
    assert_eq!(
        as_json.header("content-type"),
        Some("application/vnd.oai.openapi+json")
    );
    let parsed: serde_json::Value = serde_json::from_str(&as_json.text).unwrap();
    let from_yaml: serde_json::Value = serde_yaml::from_str(&kept).unwrap();
    assert_eq!(parsed, from_yaml);

    let unknown = api.call("GET", "/api/schema/?format=xml", None, None).await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json["format"][0], "Select a valid choice: json or yaml.");
}

/// The notifier hears only the outbox's INSERTs, reports partial batch failures, gives up into
/// its dead-letter queue, and may read its SMTP secret and nothing else.
#[test]
fn the_notifier_reads_outbox_inserts_from_the_stream() {
    let template = template();
    let resources = &template["Resources"];
    assert_eq!(
        resources["Table"]["Properties"]["StreamSpecification"]["StreamViewType"],
        "KEYS_ONLY"
    );
    let notifier = &resources["NotifierFunction"]["Properties"];
    let outbox = &notifier["Events"]["Outbox"];
    assert_eq!(outbox["Type"], "DynamoDB");
    let properties = &outbox["Properties"];
    assert_eq!(properties["FunctionResponseTypes"][0], "ReportBatchItemFailures");
    assert!(properties["MaximumRetryAttempts"].as_u64().unwrap() > 0);
    let pattern: serde_json::Value = serde_json::from_str(
        properties["FilterCriteria"]["Filters"][0]["Pattern"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        pattern,
        serde_json::json!({"eventName": ["INSERT"], "dynamodb": {"Keys": {"PK": {"S": [{"prefix": "OUTBOX#"}]}}}})
    );
    assert_eq!(properties["DestinationConfig"]["OnFailure"]["Type"], "SQS");
    assert_eq!(resources["NotifierDeadLetterQueue"]["Type"], "AWS::SQS::Queue");
    let statements = notifier["Policies"][0]["Statement"].as_sequence().unwrap();
    let secret = statements
        .iter()
        .find(|s| s["Action"][0] == "secretsmanager:GetSecretValue")
        .expect("the secret statement");
    assert_eq!(secret["Action"].as_sequence().unwrap().len(), 1);
    let resource = serde_yaml::to_string(&secret["Resource"]).unwrap();
    assert!(
        resource.contains("SmtpSecretArn") && !resource.contains('*'),
        "{resource}"
    );
    for variable in ["SMTP_HOST", "SMTP_PORT", "SENDER_ADDRESS", "SMTP_SECRET_ARN"] {
        assert!(
            !notifier["Environment"]["Variables"][variable].is_null(),
            "{variable}"
        );
    }
}
