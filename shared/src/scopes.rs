//! Customers (organisations) and projects: the scopes roles are granted on.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audit::{self, Event};
use crate::auth::AuthUser;
use crate::error::{Error, FieldErrors, Result};
use crate::ids::Id;
use crate::page::{Order, Page, PageRequest};
use crate::roles::ContentType;
use crate::store::{Counters, Expr, Store, Tally, Transaction, TxError, n, s};
use crate::time::{self, Timestamp};
use crate::validate;

const NAME_MAX: usize = 150;
const TEXT_MAX: usize = 2000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub uuid: Id,
    pub name: String,
    #[serde(default)]
    pub abbreviation: String,
    #[serde(default)]
    pub native_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub contact_details: String,
    #[serde(default)]
    pub phone_number: String,
    #[serde(default)]
    pub homepage: String,
    /// Comma-separated addresses that hear of the organisation's notifications.
    #[serde(default)]
    pub notification_emails: String,
    pub created: String,
    /// Active grants at this customer (not its projects).
    #[serde(default)]
    pub member_count: i64,
    /// Of those, the grants with an expiration time (which may have passed before the sweep).
    #[serde(default)]
    pub expiring_count: i64,
    /// Distinct users holding a role on the customer or any of its projects.
    #[serde(default)]
    pub users_count: i64,
    #[serde(default)]
    pub project_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_review_uuid: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_review_closed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub uuid: Id,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Waldur's project slug; made from the name at creation, staff may set it.
    #[serde(default)]
    pub slug: String,
    pub customer_uuid: Id,
    pub created: String,
    #[serde(default)]
    pub member_count: i64,
    /// Of those, the grants with an expiration time (which may have passed before the sweep).
    #[serde(default)]
    pub expiring_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_review_uuid: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_review_closed: Option<String>,
}

/// A scope a role can be granted on, as far as grants are concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    Customer(Customer),
    Project(Project),
}

impl Scope {
    pub fn content_type(&self) -> ContentType {
        match self {
            Scope::Customer(_) => ContentType::Customer,
            Scope::Project(_) => ContentType::Project,
        }
    }

    pub fn uuid(&self) -> Id {
        match self {
            Scope::Customer(c) => c.uuid,
            Scope::Project(p) => p.uuid,
        }
    }

    pub fn customer_uuid(&self) -> Id {
        match self {
            Scope::Customer(c) => c.uuid,
            Scope::Project(p) => p.customer_uuid,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Scope::Customer(c) => &c.name,
            Scope::Project(p) => &p.name,
        }
    }

    pub fn member_count(&self) -> i64 {
        match self {
            Scope::Customer(c) => c.member_count,
            Scope::Project(p) => p.member_count,
        }
    }

    /// How many of the scope's grants have an expiration time: while there is none, every
    /// member row is active and `member_count` counts the listing exactly.
    pub fn expiring_count(&self) -> i64 {
        match self {
            Scope::Customer(c) => c.expiring_count,
            Scope::Project(p) => p.expiring_count,
        }
    }

    /// The partition holding the scope item and its member rows.
    pub fn partition(&self) -> String {
        partition(self.content_type(), &self.uuid())
    }

    pub fn model(&self) -> &'static str {
        match self {
            Scope::Customer(_) => "Customer",
            Scope::Project(_) => "Project",
        }
    }
}

pub fn partition(content_type: ContentType, uuid: &Id) -> String {
    format!("{}#{uuid}", content_type.as_str().to_ascii_uppercase())
}

/// The scope a `scope` URL (or uuid path) names: its type and uuid.
pub fn reference(url: &str) -> Option<(ContentType, Id)> {
    if let Some(uuid) = Id::from_reference(url, "customers").filter(|_| url.contains("/api/customers/")) {
        Some((ContentType::Customer, uuid))
    } else {
        Id::from_reference(url, "projects")
            .filter(|_| url.contains("/api/projects/"))
            .map(|uuid| (ContentType::Project, uuid))
    }
}

#[derive(Serialize, Deserialize)]
struct CustomerItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    all: String,
    #[serde(rename = "GSI1SK")]
    all_sort: String,
    entity: String,
    #[serde(flatten)]
    customer: Customer,
}

