//! Moving a running Waldur over (`admin import-waldur`): its roles, customers, projects, users,
//! grants, invitations, requests and reviews come over under their own uuids, and from a Django
//! dump its passwords and API tokens too, so that every stored URL, every script's token and
//! every user's password keep working.
//!
//! A source (`dump::parse` or `api::fetch`) gives a `Snapshot`: the objects in this product's
//! own types. `run` compares each with what the table holds and writes what is missing, kind by
//! kind in dependency order: an object that is there already and equal is left alone, one that
//! is there with other content (or whose username, e-mail or name another object holds) is a
//! conflict, reported and never overwritten. Every write is conditioned on what it found, as the
//! API's are, and carries its audit event and the counters it moves in the same transaction; so
//! an import cut short anywhere is finished by running it again, and a second run writes
//! nothing.

pub mod api;
mod apply;
pub mod dump;
mod plan;
mod report;

use crate::error::Result;
use crate::grants::Member;
use crate::invitations::{Invitation, PermissionRequest};
use crate::reviews::Review;
use crate::roles::Role;
use crate::scopes::{Customer, Project};
use crate::store::Store;
use crate::time::Timestamp;
use crate::users::{ImportedToken, User};

pub use report::{Kind, Report, Row};

/// Everything a source holds, in this product's types, with Waldur's uuids.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub roles: Vec<Role>,
    pub customers: Vec<Customer>,
    pub projects: Vec<Project>,
    pub users: Vec<ImportedUser>,
    /// Live grants (`ended` is none).
    pub grants: Vec<Member>,
    /// Grants that had ended in Waldur (revoked, or expired and removed): history rows.
    pub ended: Vec<Member>,
    pub invitations: Vec<Invitation>,
    pub requests: Vec<PermissionRequest>,
    pub reviews: Vec<Review>,
    /// What the source holds that the snapshot leaves out, and why.
    pub skipped: Vec<Skipped>,
    /// Whether the source carries passwords and API tokens (a dump does, the API does not).
    pub credentials: bool,
    /// What the summary should say about the source as a whole.
    pub notes: Vec<String>,
}

/// A user and, from a dump, their API token (the password hash is on the user).
#[derive(Debug, Clone)]
pub struct ImportedUser {
    pub user: User,
    pub token: Option<ImportedToken>,
}

/// An object of the source that is not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub kind: Kind,
    pub what: String,
    pub why: String,
}

/// How an import runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Read and compare only: the report says what would be written.
    pub dry_run: bool,
    /// Transactions in flight at once.
    pub concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dry_run: false,
            concurrency: 8,
        }
    }
}

/// Where an import stands, for a progress bar.
pub trait Progress: Send + Sync {
    /// A stage begins (reading a source's listing, or writing one kind), of `total` steps when
    /// known (0: unknown).
    fn stage(&self, name: &str, total: u64);
    /// `steps` more of the current stage are done.
    fn advance(&self, steps: u64);
}

/// No progress shown (tests, benchmarks).
pub struct Quiet;

impl Progress for Quiet {
    fn stage(&self, _name: &str, _total: u64) {}
    fn advance(&self, _steps: u64) {}
}

/// Imports `snapshot` into the table of `store` (see the module's description); `now` stamps
/// the audit events. An error (the store unavailable) leaves what was written consistent; run
/// again to finish.
pub async fn run(
    store: &Store,
    snapshot: &Snapshot,
    options: Options,
    progress: &dyn Progress,
    now: &Timestamp,
) -> Result<Report> {
    plan::Import::new(store, snapshot, options, progress, now)
        .run()
        .await
}
