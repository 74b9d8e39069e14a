//! Writing what the plan found missing: each object's writes as its domain module makes them,
//! packed into transactions of up to 100 actions (with the counters they move merged, one
//! update per counter item), a bounded number in flight. An object whose condition fails
//! (another object holds its key or name, or it changed since it was read) leaves its
//! transaction as a conflict, and the rest commits without it.

use futures::{StreamExt, TryStreamExt, stream};

use crate::error::{Error, Result};
use crate::grants::{self, Member};
use crate::invitations::{self, Invitation, PermissionRequest};
use crate::reviews::{self, Review};
use crate::roles::{self, Role};
use crate::scopes::{self, Customer, Project, Scope};
use crate::store::{Counters, MAX_ACTIONS, Store, Transaction, TxError};
use crate::time::Timestamp;
use crate::users::{self, ImportedToken, User};

use super::Progress;

/// The most grants of one user written in one transaction: three actions each, the user's
/// update, and at worst three counter items each (scope, customer, role) stay within 100.
pub(super) const GRANTS_PER_WRITE: usize = 16;
/// The most reviews of one scope written in one transaction (two actions each, and the scope).
pub(super) const REVIEWS_PER_WRITE: usize = 40;

/// What one object (or, for grants and reviews, a few of one user or scope) writes.
pub(super) enum Write {
    Role(Role),
    Customer(Customer),
    Project(Project),
    User(User, Option<ImportedToken>),
    /// Grants of one user, who is as read (or as left by the user's previous write).
    Grants(User, Vec<Member>),
    Ended(Member),
    Invitation(Invitation),
    /// A request, and whether its invitation allows several open requests per user.
    Request(PermissionRequest, bool),
    /// Reviews of one scope, which is as read (or as left by its previous write).
    Reviews(Scope, Vec<Review>),
}

impl Write {
    /// How many objects it writes (progress and counts).
    pub(super) fn objects(&self) -> usize {
        match self {
            Write::Grants(_, members) => members.len(),
            Write::Reviews(_, reviews) => reviews.len(),
            _ => 1,
        }
    }

    /// Its own actions, at most (the counters come on top, merged per transaction).
    fn actions(&self) -> usize {
        match self {
            Write::Role(_) => 3,
            Write::Customer(_) | Write::Project(_) | Write::Ended(_) | Write::Invitation(_) => 2,
            Write::User(..) => 5,
            Write::Grants(_, members) => 3 * members.len() + 1,
            Write::Request(..) => 3,
            Write::Reviews(_, reviews) => 2 * reviews.len() + 1,
        }
    }

    fn counters(&self) -> Counters {
        match self {
            Write::Project(project) => scopes::project_import_counts(project),
            Write::Grants(user, members) => grants::import_counts(user, members),
            _ => Counters::default(),
        }
    }