impl CustomerItem {
    fn new(customer: &Customer) -> Self {
        CustomerItem {
            pk: partition(ContentType::Customer, &customer.uuid),
            sk: "#META".into(),
            all: "CUSTOMERS".into(),
            all_sort: name_order(&customer.name, &customer.created, &customer.uuid),
            entity: "customer".into(),
            customer: customer.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ProjectItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    of_customer: String,
    #[serde(rename = "GSI1SK")]
    of_customer_sort: String,
    #[serde(rename = "GSI2PK")]
    all: String,
    #[serde(rename = "GSI2SK")]
    all_sort: String,
    entity: String,
    #[serde(flatten)]
    project: Project,
}

impl ProjectItem {
    fn new(project: &Project) -> Self {
        let sort = name_order(&project.name, &project.created, &project.uuid);
        ProjectItem {
            pk: partition(ContentType::Project, &project.uuid),
            sk: "#META".into(),
            of_customer: format!("CUSTOMER#{}#PROJECTS", project.customer_uuid),
            of_customer_sort: sort.clone(),
            all: "PROJECTS".into(),
            all_sort: sort,
            entity: "project".into(),
            project: project.clone(),
        }
    }
}

/// The sort key of a customer or project in its lists' index partitions: the lists' order (name,
/// then creation; DynamoDB compares strings by their UTF-8 bytes, as Rust does), so that a page
/// is one Query that stops after it. `\u{1}` ends the name: it sorts before any character a name
/// holds, so a name sorts before the longer names it begins.
fn name_order(name: &str, created: &str, uuid: &Id) -> String {
    format!("{name}\u{1}{created}#{uuid}")
}

/// The stored form of a customer, as a read of its item returns it (bulk loads of benchmarks).
pub fn customer_as_item(customer: &Customer) -> Result<crate::store::Item> {
    crate::store::encode(&CustomerItem::new(customer))
}

/// The stored form of a project.
pub fn project_as_item(project: &Project) -> Result<crate::store::Item> {
    crate::store::encode(&ProjectItem::new(project))
}

/// Editable fields of a customer or project body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeInput {
    pub name: Option<String>,
    pub abbreviation: Option<String>,
    pub native_name: Option<String>,
    pub description: Option<String>,
    pub email: Option<String>,
    pub contact_details: Option<String>,
    pub phone_number: Option<String>,
    pub homepage: Option<String>,
    pub notification_emails: Option<String>,
    pub slug: Option<String>,
}

impl ScopeInput {
    /// Checks a customer or project body; `name` is required when `creating`.
    pub fn parse(body: Option<&Value>, creating: bool, customer_fields: bool) -> Result<Self> {
        let empty = serde_json::Map::new();
        let object = validate::object(body, &empty)?;
        let mut errors = FieldErrors::default();
        let name_required = creating || object.contains_key("name");
        let mut text = |field: &str, max: usize, required: bool| {
            validate::string(object, field, max, required, !required, &mut errors)
        };
        let mut input = ScopeInput {
            name: text("name", NAME_MAX, name_required),
            description: text("description", TEXT_MAX, false),
            ..ScopeInput::default()
        };
        if customer_fields {
            input.abbreviation = text("abbreviation", 12, false);
            input.native_name = text("native_name", NAME_MAX, false);
            input.email = text("email", 75, false);
            if input
                .email
                .as_ref()
                .is_some_and(|email| !email.is_empty() && !validate::is_email(email))
            {
                errors.add("email", "Enter a valid email address.");
            }
        }
        errors.into_result(input)
    }

    /// Checks a body of `POST /api/customers/{uuid}/contact/`: the contact fields only.
    pub fn parse_contact(body: Option<&Value>) -> Result<Self> {
        let empty = serde_json::Map::new();
        let object = validate::object(body, &empty)?;
        let mut errors = FieldErrors::default();
        let mut text =
            |field: &str, max: usize| validate::string(object, field, max, false, true, &mut errors);
        let input = ScopeInput {
            email: text("email", 75),
            contact_details: text("contact_details", TEXT_MAX),
            phone_number: text("phone_number", 255),
            homepage: text("homepage", 255),
            notification_emails: text("notification_emails", TEXT_MAX),
            ..ScopeInput::default()
        };
        let mut addresses = input.email.iter().map(String::as_str).chain(
            input
                .notification_emails
                .iter()
                .flat_map(|list| list.split(',').map(str::trim)),
        );
        if addresses.any(|email| !email.is_empty() && !validate::is_email(email)) {
            errors.add("email", "Enter a valid email address.");
        }
        errors.into_result(input)
    }

