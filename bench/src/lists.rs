//! Lists as a member of many scopes: the p50 and the DynamoDB requests of page 1 of every list a
//! member calls, for a member holding a role in 1, 100 and 1,000 customers (each with a project),
//! and for the owner of one customer with 1, 100 and 1,000 projects.

use std::fmt::Write as _;
use std::time::Instant;

use futures::stream::{self, StreamExt, TryStreamExt};
use shared::roles;
use shared::scopes::{self, Scope, ScopeInput};

use crate::client::{Call, Connection};
use crate::stats::{ms, summarize};
use crate::{Error, World, bench_staff};

const SIZES: [usize; 3] = [1, 100, 1000];
const SAMPLES: usize = 15;
pub const LISTS: [&str; 8] = [
    "/api/customers/",
    "/api/projects/",
    "/api/user-permissions/",
    "/api/customer-permissions/",
    "/api/project-permissions/",
    "/api/customer-permissions-reviews/",
    "/api/user-permission-requests/",
    "/api/user-group-invitations/",
];

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// A role in each of N customers, each customer with one project.
    ManyCustomers,
    /// The owner of one customer with N projects.
    ManyProjects,
}

/// Makes a user and the scopes of `shape` at size `n`; returns the user's token.
async fn member(world: &World, shape: Shape, n: usize) -> Result<String, Error> {
    let store = world.api.store();
    let now = shared::time::now();
    let staff = bench_staff();
    let name = match shape {
        Shape::ManyCustomers => format!("of{n}customers"),
        Shape::ManyProjects => format!("of{n}projects"),
    };
    let (holder, token) = world.api.user(&name, false, false).await;
    let owner = roles::SYSTEM_ROLES
        .iter()
        .find(|role| role.name == "CUSTOMER.OWNER")
        .ok_or("no CUSTOMER.OWNER role")?;
    let owner = roles::get(store, owner.uuid).await?;
    let customers = if shape == Shape::ManyCustomers { n } else { 1 };
    let projects_each = if shape == Shape::ManyCustomers { 1 } else { n };
    let created: Vec<scopes::Customer> = stream::iter(0..customers)
        .map(|i| {
            let (staff, now, name) = (&staff, &now, &name);
            async move {
                let input = ScopeInput {
                    name: Some(format!("{name} customer {i}")),
                    ..ScopeInput::default()
                };
                scopes::create_customer(store, staff, input, now).await
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    let project_inputs: Vec<(&scopes::Customer, usize)> = created
        .iter()
        .flat_map(|customer| (0..projects_each).map(move |i| (customer, i)))
        .collect();
    stream::iter(project_inputs)
        .map(|(customer, i)| {
            let (staff, now) = (&staff, &now);
            async move {
                let input = ScopeInput {
                    name: Some(format!("{} project {i}", customer.name)),
                    ..ScopeInput::default()
                };
                scopes::create_project(store, staff, customer, input, now).await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    stream::iter(&created)
        .map(|customer| {
            let scope = Scope::Customer(customer.clone());
            let (owner, holder, now) = (&owner, &holder, &now);
            async move { shared::grants::import(store, &scope, owner, std::slice::from_ref(holder), now).await }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<usize>>()
        .await?;
    Ok(token)
}

pub async fn section(world: &World) -> Result<String, Error> {
    let mut text = String::from(
        "\n## 3b. Lists as a member of many scopes\n\n\
         Goal (issue 17): page 1 of every list as a member holding a role in 1, 100 and 1,000 customers\n\
         (each with a project), and as the owner of one customer with 1, 100 and 1,000 projects: p50\n\
         ratio 100 : 1 ≤ 1.5 and 1,000 : 1 ≤ 2, and DynamoDB requests per page that do not grow with N.\n\
         p50 of 15 requests over one kept-alive connection to the release build of the local runner.\n\n",
    );
    for shape in [Shape::ManyCustomers, Shape::ManyProjects] {
        let started = Instant::now();
        let mut tokens = Vec::new();
        for n in SIZES {
            tokens.push(member(world, shape, n).await?);
        }
        let heading = match shape {
            Shape::ManyCustomers => "**A member of N customers**",
            Shape::ManyProjects => "**The owner of one customer with N projects**",
        };
        writeln!(
            text,
            "{heading} (seeded in {:.0} s):\n\n\
             | list (page 1 of 10) | N = 1 | N = 100 | N = 1,000 | requests (1 / 100 / 1,000) | 100 : 1 | 1,000 : 1 | goal |\n\
             | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
            started.elapsed().as_secs_f64()
        )?;
        for path in LISTS {
            let mut p50s = Vec::new();
            let mut requests = Vec::new();
            for token in &tokens {
                let call = Call {
                    method: "GET",
                    path: path.to_owned(),
                    token: Some(token.clone()),
                    body: None,
                };
                let (reads, _) = world.cost(&call).await?;
                requests.push(reads.to_string());
                let mut connection = Connection::open(world.addr).await?;
                connection.send(&call).await?;
                let mut samples = Vec::with_capacity(SAMPLES);
                for _ in 0..SAMPLES {
                    let started = Instant::now();
                    connection.send(&call).await?;
                    samples.push(started.elapsed());
                }
                p50s.push(summarize(&mut samples).p50);
            }
            let ratio = |i: usize| p50s[i].as_secs_f64() / p50s[0].as_secs_f64();
            let met = ratio(1) <= 1.5 && ratio(2) <= 2.0 && requests.iter().all(|r| *r == requests[0]);
            writeln!(
                text,
                "| `{path}` | {} | {} | {} | {} | {:.2} | {:.2} | {} |",
                ms(p50s[0]),
                ms(p50s[1]),
                ms(p50s[2]),
                requests.join(" / "),
                ratio(1),
                ratio(2),
                if met { "met" } else { "**missed**" }
            )?;
        }
        text.push('\n');
    }
    Ok(text)
}
