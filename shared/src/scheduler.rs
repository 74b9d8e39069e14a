//! The daily jobs: open permission reviews that are due, remind owners of reviews left pending,
//! and revoke grants past their expiration. Each pages through its items (never all in
//! memory) and is idempotent: every change it makes is conditioned on the state that made it
//! due, so a second run in the same day changes nothing.

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::grants;
use crate::reviews::{self, Schedule};
use crate::scopes::{self, Scope};
use crate::store::Store;
use crate::time::Timestamp;

/// Scopes of one page handled at once; every write is conditioned, so overlap is harmless.
const CONCURRENCY: usize = 16;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub scopes_scanned: usize,
    pub reviews_opened: usize,
    pub reminders_sent: usize,
    pub grants_expired: usize,
    pub expiry_warnings: usize,
}

/// How long before its expiration a grant's holder and managers are warned.
pub const EXPIRY_WARNING_DAYS: i64 = 7;

fn is_due(pending: bool, last_closed: Option<&str>, since: &str) -> bool {
    !pending && last_closed.is_none_or(|closed| closed < since)
}

/// Opens a review for every customer and project that has users, no pending review, and no
/// review closed within the review period.
pub async fn open_due_reviews(store: &Store, schedule: &Schedule, now: &Timestamp) -> Result<Report> {
    let since = *now - schedule.review_period;
    let since_text = crate::time::storage(&since);
    let mut report = Report::default();
    let mut start = None;
    loop {
        let (customers, next) = scopes::customers_page(store, start).await?;
        report.scopes_scanned += customers.len();
        let due: Vec<_> = customers
            .into_iter()
            .filter(|c| {
                is_due(
                    c.pending_review_uuid.is_some(),
                    c.last_review_closed.as_deref(),
                    &since_text,
                )
            })
            .collect();
        let opened: Vec<bool> = stream::iter(due)
            .map(|customer| async move {
                let has_users = customer.member_count > 0
                    || scopes::projects_of(store, &customer.uuid)
                        .await?
                        .iter()
                        .any(|p| p.member_count > 0);
                if !has_users {
                    return Ok::<_, Error>(false);
                }
                Ok(reviews::open(store, &Scope::Customer(customer), &since, now)
                    .await?
                    .is_some())
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        report.reviews_opened += opened.into_iter().filter(|o| *o).count();
        match next {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    let mut start = None;
    loop {
        let (projects, next) = scopes::projects_page(store, start).await?;
        report.scopes_scanned += projects.len();
        let due: Vec<_> = projects
            .into_iter()
            .filter(|p| p.member_count > 0)
            .filter(|p| {
                is_due(
                    p.pending_review_uuid.is_some(),
                    p.last_review_closed.as_deref(),
                    &since_text,
                )
            })
            .collect();
        let opened: Vec<bool> = stream::iter(due)
            .map(|project| async move {
                Ok::<_, Error>(
                    reviews::open(store, &Scope::Project(project), &since, now)
                        .await?
                        .is_some(),
                )
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        report.reviews_opened += opened.into_iter().filter(|o| *o).count();
        match next {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    Ok(report)
}

/// Reminds the owners of every review pending for longer than the reminder interval, at most
/// once per interval.
pub async fn send_reminders(store: &Store, schedule: &Schedule, now: &Timestamp) -> Result<Report> {
    let due = *now - schedule.reminder_interval;
    let mut report = Report::default();
    for review in reviews::pending(store).await? {
        let created = crate::time::parse_stored(&review.created).unwrap_or(*now);
        if created <= due && reviews::remind(store, &review, &due, now).await? {
            report.reminders_sent += 1;
        }
    }
    Ok(report)
}

/// Warns, once, of every grant expiring within `EXPIRY_WARNING_DAYS`.
pub async fn warn_expiring_grants(store: &Store, now: &Timestamp) -> Result<Report> {
    let ahead = *now + chrono::Duration::days(EXPIRY_WARNING_DAYS);
    let mut report = Report::default();
    let mut start = None;
    loop {
        let (expiring, next) = grants::expired_page(store, &ahead, start).await?;
        for grant in expiring {
            if grants::warn_expiring(store, &grant, now).await? {
                report.expiry_warnings += 1;
            }
        }
        match next {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    Ok(report)
}

/// Revokes every grant whose expiration time has passed.
pub async fn sweep_expired_grants(store: &Store, now: &Timestamp) -> Result<Report> {
    let mut report = Report::default();
    let mut start = None;
    loop {
        let (expired, next) = grants::expired_page(store, now, start).await?;
        for grant in expired {
            if grants::expire(store, &grant, now).await? {
                report.grants_expired += 1;
            }
        }
        match next {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    Ok(report)
}
