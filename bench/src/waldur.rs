//! The 14 requests of `../shared/spec/waldur-latency.md`, measured the way that table's Waldur
//! column was: as staff, over one kept-alive connection, 40 requests after a warm-up, p50; and
//! the ratio to the Waldur column read from that file.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use integration_tests::TestApi;
use serde_json::{Value, json};

use crate::client::{Call, Connection};
use crate::stats::percentile;
use crate::{Error, MEMBER_ROLE};

const SPEC: &str = "../shared/spec/waldur-latency.md";
const SAMPLES: usize = 40;
/// Rounds of every request before the measured ones (see `section`).
const WARM_UP_ROUNDS: usize = 5;
/// "A few dozen customers, projects, users, invitations and requests", as in Waldur's database.
const OBJECTS: usize = 36;
const PAIR: &str = "POST add_user then delete_user (mean of the pair)";

/// The Waldur p50 of each request in the spec's table, by its label.
fn waldur_column() -> Result<Vec<(String, f64)>, Error> {
    let text = std::fs::read_to_string(SPEC).map_err(|e| format!("{SPEC}: {e}"))?;
    let rows = text
        .lines()
        .filter(|line| line.starts_with("| GET ") || line.starts_with("| POST "))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let waldur = cells.get(1).and_then(|c| c.parse::<f64>().ok());
            match (cells.first(), waldur) {
                (Some(label), Some(waldur)) => Ok((label.to_string(), waldur)),
                _ => Err(format!("{SPEC}: unreadable row {line}")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if rows.len() != 14 {
        return Err(format!("{SPEC}: expected 14 requests, found {}", rows.len()).into());
    }
    Ok(rows)
}

struct Fixture {
    api: TestApi,
    addr: std::net::SocketAddr,
    customer: String,
    project: String,
    role: String,
    spare_user: String,
}

async fn fixture() -> Result<Fixture, Error> {
    let api = TestApi::new().await;
    let admin = api.admin_token.clone();
    let mut first = None;
    for i in 0..OBJECTS {
        let (customer, project) = api
            .customer_with_project(&format!("Org {i:02}"), &format!("P {i:02}"))
            .await;
        let (user, _) = api.user(&format!("user{i:02}"), false, false).await;
        let customer_path = format!("/api/customers/{}/", customer["uuid"].as_str().ok_or("uuid")?);
        let project_path = format!("/api/projects/{}/", project["uuid"].as_str().ok_or("uuid")?);
        api.grant(&customer_path, &user.uuid, "CUSTOMER.OWNER").await;
        let invitation = api
            .call(
                "POST",
                "/api/user-group-invitations/",
                Some(&admin),
                Some(json!({"scope": project["url"], "role": MEMBER_ROLE})),
            )
            .await;
        expect(&invitation.json, invitation.status, 201)?;
        let invitation = invitation.json["uuid"].as_str().ok_or("uuid")?.to_owned();
        let (_, requester) = api.user(&format!("requester{i:02}"), false, false).await;
        let request = api
            .call(
                "POST",
                &format!("/api/user-group-invitations/{invitation}/submit_request/"),
                Some(&requester),
                Some(json!({})),
            )
            .await;
        expect(&request.json, request.status, 200)?;
        first.get_or_insert((customer_path, project_path));
    }
    let (customer_path, project_path) = first.ok_or("no customers")?;
    let (spare, _) = api.user("spare", false, false).await;
    let addr = crate::serve(&api).await?;
    Ok(Fixture {
        api,
        addr,
        customer: customer_path,
        project: project_path,
        role: MEMBER_ROLE.to_owned(),
        spare_user: spare.uuid.to_string(),
    })
}

fn expect(body: &Value, status: u16, wanted: u16) -> Result<(), Error> {
    if status == wanted {
        Ok(())
    } else {
        Err(format!("setup answered {status}: {body}").into())
    }
}

/// The calls behind one row of the table (two for the add/delete pair).
fn calls(fixture: &Fixture, label: &str) -> Result<Vec<Call>, Error> {
    let get = |path: String| Call {
        method: "GET",
        path,
        token: Some(fixture.api.admin_token.clone()),
        body: None,
    };
    let path = |route: &str| {
        route
            .strip_prefix("GET ")
            .unwrap_or(route)
            .replace("/api/roles/{uuid}/", &format!("/api/roles/{}/", fixture.role))
            .replace("/api/customers/{uuid}/", &fixture.customer)
            .replace("/api/projects/{uuid}/", &fixture.project)
    };
    if label == PAIR {
        let body = json!({"user": fixture.spare_user, "role": "CUSTOMER.SUPPORT"}).to_string();
        let post = |action: &str| Call {
            method: "POST",
            path: format!("{}{action}/", fixture.customer),
            token: Some(fixture.api.admin_token.clone()),
            body: Some(body.clone()),
        };
        return Ok(vec![post("add_user"), post("delete_user")]);
    }
    if !label.starts_with("GET ") {
        return Err(format!("{SPEC}: no calls known for {label}").into());
    }
    Ok(vec![get(path(label))])
}

/// p50 of `SAMPLES` rounds after one warm-up; a round of several calls counts their mean.
async fn p50(fixture: &Fixture, calls: &[Call]) -> Result<Duration, Error> {
    let mut connection = Connection::open(fixture.addr).await?;
    let mut samples = Vec::with_capacity(SAMPLES);
    for round in 0..=SAMPLES {
        let started = Instant::now();
        for call in calls {
            let status = connection.send(call).await?;
            if !(200..300).contains(&status) {
                return Err(format!("{} {} answered {status}", call.method, call.path).into());
            }
        }
        if round > 0 {
            samples.push(started.elapsed() / calls.len() as u32);
        }
    }
    samples.sort_unstable();
    Ok(percentile(&samples, 50))
}

pub async fn section() -> Result<String, Error> {
    let waldur = waldur_column()?;
    let fixture = fixture().await?;
    let mut text = format!(
        "\n## 3a. Versus Waldur\n\n\
         Goal: Waldur's p50 / ours ≥ 10 on the geometric mean and ≥ 5 on every request. Waldur's column is\n\
         `{SPEC}` (Waldur MasterMind under gunicorn over PostgreSQL on this machine kind). Ours: this\n\
         benchmark's release build of the local runner over an in-memory DynamoDB Local with {OBJECTS}\n\
         customers, projects, owners, invitations and pending requests; as staff, one kept-alive\n\
         connection, {SAMPLES} requests after one warm-up, p50 (the pair: the mean of its two calls); before\n\
         them, {WARM_UP_ROUNDS} unmeasured rounds of the 13 reads, for DynamoDB Local's JIT.\n\n\
         | request (as staff) | Waldur p50 | ours p50 | Waldur / ours | goal ≥ 5 |\n\
         | --- | ---: | ---: | ---: | --- |\n"
    );
    // DynamoDB Local is a JVM: the first thousands of requests run slower while its JIT warms,
    // as Waldur's database and Python were warm when they were measured.
    // The reads only: the pair's changes would grow the table (its history) before the reads.
    for _ in 0..WARM_UP_ROUNDS {
        for (label, _) in waldur.iter().filter(|(label, _)| label != PAIR) {
            p50(&fixture, &calls(&fixture, label)?).await?;
        }
    }
    let mut log_sum = 0.0;
    let mut lowest = f64::INFINITY;
    for (label, waldur_ms) in &waldur {
        let ours = p50(&fixture, &calls(&fixture, label)?).await?;
        let ours_ms = ours.as_secs_f64() * 1000.0;
        let ratio = waldur_ms / ours_ms;
        log_sum += ratio.ln();
        lowest = lowest.min(ratio);
        writeln!(
            text,
            "| `{label}` | {waldur_ms:.1} ms | {ours_ms:.2} ms | {ratio:.1} | {} |",
            if ratio >= 5.0 { "met" } else { "**missed**" }
        )?;
    }
    let geometric_mean = (log_sum / waldur.len() as f64).exp();
    writeln!(
        text,
        "\nGeometric mean of the ratios: **{geometric_mean:.1}** (goal ≥ 10: {}); lowest: **{lowest:.1}** (goal ≥ 5: {}).",
        if geometric_mean >= 10.0 { "met" } else { "missed" },
        if lowest >= 5.0 { "met" } else { "missed" },
    )?;
    Ok(text)
}
