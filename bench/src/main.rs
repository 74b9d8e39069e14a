//! Benchmarks against a DynamoDB Local of their own. `bench scheduler [CUSTOMERS]` measures the
//! daily review scheduler over that many customers (default 10,000): wall time and DynamoDB
//! round trips of a first run (every customer due) and of a second run the same day (nothing
//! due), printed as Markdown rows for bench/RESULTS.md.

use std::time::Instant;

use futures::stream::{self, StreamExt, TryStreamExt};
use integration_tests::{RoundTrips, counted_client_for, dynamodb_endpoint};
use shared::auth::AuthUser;
use shared::ids::Id;
use shared::reviews::Schedule;
use shared::scheduler;
use shared::scopes::{self, ScopeInput};
use shared::store::{Expr, Store, n};
use shared::time;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("scheduler") => {
            let customers = args.get(1).map(|n| n.parse()).transpose()?.unwrap_or(10_000);
            scheduler_bench(customers).await
        }
        _ => Err("usage: bench scheduler [CUSTOMERS]".into()),
    }
}

async fn scheduler_bench(customers: usize) -> Result<(), Error> {
    let round_trips = RoundTrips::default();
    let store = Store::new(
        counted_client_for(dynamodb_endpoint(), round_trips.clone()),
        "bench-scheduler",
    );
    store.create_table().await?;
    let staff = AuthUser {
        uuid: Id::new(),
        username: "bench".into(),
        full_name: String::new(),
        is_staff: true,
        is_support: false,
    };
    let now = time::now();
    let setup = Instant::now();
    stream::iter(0..customers)
        .map(|i| {
            let (store, staff) = (&store, &staff);
            async move {
                let input = ScopeInput {
                    name: Some(format!("Customer {i}")),
                    ..ScopeInput::default()
                };
                let customer = scopes::create_customer(store, staff, input, &now).await?;
                // A member, as far as the scheduler is concerned: it only reads the counter.
                let mut tx = store.transaction();
                tx.update(
                    &format!("CUSTOMER#{}", customer.uuid),
                    "#META",
                    Expr::new("SET member_count = :one").value(":one", n(1)),
                    None,
                )?;
                tx.commit().await.map_err(shared::Error::from)
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!(
        "created {customers} customers in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let schedule = Schedule::default();
    println!("| run | customers | reviews opened | DynamoDB requests | wall time |");
    println!("| --- | --- | --- | --- | --- |");
    for run in ["first (all due)", "second, same day (none due)"] {
        let before = round_trips.count();
        let started = Instant::now();
        let report = scheduler::open_due_reviews(&store, &schedule, &now).await?;
        let elapsed = started.elapsed();
        println!(
            "| {run} | {} | {} | {} | {:.1} s |",
            report.scopes_scanned,
            report.reviews_opened,
            round_trips.count() - before,
            elapsed.as_secs_f64()
        );
    }
    Ok(())
}