    /// Checks a body of `POST /api/projects/{uuid}/set_slug/`.
    pub fn parse_slug(body: Option<&Value>) -> Result<Self> {
        let empty = serde_json::Map::new();
        let object = validate::object(body, &empty)?;
        let mut errors = FieldErrors::default();
        let slug = validate::string(object, "slug", 50, true, false, &mut errors);
        if slug.as_ref().is_some_and(|slug| {
            !slug
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }) {
            errors.add(
                "slug",
                "Enter a valid “slug” consisting of letters, numbers, underscores or hyphens.",
            );
        }
        errors.into_result(ScopeInput {
            slug,
            ..ScopeInput::default()
        })
    }
}

/// Django's `slugify`, as Waldur makes a slug from a name: ASCII letters and digits kept (lower
/// case), runs of spaces and hyphens one hyphen, everything else dropped.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            slug.push(c);
        } else if (c.is_whitespace() || c == '-') && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').chars().take(50).collect()
}

/// The customer a body's `field` names (its uuid or its API URL): a missing field is required,
/// one that names no customer gets `unknown(text)`; either way the problem goes to `errors`.
pub async fn customer_field(
    store: &Store,
    object: &serde_json::Map<String, Value>,
    field: &str,
    unknown: impl Fn(&str) -> String,
    errors: &mut FieldErrors,
) -> Result<Option<Customer>> {
    let text = match object.get(field) {
        None | Some(Value::Null) => {
            errors.add(field, crate::error::FIELD_REQUIRED);
            return Ok(None);
        }
        Some(value) => value.as_str().unwrap_or_default(),
    };
    let found = match Id::from_reference(text, "customers") {
        Some(uuid) => get_customer(store, &uuid).await?,
        None => None,
    };
    if found.is_none() {
        errors.add(field, unknown(text));
    }
    Ok(found)
}

pub async fn get_customer(store: &Store, uuid: &Id) -> Result<Option<Customer>> {
    let item: Option<CustomerItem> = store
        .get(&partition(ContentType::Customer, uuid), "#META")
        .await?;
    Ok(item.map(|i| i.customer))
}

pub async fn get_project(store: &Store, uuid: &Id) -> Result<Option<Project>> {
    let item: Option<ProjectItem> = store.get(&partition(ContentType::Project, uuid), "#META").await?;
    Ok(item.map(|i| i.project))
}

pub async fn get_scope(store: &Store, content_type: ContentType, uuid: &Id) -> Result<Option<Scope>> {
    match content_type {
        ContentType::Customer => Ok(get_customer(store, uuid).await?.map(Scope::Customer)),
        ContentType::Project => Ok(get_project(store, uuid).await?.map(Scope::Project)),
        _ => Ok(None),
    }
}

/// Decodes the `#META` item of a scope partition read by a Query.
pub fn scope_from_item(content_type: ContentType, item: crate::store::Item) -> Result<Scope> {
    match content_type {
        ContentType::Customer => Ok(Scope::Customer(
            crate::store::decode::<CustomerItem>(item)?.customer,
        )),
        _ => Ok(Scope::Project(crate::store::decode::<ProjectItem>(item)?.project)),
    }
}

pub async fn all_customers(store: &Store) -> Result<Vec<Customer>> {
    let items: Vec<CustomerItem> = store.query_index("GSI1", "CUSTOMERS").await?;
    Ok(items.into_iter().map(|i| i.customer).collect())
}

pub async fn all_projects(store: &Store) -> Result<Vec<Project>> {
    let items: Vec<ProjectItem> = store.query_index("GSI2", "PROJECTS").await?;
    Ok(items.into_iter().map(|i| i.project).collect())
}

pub async fn projects_of(store: &Store, customer: &Id) -> Result<Vec<Project>> {
    let items: Vec<ProjectItem> = store
        .query_index("GSI1", &format!("CUSTOMER#{customer}#PROJECTS"))
        .await?;
    Ok(items.into_iter().map(|i| i.project).collect())
}

