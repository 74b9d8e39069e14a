//! Staff's lists over the whole table: the p50 and the DynamoDB requests of page 1 and of a deep
//! page of every list staff page through (users, customers, projects, invitations, requests,
//! reviews and the three permission listings), with 10, 10,000 and 100,000 of each in the
//! table. The rows are loaded in bulk (BatchWriteItem of their stored form; the grants by
//! `grants::import`), then the lists' tallies are recounted, as `admin bootstrap --recount` does.

use std::fmt::Write as _;
use std::time::Instant;

use futures::stream::{self, StreamExt, TryStreamExt};
use shared::grants;
use shared::ids::Id;
use shared::invitations::{self, Invitation, PermissionRequest};
use shared::reviews::{self, Review};
use shared::roles::{self, ContentType, Role};
use shared::scopes::{self, Customer, Project, Scope};
use shared::store::{Item, Tally};
use shared::users::User;

use crate::stats::ms;
use crate::{Error, World, page_latency, synthetic_users};

const SIZES: [usize; 3] = [10, 10_000, 100_000];
const DEEP_PAGE: usize = 100;
const LISTS: [&str; 10] = [
    "/api/users/",
    "/api/customers/",
    "/api/projects/",
    "/api/user-group-invitations/",
    "/api/user-permission-requests/",
    "/api/customer-permissions-reviews/",
    "/api/project-permissions-reviews/",
    "/api/customer-permissions/",
    "/api/project-permissions/",
    "/api/user-permissions/",
];
/// A p50 and the DynamoDB requests of one call.
type Measured = (std::time::Duration, usize);

/// Batches of 25 items in flight at once while loading.
const LOADERS: usize = 8;
/// Users whose grants one `grants::import` call writes, and such calls in flight.
const GRANT_CHUNK: usize = 1000;
const GRANT_LOADERS: usize = 4;

/// Where the loaded grants are: every user gets a customer role on one customer and a project
/// role on one project (staff's grant listings read index partitions across all scopes, so how
/// the grants spread over scopes does not change what a page reads).
struct GrantScopes {
    customer: Scope,
    project: Scope,
    customer_role: Role,
    project_role: Role,
}

impl GrantScopes {
    async fn new(world: &World) -> Result<Self, Error> {
        let store = world.api.store();
        let now = shared::time::now();
        let customer = customer("Granted", &now);
        let project = Project::new(&customer.uuid, "Granted project", "", &now);
        store
            .batch_put_items(vec![
                scopes::customer_as_item(&customer)?,
                scopes::project_as_item(&project)?,
            ])
            .await?;
        let role = |name: &str| {
            roles::SYSTEM_ROLES
                .iter()
                .find(|role| role.name == name)
                .map(|role| role.uuid)
                .ok_or_else(|| format!("no {name} role"))
        };
        Ok(GrantScopes {
            customer: Scope::Customer(customer),
            project: Scope::Project(project),
            customer_role: roles::get(store, role("CUSTOMER.SUPPORT")?).await?,
            project_role: roles::get(store, role("PROJECT.MEMBER")?).await?,
        })
    }
}

/// Brings the table to `target` users, customers and projects (each project in its own
/// customer, with an invitation, a request through it by the user of the same number, and a
/// closed review of each), and as many grants of each scope type, from the `have` of each it
/// holds.
async fn grow(world: &World, grants_on: &GrantScopes, have: usize, target: usize) -> Result<(), Error> {
    let store = world.api.store();
    let now = shared::time::now();
    let created = shared::time::storage(&now);
    let count = target - have;
    let users = synthetic_users(&format!("staffbench{have}x"), count);
    let mut items: Vec<Item> = Vec::with_capacity(8 * count);
    for (i, user) in (have..target).zip(&users) {
        items.push(shared::users::as_item(user)?);
        let customer = customer(&format!("Customer {i:06}"), &now);
        let project = Project::new(&customer.uuid, &format!("Project {i:06}"), "", &now);
        let invitation = invitation(&project, &grants_on.project_role, user, &created);
        let request = PermissionRequest::pending(&invitation, user, &now);
        items.push(invitations::request_as_item(&request)?);
        items.push(invitations::invitation_as_item(&invitation)?);
        for (scope_type, scope_uuid) in [
            (ContentType::Customer, customer.uuid),
            (ContentType::Project, project.uuid),
        ] {
            items.push(reviews::as_item(&closed_review(
                scope_type,
                scope_uuid,
                customer.uuid,
                &created,
            ))?);
        }
        items.push(scopes::customer_as_item(&customer)?);
        items.push(scopes::project_as_item(&project)?);
    }
    stream::iter(items.chunks(25).map(<[Item]>::to_vec))
        .map(|chunk| store.batch_put_items(chunk))
        .buffer_unordered(LOADERS)
        .try_collect::<Vec<()>>()
        .await?;
    for (scope, role) in [
        (&grants_on.customer, &grants_on.customer_role),
        (&grants_on.project, &grants_on.project_role),
    ] {
        stream::iter(users.chunks(GRANT_CHUNK))
            .map(|chunk| grants::import(store, scope, role, chunk, &now))
            .buffer_unordered(GRANT_LOADERS)
            .try_collect::<Vec<usize>>()
            .await?;
    }
    for tally in Tally::ALL {
        store.recount_tally(tally).await?;
    }
    Ok(())
}

