//! The daily jobs: open permission reviews that are due, remind owners of reviews left pending,
//! and revoke grants past their expiration. Each pages through its items (never all in
//! memory) and is idempotent: every change it makes is conditioned on the state that made it
//! due, so a second run in the same day changes nothing.

use crate::error::Result;
use crate::grants;
use crate::reviews::{self, Schedule};
use crate::scopes::{self, Scope};
use crate::store::Store;
use crate::time::Timestamp;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub scopes_scanned: usize,
    pub reviews_opened: usize,
    pub reminders_sent: usize,
    pub grants_expired: usize,
}

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
        for customer in customers {
            report.scopes_scanned += 1;
            if !is_due(
                customer.pending_review_uuid.is_some(),
                customer.last_review_closed.as_deref(),
                &since_text,
            ) {
                continue;
            }
            let has_users = customer.member_count > 0
                || scopes::projects_of(store, &customer.uuid)
                    .await?
                    .iter()
                    .any(|p| p.member_count > 0);
            if has_users
                && reviews::open(store, &Scope::Customer(customer), &since, now)
                    .await?
                    .is_some()
            {
                report.reviews_opened += 1;
            }
        }
        match next {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    let mut start = None;
    loop {
        let (projects, next) = scopes::projects_page(store, start).await?;
        for project in projects {
            report.scopes_scanned += 1;
            let due = is_due(
                project.pending_review_uuid.is_some(),
                project.last_review_closed.as_deref(),
                &since_text,
            );
            if due
                && project.member_count > 0
                && reviews::open(store, &Scope::Project(project), &since, now)
                    .await?
                    .is_some()
            {
                report.reviews_opened += 1;
            }
        }
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