/// A page of all customers in the list's order (name, then creation), with the count: one
/// Query that stops after the page, beside the customers' tally (which the caller's
/// credentials may have read already).
pub async fn customers_listing(
    store: &Store,
    caller: &AuthUser,
    request: &PageRequest,
) -> Result<Page<Customer>> {
    let prefetched = caller.take_prefetched_tally(Tally::Customers);
    let page: Page<CustomerItem> = store
        .tallied_page(Tally::Customers, Order::Ascending, request, prefetched)
        .await?;
    Ok(page.map(|item| item.customer))
}

/// A page of all projects in the list's order, with the count (as `customers_listing`).
pub async fn projects_listing(
    store: &Store,
    caller: &AuthUser,
    request: &PageRequest,
) -> Result<Page<Project>> {
    let prefetched = caller.take_prefetched_tally(Tally::Projects);
    let page: Page<ProjectItem> = store
        .tallied_page(Tally::Projects, Order::Ascending, request, prefetched)
        .await?;
    Ok(page.map(|item| item.project))
}

/// A page of one customer's projects in the list's order, with the customer (whose
/// `project_count` is the count), read together: one round trip however many projects it has.
pub async fn projects_of_customer_listing(
    store: &Store,
    customer: &Id,
    request: &PageRequest,
) -> Result<(Option<Customer>, Page<Project>)> {
    let counted = async {
        let customer = get_customer(store, customer).await?;
        let count = customer
            .as_ref()
            .map_or(0, |c| usize::try_from(c.project_count).unwrap_or(0));
        Ok((count, customer))
    };
    let partition = format!("CUSTOMER#{customer}#PROJECTS");
    let (page, customer) = store
        .numbered_page_with::<ProjectItem, _>(("GSI1", &partition, Order::Ascending), request, counted)
        .await?;
    Ok((customer, page.map(|item| item.project)))
}

