//! Property tests of every validator and parser that input reaches: whatever a client sends,
//! they answer with a value or a client error (never a panic, never an internal error), and
//! what they accept obeys their rules.

use lambda_http::Body;
use proptest::prelude::*;
use serde_json::{Map, Value};

use shared::Error;
use shared::error::FieldErrors;
use shared::http::{ApiRequest, MAX_BODY_BYTES};
use shared::ids::Id;
use shared::page::{self, PageRequest, Params};
use shared::roles::{InputMode, RoleInput};
use shared::scopes::ScopeInput;
use shared::{time, validate};

/// Any JSON value, a few levels deep, with the strings that tend to break things.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        tricky_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,300}",
        Just("../../etc/passwd".to_owned()),
        Just("\u{0}\u{202e}\u{feff}𝔘𝔫𝔦".to_owned()),
        Just("x".repeat(10_000)),
        Just("PROJECT.MEMBER".to_owned()),
        Just("00000000-0000-0000-0000-000000000000".to_owned()),
    ]
}

/// Mostly the fields the validators know, so that their type checks are reached.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "name",
            "description",
            "content_type",
            "permissions",
            "is_active",
            "abbreviation",
            "native_name",
            "email",
            "customer",
            "description_de",
            "user",
            "role",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,12}",
    ]
}

fn is_client_error(error: &Error) -> bool {
    matches!(
        error,
        Error::Invalid(_) | Error::Rejected(_) | Error::Malformed(_) | Error::NotFound(_)
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ids_parse_anything_and_round_trip(text in "\\PC{0,40}", raw in any::<u128>()) {
        let _ = Id::parse(&text);
        let _ = Id::from_reference(&text, "customers");
        let id = Id::parse(&format!("{raw:032x}")).unwrap();
        prop_assert_eq!(id.hex(), format!("{raw:032x}"));
        let dashed = uuid::Uuid::from_u128(raw).hyphenated().to_string();
        prop_assert_eq!(Id::parse(&dashed), Some(id));
        let url = format!("https://example.com/api/customers/{}/", id.hex());
        prop_assert_eq!(Id::from_reference(&url, "customers"), Some(id));
    }

    #[test]
    fn page_sizes_are_capped_and_pages_checked(
        page in prop::option::of("\\PC{0,12}|-?[0-9]{1,25}|last"),
        size in prop::option::of("\\PC{0,12}|-?[0-9]{1,25}"),
        total in 0usize..2000,
    ) {
        let mut pairs = Vec::new();
        if let Some(page) = page { pairs.push(("page".to_owned(), page)); }
        if let Some(size) = size { pairs.push(("page_size".to_owned(), size)); }
        match PageRequest::from_params(&Params::new(pairs)) {
            Ok(request) => {
                prop_assert!((1..=300).contains(&request.size));
                match page::paginate((0..total).collect::<Vec<_>>(), &request) {
                    Ok(page) => {
                        prop_assert!(page.items.len() <= request.size);
                        prop_assert_eq!(page.total, total);
                        prop_assert!(page.number >= 1 && page.number <= page.pages);
                    }
                    Err(error) => prop_assert!(matches!(error, Error::NotFound(_))),
                }
            }
            Err(error) => prop_assert!(matches!(error, Error::NotFound(_))),
        }
    }

    #[test]
    fn timestamps_parse_anything_and_round_trip(text in "\\PC{0,40}", seconds in 0i64..4_102_444_800) {
        let _ = time::parse_input(&text);
        let _ = time::parse_stored(&text);
        let at = chrono::DateTime::from_timestamp(seconds, 0).unwrap();
        prop_assert_eq!(time::parse_stored(&time::storage(&at)), Some(at));
        prop_assert_eq!(time::parse_input(&time::wire(&at)), Some(at));
    }

    #[test]
    fn string_fields_obey_their_rules(
        value in prop::option::of(json_value()),
        max in 0usize..300,
        required in any::<bool>(),
        allow_blank in any::<bool>(),
    ) {
        let mut object = Map::new();
        if let Some(value) = value.clone() { object.insert("field".into(), value); }
        let mut errors = FieldErrors::default();
        match validate::string(&object, "field", max, required, allow_blank, &mut errors) {
            Some(text) => {
                prop_assert!(errors.is_empty());
                prop_assert!(text.chars().count() <= max);
                prop_assert_eq!(text.trim(), text.as_str());
                prop_assert!(allow_blank || !text.is_empty());
            }
            None => prop_assert!(!errors.is_empty() || (value.is_none() && !required)),
        }
        let _ = validate::is_email(&value.as_ref().map(Value::to_string).unwrap_or_default());
    }

    #[test]
    fn role_bodies_are_accepted_or_refused_as_client_errors(
        body in json_value(),
        mode in prop::sample::select(vec![
            InputMode::Create,
            InputMode::Replace,
            InputMode::Partial,
            InputMode::Descriptions,
        ]),
    ) {
        if let Err(error) = RoleInput::parse(Some(&body), mode) {
            prop_assert!(is_client_error(&error), "{error:?}");
        }
    }

    #[test]
    fn scope_bodies_are_accepted_or_refused_as_client_errors(
        body in json_value(),
        creating in any::<bool>(),
        customer in any::<bool>(),
    ) {
        match ScopeInput::parse(Some(&body), creating, customer) {
            Ok(input) => {
                if creating { prop_assert!(input.name.is_some()); }
            }
            Err(error) => prop_assert!(is_client_error(&error), "{error:?}"),
        }
    }

    /// The request parser every function runs first: any path, query, header and body.
    #[test]
    fn any_request_parses(
        path in "(/[\\PC&&[^?#]]{0,12}){0,6}/?",
        query in "\\PC{0,60}",
        content_type in prop::option::of("\\PC{0,30}|application/json|text/plain"),
        body in prop::collection::vec(any::<u8>(), 0..256),
        json in json_value(),
        send_json in any::<bool>(),
    ) {
        let uri = format!("http://testserver{}?{}", path, query.replace('#', "%23"));
        let Ok(uri) = uri.parse::<lambda_http::http::Uri>() else { return Ok(()); };
        let mut builder = lambda_http::http::Request::builder().uri(uri).method("POST");
        if let Some(content_type) = &content_type
            && let Ok(value) = lambda_http::http::HeaderValue::from_str(content_type)
        {
            builder = builder.header("content-type", value);
        }
        let body = if send_json { json.to_string().into_bytes() } else { body };
        let request = ApiRequest::new(builder.body(Body::Binary(body)).unwrap());
        let _ = request.segments();
        let _ = request.language();
        let _ = PageRequest::from_params(&request.params);
        match request.json() {
            Ok(_) => {}
            Err(error) => prop_assert!(
                matches!(error, Error::Malformed(_) | Error::UnsupportedMediaType(_)),
                "{error:?}"
            ),
        }
    }
}

#[test]
fn bodies_over_one_mebibyte_are_refused_before_parsing() {
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let request = ApiRequest::new(
        lambda_http::http::Request::builder()
            .uri("http://testserver/api/roles/")
            .header("content-type", "application/json")
            .body(Body::Binary(body))
            .unwrap(),
    );
    assert!(matches!(request.json(), Err(Error::PayloadTooLarge)));
}
