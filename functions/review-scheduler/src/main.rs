//! The daily jobs, run by EventBridge Scheduler (`{"task": "reviews"}` or `{"task": "expiry"}`
//! as the schedule's `Input`) or by hand:
//!
//! ```text
//! review-scheduler --task reviews|expiry [--now 2027-01-01T00:00:00Z]
//! ```
//!
//! `REVIEW_PERIOD_DAYS` (default 90) and `REMINDER_INTERVAL_DAYS` (default 7) set the cadence.

use chrono::Duration;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::reviews::Schedule;
use shared::scheduler::{self, Report};
use shared::store::Store;
use shared::time::{self, Timestamp};

#[derive(Deserialize)]
struct Input {
    task: String,
    /// A simulated present, for runs by hand.
    #[serde(default)]
    now: Option<String>,
}

fn schedule_from_env() -> Result<Schedule, Error> {
    let days = |name: &str, default: i64| -> Result<Duration, Error> {
        match std::env::var(name) {
            Ok(text) => Ok(Duration::days(
                text.parse()
                    .map_err(|_| format!("{name} must be a number of days"))?,
            )),
            Err(_) => Ok(Duration::days(default)),
        }
    };
    Ok(Schedule {
        review_period: days("REVIEW_PERIOD_DAYS", 90)?,
        reminder_interval: days("REMINDER_INTERVAL_DAYS", 7)?,
    })
}

async fn run(store: &Store, schedule: &Schedule, input: Input) -> Result<Value, Error> {
    let now: Timestamp = match &input.now {
        Some(text) => time::parse_input(text).ok_or_else(|| format!("cannot read the time {text:?}"))?,
        None => time::now(),
    };
    let report: Report = match input.task.as_str() {
        "reviews" => {
            let opened = scheduler::open_due_reviews(store, schedule, &now).await?;
            let reminded = scheduler::send_reminders(store, schedule, &now).await?;
            Report {
                reminders_sent: reminded.reminders_sent,
                ..opened
            }
        }
        "expiry" => {
            let swept = scheduler::sweep_expired_grants(store, &now).await?;
            let warned = scheduler::warn_expiring_grants(store, &now).await?;
            Report {
                expiry_warnings: warned.expiry_warnings,
                ..swept
            }
        }
        other => return Err(format!("unknown task {other:?}; use reviews or expiry").into()),
    };
    let summary = json!({
        "task": input.task,
        "now": time::wire(&now),
        "scopes_scanned": report.scopes_scanned,
        "reviews_opened": report.reviews_opened,
        "reminders_sent": report.reminders_sent,
        "grants_expired": report.grants_expired,
        "expiry_warnings": report.expiry_warnings,
    });
    lambda_runtime::tracing::info!(%summary, "scheduled run finished");
    Ok(summary)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let store = Store::from_env().await?;
    let schedule = schedule_from_env()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return lambda_runtime::run(service_fn(|event: LambdaEvent<Input>| {
            let (store, schedule) = (&store, &schedule);
            async move { run(store, schedule, event.payload).await }
        }))
        .await;
    }
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let task = value("--task").ok_or("usage: review-scheduler --task reviews|expiry [--now TIME]")?;
    let summary = run(
        &store,
        &schedule,
        Input {
            task,
            now: value("--now"),
        },
    )
    .await?;
    println!("{summary}");
    Ok(())
}