/// Gives every customer and project the sort keys of the lists' order (name, then creation),
/// where an older version wrote others: for a table written before them (`admin bootstrap
/// --recount`). Returns how many items it changed.
pub async fn reindex(store: &Store) -> Result<usize> {
    let mut changed = 0;
    let mut start = None;
    loop {
        let (items, next) = store
            .index_page::<CustomerItem>("GSI1", "CUSTOMERS", None, 100, start)
            .await?;
        for item in items {
            let order = name_order(&item.customer.name, &item.customer.created, &item.customer.uuid);
            if item.all_sort != order {
                set_order(store, &item.pk, &["GSI1SK"], order).await?;
                changed += 1;
            }
        }
        match next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    let mut start = None;
    loop {
        let (items, next) = store
            .index_page::<ProjectItem>("GSI2", "PROJECTS", None, 100, start)
            .await?;
        for item in items {
            let order = name_order(&item.project.name, &item.project.created, &item.project.uuid);
            if item.all_sort != order || item.of_customer_sort != order {
                set_order(store, &item.pk, &["GSI1SK", "GSI2SK"], order).await?;
                changed += 1;
            }
        }
        match next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    Ok(changed)
}

async fn set_order(store: &Store, pk: &str, attributes: &[&str], order: String) -> Result<()> {
    let actions: Vec<String> = attributes.iter().map(|a| format!("{a} = :order")).collect();
    let mut tx = store.transaction();
    tx.update(
        pk,
        "#META",
        Expr::new(format!("SET {}", actions.join(", "))).value(":order", s(order)),
        Some(Expr::new("attribute_exists(PK)")),
    )?;
    Ok(tx.commit().await?)
}

/// One page of all customers, for scans that must not hold them all (the scheduler).
pub async fn customers_page(
    store: &Store,
    start: Option<crate::store::Item>,
) -> Result<(Vec<Customer>, Option<crate::store::Item>)> {
    let (items, next) = store
        .index_page::<CustomerItem>("GSI1", "CUSTOMERS", None, 100, start)
        .await?;
    Ok((items.into_iter().map(|i| i.customer).collect(), next))
}

/// One page of all projects.
pub async fn projects_page(
    store: &Store,
    start: Option<crate::store::Item>,
) -> Result<(Vec<Project>, Option<crate::store::Item>)> {
    let (items, next) = store
        .index_page::<ProjectItem>("GSI2", "PROJECTS", None, 100, start)
        .await?;
    Ok((items.into_iter().map(|i| i.project).collect(), next))
}

pub async fn customers_by_id(store: &Store, uuids: &[Id]) -> Result<Vec<Customer>> {
    let keys: Vec<(String, String)> = uuids
        .iter()
        .map(|u| (partition(ContentType::Customer, u), "#META".to_owned()))
        .collect();
    let items: Vec<CustomerItem> = store.batch_get(&keys).await?;
    Ok(items.into_iter().map(|i| i.customer).collect())
}

pub async fn projects_by_id(store: &Store, uuids: &[Id]) -> Result<Vec<Project>> {
    let keys: Vec<(String, String)> = uuids
        .iter()
        .map(|u| (partition(ContentType::Project, u), "#META".to_owned()))
        .collect();
    let items: Vec<ProjectItem> = store.batch_get(&keys).await?;
    Ok(items.into_iter().map(|i| i.project).collect())
}

fn event(kind: &str, subject: String, message: String, details: Value) -> Event<'_> {
    Event {
        event_type: kind,
        subject,
        message,
        details,
    }
}

pub async fn create_customer(
    store: &Store,
    actor: &AuthUser,
    input: ScopeInput,
    now: &Timestamp,
) -> Result<Customer> {
    let customer = Customer {
        uuid: Id::new(),
        name: input.name.unwrap_or_default(),
        abbreviation: input.abbreviation.unwrap_or_default(),
        native_name: input.native_name.unwrap_or_default(),
        description: input.description.unwrap_or_default(),
        email: input.email.unwrap_or_default(),
        contact_details: input.contact_details.unwrap_or_default(),
        phone_number: input.phone_number.unwrap_or_default(),
        homepage: input.homepage.unwrap_or_default(),
        notification_emails: input.notification_emails.unwrap_or_default(),
        created: time::storage(now),
        member_count: 0,
        expiring_count: 0,
        users_count: 0,
        project_count: 0,
        pending_review_uuid: None,
        last_review_closed: None,
    };
    let pk = partition(ContentType::Customer, &customer.uuid);
    let mut tx = store.transaction();
    tx.put(
        &CustomerItem::new(&customer),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    tx.tally(Tally::Customers, 1);
    let message = format!("Organization {} has been created.", customer.name);
    audit::record(
        &mut tx,
        Some(actor),
        &event("customer_created", pk, message, json!({"name": customer.name})),
        now,
    )?;
    tx.commit().await?;
    Ok(customer)
}

pub async fn update_customer(
    store: &Store,
    actor: &AuthUser,
    customer: &Customer,
    input: ScopeInput,
    now: &Timestamp,
) -> Result<Customer> {
    let updated = Customer {
        name: input.name.unwrap_or_else(|| customer.name.clone()),
        abbreviation: input
            .abbreviation
            .unwrap_or_else(|| customer.abbreviation.clone()),
        native_name: input.native_name.unwrap_or_else(|| customer.native_name.clone()),
        description: input.description.unwrap_or_else(|| customer.description.clone()),
        email: input.email.unwrap_or_else(|| customer.email.clone()),
        contact_details: input
            .contact_details
            .unwrap_or_else(|| customer.contact_details.clone()),
        phone_number: input
            .phone_number
            .unwrap_or_else(|| customer.phone_number.clone()),
        homepage: input.homepage.unwrap_or_else(|| customer.homepage.clone()),
        notification_emails: input
            .notification_emails
            .unwrap_or_else(|| customer.notification_emails.clone()),
        ..customer.clone()
    };
    let pk = partition(ContentType::Customer, &customer.uuid);
    let mut tx = store.transaction();
    tx.update(
        &pk,
        "#META",
        Expr::new(
            "SET #name = :name, abbreviation = :abbreviation, native_name = :native, description = :description, \
             email = :email, contact_details = :contact, phone_number = :phone, homepage = :homepage, \
             notification_emails = :notify, GSI1SK = :order",
        )
        .name("#name", "name")
        .value(
            ":order",
            s(name_order(&updated.name, &updated.created, &updated.uuid)),
        )
        .value(":name", s(updated.name.as_str()))
        .value(":abbreviation", s(updated.abbreviation.as_str()))
        .value(":native", s(updated.native_name.as_str()))
        .value(":description", s(updated.description.as_str()))
        .value(":email", s(updated.email.as_str()))
        .value(":contact", s(updated.contact_details.as_str()))
        .value(":phone", s(updated.phone_number.as_str()))
        .value(":homepage", s(updated.homepage.as_str()))
        .value(":notify", s(updated.notification_emails.as_str())),
        Some(Expr::new("attribute_exists(PK)")),
    )?;
    let message = format!("Organization {} has been updated.", updated.name);
    audit::record(
        &mut tx,
        Some(actor),
        &event("customer_updated", pk, message, json!({"name": updated.name})),
        now,
    )?;
    match tx.commit().await {
        Ok(()) => Ok(updated),
        Err(TxError::ConditionFailed(_)) => Err(Error::not_found("Customer")),
        Err(err) => Err(err.into()),
    }
}

/// Deletes a customer that has no projects and no members left, so no grant is orphaned.
pub async fn delete_customer(
    store: &Store,
    actor: &AuthUser,
    customer: &Customer,
    now: &Timestamp,
) -> Result<()> {
    let pk = partition(ContentType::Customer, &customer.uuid);
    let mut tx = store.transaction();
    tx.delete(
        &pk,
        "#META",
        Some(
            Expr::new("attribute_exists(PK) AND project_count = :zero AND member_count = :zero")
                .value(":zero", n(0)),
        ),
    )?;
    tx.tally(Tally::Customers, -1);
    let message = format!("Organization {} has been deleted.", customer.name);
    audit::record(
        &mut tx,
        Some(actor),
        &event("customer_deleted", pk, message, json!({"name": customer.name})),
        now,
    )?;
    match tx.commit().await {
        Ok(()) => Ok(()),
        Err(TxError::ConditionFailed(_)) => Err(Error::Conflict(
            "Organization has projects or role grants; remove them first.".into(),
        )),
        Err(err) => Err(err.into()),
    }
}

pub async fn create_project(
    store: &Store,
    actor: &AuthUser,
    customer: &Customer,
    input: ScopeInput,
    now: &Timestamp,
) -> Result<Project> {
    let name = input.name.unwrap_or_default();
    let project = Project::new(&customer.uuid, &name, &input.description.unwrap_or_default(), now);
    let mut tx = store.transaction();
    let customer_index = add_project(&mut tx, Some(actor), customer, &project, 0, now)?;
    match tx.commit().await {
        Ok(()) => Ok(project),
        Err(TxError::ConditionFailed(i)) if i == customer_index => {
            Err(Error::field("customer", "Organization does not exist."))
        }
        Err(err) => Err(err.into()),
    }
}

impl Project {
    pub fn new(customer: &Id, name: &str, description: &str, now: &Timestamp) -> Self {
        Project {
            uuid: Id::new(),
            name: name.to_owned(),
            description: description.to_owned(),
            slug: slugify(name),
            customer_uuid: *customer,
            created: time::storage(now),
            member_count: 0,
            expiring_count: 0,
            pending_review_uuid: None,
            last_review_closed: None,
        }
    }
}

/// Adds a new project to a transaction, with the customer's project counter and the audit
/// event, and returns the index of the customer's update. A caller that grants a role on the
/// project in the same transaction sets its `member_count`.
pub fn add_project(
    tx: &mut Transaction<'_>,
    actor: Option<&AuthUser>,
    customer: &Customer,
    project: &Project,
    joining_users: i64,
    now: &Timestamp,
) -> Result<usize> {
    let pk = partition(ContentType::Project, &project.uuid);
    tx.put(
        &ProjectItem::new(project),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    tx.tally(Tally::Projects, 1);
    // The customer item once per transaction: a grant on the new project that brings a user
    // into the customer counts here (`joining_users`).
    let customer_index = tx.update(
        &partition(ContentType::Customer, &customer.uuid),
        "#META",
        Expr::new("ADD project_count :one, users_count :joining")
            .value(":one", n(1))
            .value(":joining", n(joining_users)),
        Some(Expr::new("attribute_exists(PK)")),
    )?;
    let message = format!("Project {} has been created in {}.", project.name, customer.name);
    let details = json!({"name": project.name, "customer_uuid": customer.uuid});
    audit::record(tx, actor, &event("project_created", pk, message, details), now)?;
    Ok(customer_index)
}

/// Adds a customer moved over from Waldur to a transaction, as it was there (uuid, names,
/// `created`), with its audit event; the put is conditioned on the customer not existing. Its
/// counters start at 0 and are raised by the projects and grants imported after it.
pub fn add_imported_customer(
    tx: &mut Transaction<'_>,
    customer: &Customer,
    now: &Timestamp,
) -> Result<usize> {
    let index = tx.put(
        &CustomerItem::new(customer),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    let pk = partition(ContentType::Customer, &customer.uuid);
    let message = format!("Organization {} has been imported from Waldur.", customer.name);
    audit::record(
        tx,
        None,
        &event("customer_imported", pk, message, json!({"name": customer.name})),
        now,
    )?;
    Ok(index)
}

/// Adds a project moved over from Waldur to a transaction, with its audit event; the put is
/// conditioned on the project not existing. Its customer's `project_count` moves by
/// `project_import_counts`, for the caller to write merged with the rest of the transaction.
pub fn add_imported_project(tx: &mut Transaction<'_>, project: &Project, now: &Timestamp) -> Result<usize> {
    let index = tx.put(
        &ProjectItem::new(project),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    let pk = partition(ContentType::Project, &project.uuid);
    let message = format!("Project {} has been imported from Waldur.", project.name);
    let details = json!({"name": project.name, "customer_uuid": project.customer_uuid});
    audit::record(tx, None, &event("project_imported", pk, message, details), now)?;
    Ok(index)
}

/// The counter an imported project moves: its customer's `project_count`.
pub fn project_import_counts(project: &Project) -> Counters {
    let mut counters = Counters::default();
    counters.add(
        &partition(ContentType::Customer, &project.customer_uuid),
        "#META",
        "project_count",
        1,
    );
    counters
}

pub async fn update_project(
    store: &Store,
    actor: &AuthUser,
    project: &Project,
    input: ScopeInput,
    now: &Timestamp,
) -> Result<Project> {
    let updated = Project {
        name: input.name.unwrap_or_else(|| project.name.clone()),
        description: input.description.unwrap_or_else(|| project.description.clone()),
        slug: input.slug.unwrap_or_else(|| project.slug.clone()),
        ..project.clone()
    };
    let pk = partition(ContentType::Project, &project.uuid);
    let mut tx = store.transaction();
    tx.update(
        &pk,
        "#META",
        Expr::new(
            "SET #name = :name, description = :description, slug = :slug, GSI1SK = :order, GSI2SK = :order",
        )
        .name("#name", "name")
        .value(
            ":order",
            s(name_order(&updated.name, &updated.created, &updated.uuid)),
        )
        .value(":name", s(updated.name.as_str()))
        .value(":description", s(updated.description.as_str()))
        .value(":slug", s(updated.slug.as_str())),
        Some(Expr::new("attribute_exists(PK)")),
    )?;
    let message = format!("Project {} has been updated.", updated.name);
    audit::record(
        &mut tx,
        Some(actor),
        &event("project_updated", pk, message, json!({"name": updated.name})),
        now,
    )?;
    match tx.commit().await {
        Ok(()) => Ok(updated),
        Err(TxError::ConditionFailed(_)) => Err(Error::not_found("Project")),
        Err(err) => Err(err.into()),
    }
}

/// Deletes a project nobody holds a role in any more.
pub async fn delete_project(
    store: &Store,
    actor: &AuthUser,
    project: &Project,
    now: &Timestamp,
) -> Result<()> {
    let pk = partition(ContentType::Project, &project.uuid);
    let mut tx = store.transaction();
    tx.delete(
        &pk,
        "#META",
        Some(Expr::new("attribute_exists(PK) AND member_count = :zero").value(":zero", n(0))),
    )?;
    tx.tally(Tally::Projects, -1);
    tx.update(
        &partition(ContentType::Customer, &project.customer_uuid),
        "#META",
        Expr::new("ADD project_count :minus").value(":minus", n(-1)),
        Some(Expr::new("attribute_exists(PK)")),
    )?;
    let message = format!("Project {} has been deleted.", project.name);
    audit::record(
        &mut tx,
        Some(actor),
        &event("project_deleted", pk, message, json!({"name": project.name})),
        now,
    )?;
    match tx.commit().await {
        Ok(()) => Ok(()),
        Err(TxError::ConditionFailed(_)) => Err(Error::Conflict(
            "Project has role grants; revoke them first.".into(),
        )),
        Err(err) => Err(err.into()),
    }
}

/// The customers and projects a page of rows mentions, read in one BatchGetItem.
#[derive(Debug, Default)]
pub struct Directory {
    customers: HashMap<Id, Customer>,
    projects: HashMap<Id, Project>,
}

impl Directory {
    /// Loads the scopes named by `(scope type, scope, customer)` triples.
    pub async fn load(
        store: &Store,
        scopes: impl IntoIterator<Item = (ContentType, Id, Id)>,
    ) -> Result<Self> {
        let mut directory = Directory::default();
        directory.complete(store, scopes).await?;
        Ok(directory)
    }

    /// The keys of the scope items that `scopes` name, for reading them with something else.
    pub fn keys(scopes: impl IntoIterator<Item = (ContentType, Id, Id)>) -> Vec<(String, String)> {
        Directory::default().missing(scopes)
    }

    /// Reads the scopes named by `scopes` that it does not hold yet.
    pub async fn complete(
        &mut self,
        store: &Store,
        scopes: impl IntoIterator<Item = (ContentType, Id, Id)>,
    ) -> Result<()> {
        let keys = self.missing(scopes);
        self.add_items(store.batch_get_items(&keys).await?)
    }

    fn missing(&self, scopes: impl IntoIterator<Item = (ContentType, Id, Id)>) -> Vec<(String, String)> {
        let mut keys = Vec::new();
        for (scope_type, scope, customer) in scopes {
            if !self.customers.contains_key(&customer) {
                keys.push((partition(ContentType::Customer, &customer), "#META".to_owned()));
            }
            if scope_type == ContentType::Project && !self.projects.contains_key(&scope) {
                keys.push((partition(ContentType::Project, &scope), "#META".to_owned()));
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Adds scope items read elsewhere (customers and projects; other items are ignored).
    pub fn add_items(&mut self, items: Vec<crate::store::Item>) -> Result<()> {
        for item in items {
            let pk = item
                .get("PK")
                .and_then(|pk| pk.as_s().ok())
                .cloned()
                .unwrap_or_default();
            let content_type = if pk.starts_with("PROJECT#") {
                ContentType::Project
            } else if pk.starts_with("CUSTOMER#") {
                ContentType::Customer
            } else {
                continue;
            };
            self.insert(scope_from_item(content_type, item)?);
        }
        Ok(())
    }

    pub fn insert(&mut self, scope: Scope) {
        match scope {
            Scope::Customer(customer) => {
                self.customers.insert(customer.uuid, customer);
            }
            Scope::Project(project) => {
                self.projects.insert(project.uuid, project);
            }
        }
    }

    pub fn customer(&self, uuid: &Id) -> Option<&Customer> {
        self.customers.get(uuid)
    }

    pub fn project(&self, uuid: &Id) -> Option<&Project> {
        self.projects.get(uuid)
    }

    /// The scope, if this directory holds it.
    pub fn scope(&self, scope_type: ContentType, uuid: &Id) -> Option<Scope> {
        match scope_type {
            ContentType::Customer => self.customer(uuid).cloned().map(Scope::Customer),
            ContentType::Project => self.project(uuid).cloned().map(Scope::Project),
            _ => None,
        }
    }

    pub fn scope_name(&self, scope_type: ContentType, uuid: &Id) -> Option<&str> {
        match scope_type {
            ContentType::Customer => self.customer(uuid).map(|c| c.name.as_str()),
            _ => self.project(uuid).map(|p| p.name.as_str()),
        }
    }

    pub fn scope_description(&self, scope_type: ContentType, uuid: &Id) -> Option<&str> {
        match scope_type {
            ContentType::Customer => self.customer(uuid).map(|c| c.description.as_str()),
            _ => self.project(uuid).map(|p| p.description.as_str()),
        }
    }
}
