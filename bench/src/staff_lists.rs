//! Staff's lists over the whole table: the p50 and the DynamoDB requests of page 1 and of a deep
//! page of the users, customers and projects lists, with 10, 10,000 and 100,000 of each in the
//! table. The rows are loaded in bulk (BatchWriteItem of their stored form), then the lists'
//! tallies are recounted, as `admin bootstrap --recount` does.

use std::fmt::Write as _;
use std::time::Instant;

use futures::stream::{self, StreamExt, TryStreamExt};
use shared::ids::Id;
use shared::scopes::{self, Customer, Project};
use shared::store::{Item, Tally};

use crate::stats::ms;
use crate::{Error, World, page_latency, synthetic_users};

const SIZES: [usize; 3] = [10, 10_000, 100_000];
const DEEP_PAGE: usize = 100;
const LISTS: [&str; 3] = ["/api/users/", "/api/customers/", "/api/projects/"];
/// A p50 and the DynamoDB requests of one call.
type Measured = (std::time::Duration, usize);

/// Batches of 25 items in flight at once while loading.
const LOADERS: usize = 8;

/// Brings the table to `target` users, customers and projects (each project in its own
/// customer), from the `have` of each it holds.
async fn grow(world: &World, have: usize, target: usize) -> Result<(), Error> {
    let store = world.api.store();
    let now = shared::time::now();
    let count = target - have;
    let mut items: Vec<Item> = Vec::with_capacity(3 * count);
    for user in synthetic_users(&format!("staffbench{have}x"), count) {
        items.push(shared::users::as_item(&user)?);
    }
    for i in have..target {
        let customer = customer(&format!("Customer {i:06}"), &now);
        let project = Project::new(&customer.uuid, &format!("Project {i:06}"), "", &now);
        items.push(scopes::customer_as_item(&customer)?);
        items.push(scopes::project_as_item(&project)?);
    }
    stream::iter(items.chunks(25).map(<[Item]>::to_vec))
        .map(|chunk| store.batch_put_items(chunk))
        .buffer_unordered(LOADERS)
        .try_collect::<Vec<()>>()
        .await?;
    for tally in Tally::ALL {
        store.recount_tally(tally).await?;
    }
    Ok(())
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
         besides the benchmark's own few (loaded in bulk, then the tallies recounted).\n\n",
    );
    // Per list, per size: p50 and requests (none for a deep page past a small table's end).
    let mut rows: Vec<(String, Vec<Option<Measured>>)> = Vec::new();
    for list in LISTS {
        rows.push((list.to_owned(), Vec::new()));
        rows.push((format!("{list}?page={DEEP_PAGE}"), Vec::new()));
    }
    let started = Instant::now();
    let mut have = 0;
    for size in SIZES {
        grow(&world, have, size).await?;
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
        "\nA page is one Query of the list's index partition (sorted by username, or by name then\n\
         creation) that starts after the keys before it (read as keys only: page 100 reads 990 keys\n\
         first), beside the list's tally (`COUNTS` / the list), and the projects' page then reads\n\
         its customers' names (one BatchGetItem). The permission, invitation, request and review\n\
         lists of staff still read their whole index partition to filter, order and count it.\n",
    );
    Ok(text)
}