    /// Adds the writes to `tx`; returns the actions whose failed condition is a conflict of
    /// this object, with what it means.
    fn add(
        &self,
        tx: &mut Transaction<'_>,
        store: &Store,
        now: &Timestamp,
    ) -> Result<Vec<(usize, &'static str)>> {
        Ok(match self {
            Write::Role(role) => {
                let actions = roles::add_imported(tx, role, now)?;
                vec![
                    (actions.role, "a role with this uuid was made meanwhile"),
                    (actions.name, "another role took the name meanwhile"),
                ]
            }
            Write::Customer(customer) => vec![(
                scopes::add_imported_customer(tx, customer, now)?,
                "a customer with this uuid was made meanwhile",
            )],
            Write::Project(project) => vec![(
                scopes::add_imported_project(tx, project, now)?,
                "a project with this uuid was made meanwhile",
            )],
            Write::User(user, token) => {
                let actions = users::add_imported(tx, store, user, token.as_ref(), now)?;
                let mut meanings = vec![
                    (actions.user, "a user with this uuid was made meanwhile"),
                    (actions.username, "another user took the username meanwhile"),
                ];
                meanings.extend(
                    actions
                        .email
                        .map(|i| (i, "another user took the e-mail address meanwhile")),
                );
                meanings.extend(
                    actions
                        .token
                        .map(|i| (i, "the API token's key is stored here already")),
                );
                meanings
            }
            Write::Grants(user, members) => {
                let actions = grants::add_imported(tx, user, members, now)?;
                let mut meanings: Vec<(usize, &'static str)> = actions
                    .grants
                    .into_iter()
                    .map(|i| (i, "the user was given this role there meanwhile"))
                    .collect();
                meanings.push((actions.user, "the user's roles changed meanwhile"));
                meanings
            }
            Write::Ended(member) => vec![(
                grants::add_imported_history(tx, member, now)?,
                "the history row was written meanwhile",
            )],
            Write::Invitation(invitation) => vec![(
                invitations::add_imported_invitation(tx, invitation, now)?,
                "an invitation with this uuid was made meanwhile",
            )],
            Write::Request(request, allow_multiple) => {
                let actions = invitations::add_imported_request(tx, request, *allow_multiple, now)?;
                let mut meanings = vec![(actions.request, "a request with this uuid was made meanwhile")];
                meanings.extend(
                    actions
                        .marker
                        .map(|i| (i, "the user opened another request for this scope meanwhile")),
                );
                meanings
            }
            Write::Reviews(scope, reviews) => {
                let actions = reviews::add_imported(tx, scope, reviews, now)?;
                let mut meanings: Vec<(usize, &'static str)> = actions
                    .reviews
                    .into_iter()
                    .map(|i| (i, "a review with this uuid was made meanwhile"))
                    .collect();
                meanings.extend(
                    actions
                        .scope
                        .map(|i| (i, "the scope's reviews changed meanwhile")),
                );
                meanings
            }
        })
    }
}

/// What became of the writes.
#[derive(Default)]
pub(super) struct Applied {
    pub created: Vec<Write>,
    pub conflicts: Vec<(Write, &'static str)>,
}

/// Commits `rounds` one after the other (a round's writes depend on the previous round's, as a
/// user's next grants on the counts their first ones left), each round's transactions
/// `concurrency` at a time.
pub(super) async fn apply(
    store: &Store,
    rounds: Vec<Vec<Write>>,
    concurrency: usize,
    progress: &dyn Progress,
    now: &Timestamp,
) -> Result<Applied> {
    let mut applied = Applied::default();
    for round in rounds {
        let done = stream::iter(pack(round))
            .map(|batch| commit(store, batch, progress, now))
            .buffer_unordered(concurrency.max(1))
            .try_collect::<Vec<Applied>>()
            .await?;
        for batch in done {
            applied.created.extend(batch.created);
            applied.conflicts.extend(batch.conflicts);
        }
    }
    Ok(applied)
}

/// Groups writes into transactions of at most `MAX_ACTIONS` actions, their counters merged.
fn pack(writes: Vec<Write>) -> Vec<Vec<Write>> {
    let mut batches = Vec::new();
    let mut batch: Vec<Write> = Vec::new();
    let mut actions = 0;
    let mut counters = Counters::default();
    for write in writes {
        let mut merged = counters.clone();
        merged.merge(&write.counters());
        if !batch.is_empty() && actions + write.actions() + merged.len() > MAX_ACTIONS {
            batches.push(std::mem::take(&mut batch));
            actions = 0;
            merged = write.counters();
        }
        actions += write.actions();
        counters = merged;
        batch.push(write);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// Commits one batch; a write whose condition fails is taken out as a conflict and the rest is
/// committed again (the store retries conflicts between transactions and lost answers itself).
async fn commit(
    store: &Store,
    mut batch: Vec<Write>,
    progress: &dyn Progress,
    now: &Timestamp,
) -> Result<Applied> {
    let mut conflicts = Vec::new();
    while !batch.is_empty() {
        let mut tx = store.transaction();
        let mut owners = Vec::with_capacity(batch.len());
        let mut counters = Counters::default();
        for write in &batch {
            let start = tx.len();
            let meanings = write.add(&mut tx, store, now)?;
            owners.push((start..tx.len(), meanings));
            counters.merge(&write.counters());
        }
        let counted = counters.write(&mut tx)?;
        let failed = match tx.commit().await {
            Ok(()) => {
                progress.advance(batch.iter().map(|w| w.objects() as u64).sum());
                return Ok(Applied {
                    created: batch,
                    conflicts,
                });
            }
            Err(TxError::ConditionFailed(i)) => i,
            Err(TxError::TooLarge(i)) => {
                let owner = owners.iter().position(|(range, _)| range.contains(&i));
                let owner = owner.ok_or_else(|| Error::internal("a counter item grew too large"))?;
                let write = batch.remove(owner);
                progress.advance(write.objects() as u64);
                conflicts.push((write, "the user would hold too many roles for one item"));
                continue;
            }
            Err(TxError::Store(err)) => return Err(err),
        };
        if let Some(owner) = owners.iter().position(|(range, _)| range.contains(&failed)) {
            let meaning = owners[owner]
                .1
                .iter()
                .find(|(index, _)| *index == failed)
                .map_or("it changed meanwhile", |(_, meaning)| *meaning);
            let write = batch.remove(owner);
            progress.advance(write.objects() as u64);
            conflicts.push((write, meaning));
            continue;
        }
        // A counter's item (a scope, a role) was deleted since it was read: whatever moves it
        // cannot be written.
        let (_, key) = counted
            .into_iter()
            .find(|(index, _)| *index == failed)
            .ok_or_else(|| Error::internal("a failed condition of no action"))?;
        let (gone, kept): (Vec<Write>, Vec<Write>) = batch
            .into_iter()
            .partition(|write| write.counters().keys().any(|k| *k == key));
        for write in gone {
            progress.advance(write.objects() as u64);
            conflicts.push((write, "its scope or role was deleted meanwhile"));
        }
        batch = kept;
    }
    Ok(Applied {
        created: Vec::new(),
        conflicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Id;
    use crate::time;

    fn project(customer: &Id) -> Write {
        Write::Project(Project::new(customer, "p", "", &time::now()))
    }

    #[test]
    fn batches_stay_within_a_transaction_and_merge_counters() {
        let customer = Id::new();
        // 2 actions each and one shared counter: 49 projects fill a transaction.
        let batches = pack((0..100).map(|_| project(&customer)).collect());
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [49, 49, 2]);
        // Each of another customer: a counter item each, so 33 to a transaction.
        let batches = pack((0..40).map(|_| project(&Id::new())).collect());
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [33, 7]);
    }
}