fn invitation(project: &Project, role: &Role, creator: &User, created: &str) -> Invitation {
    Invitation {
        uuid: Id::new(),
        scope_type: ContentType::Project,
        scope_uuid: project.uuid,
        customer_uuid: project.customer_uuid,
        role_uuid: role.uuid,
        project_role_uuid: None,
        auto_approve: false,
        auto_create_project: false,
        project_name_template: None,
        custom_text: String::new(),
        allow_multiple_requests: false,
        created: created.to_owned(),
        created_by: creator.uuid,
        created_by_username: creator.username.clone(),
        created_by_full_name: creator.full_name(),
        is_active: true,
        edited_by: None,
        expiry: None,
    }
}

fn closed_review(scope_type: ContentType, scope_uuid: Id, customer_uuid: Id, created: &str) -> Review {
    Review {
        uuid: Id::new(),
        scope_type,
        scope_uuid,
        customer_uuid,
        is_pending: false,
        created: created.to_owned(),
        closed: Some(created.to_owned()),
        reviewer_uuid: None,
        reviewer_full_name: None,
        last_reminded: None,
    }
}

fn customer(name: &str, now: &shared::time::Timestamp) -> Customer {
    Customer {
        uuid: Id::new(),
        name: name.to_owned(),
        abbreviation: String::new(),
        native_name: String::new(),
        description: String::new(),
        email: String::new(),
        contact_details: String::new(),
        phone_number: String::new(),
        homepage: String::new(),
        notification_emails: String::new(),
        created: shared::time::storage(now),
        member_count: 0,
        expiring_count: 0,
        users_count: 0,
        project_count: 1,
        pending_review_uuid: None,
        last_review_closed: None,
    }
}

/// The p50 and the DynamoDB requests of a call, as §4 measures them.
async fn measure(world: &World, path: &str) -> Result<Measured, Error> {
    let (summary, requests) = page_latency(world, path).await?;
    Ok((summary.p50, requests))
}

pub async fn section() -> Result<String, Error> {
    let world = World::new().await?;
    let mut text = String::from(
        "\n## 3c. Staff's lists over the whole table\n\n\
         Goal (issue 17): page 1 of every list in its default order costs the same with 10, 10,000\n\
         and 100,000 rows (p50 ratio ≤ 1.5), and a deep page k reads at most k × page size keys,\n\
         never their items. As staff, p50 of 300 requests after 20 over one kept-alive connection to\n\
         the release build of the local runner; the table holds N users, N customers and N projects\n\
         besides the benchmark's own few, with an invitation and a pending request on each project, a\n\
         closed review of each customer and each project, and N customer and N project grants (loaded\n\
         in bulk, then the tallies recounted).\n\n",
    );
    // Per list, per size: p50 and requests (none for a deep page past a small table's end).
    let mut rows: Vec<(String, Vec<Option<Measured>>)> = Vec::new();
    for list in LISTS {
        rows.push((list.to_owned(), Vec::new()));
        rows.push((format!("{list}?page={DEEP_PAGE}"), Vec::new()));
    }
    let started = Instant::now();
    let grants_on = GrantScopes::new(&world).await?;
    let mut have = 0;
    for size in SIZES {
        grow(&world, &grants_on, have, size).await?;
        have = size;
        for (path, measured) in &mut rows {
            let beyond = path.contains("page=") && size < DEEP_PAGE * 10;
            measured.push(if beyond {
                None
            } else {
                Some(measure(&world, path).await?)
            });
        }
    }
    writeln!(
        text,
        "Loaded and measured in {:.0} s.\n\n\
         | list | N = 10 | N = 10,000 | N = 100,000 | requests (per N measured) | p50 ratio | goal ≤ 1.5 |\n\
         | --- | ---: | ---: | ---: | --- | ---: | --- |",
        started.elapsed().as_secs_f64()
    )?;
    for (path, measured) in &rows {
        let measured: Vec<Measured> = measured.iter().flatten().copied().collect();
        let (first, last) = (measured[0], measured[measured.len() - 1]);
        let ratio = last.0.as_secs_f64() / first.0.as_secs_f64();
        let requests: Vec<String> = measured.iter().map(|(_, r)| r.to_string()).collect();
        let met = ratio <= 1.5 && requests.iter().all(|r| *r == requests[0]);
        let mut cells: Vec<String> = measured.iter().map(|(p50, _)| ms(*p50)).collect();
        while cells.len() < SIZES.len() {
            // A deep page of the smallest table is past its end.
            cells.insert(0, "–".into());
        }
        let (from, to) = if measured.len() == SIZES.len() {
            ("100,000", "10")
        } else {
            ("100,000", "10,000")
        };
        writeln!(
            text,
            "| `{path}` | {} | {} | {ratio:.2} ({from} : {to}) | {} |",
            cells.join(" | "),
            requests.join(" / "),
            if met { "met" } else { "**missed**" }
        )?;
    }
    text.push_str(
        "\nA page is one Query per index partition of the list (sorted by username, by name then\n\
         creation, or by creation) that starts after the keys before it (read as keys only: page 100\n\
         reads 990 keys first), beside the list's tally (`COUNTS` / the list, read with the token);\n\
         the grant listings merge their partitions (customer and project grants, and for\n\
         `/api/user-permissions/` the ended ones) in creation order, and a page's rows then read the\n\
         names they show (one BatchGetItem).\n",
    );
    Ok(text)
}
