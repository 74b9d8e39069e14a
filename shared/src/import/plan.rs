//! Comparing a snapshot with the table, kind by kind in dependency order, and handing what is
//! missing to `apply`: an object there already is unchanged when equal and a conflict when not
//! (it stays as it is here, and what refers to it may still come); one whose user, scope, role
//! or invitation is not there (not imported: its name was another's, or it was skipped) is
//! skipped. What was found or written is what the next kinds may refer to.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::{StreamExt, TryStreamExt, stream};

use crate::error::Result;
use crate::grants::{self, Grant, Member, MemberNames};
use crate::ids::Id;
use crate::invitations::{self, Invitation, PermissionRequest, State};
use crate::reviews::{self, Review};
use crate::roles::{self, ContentType, Role};
use crate::scopes::{self, Customer, Project, Scope};
use crate::store::{Item, Store, Tally};
use crate::time::{self, Timestamp};
use crate::users::{self, User};

use super::apply::{self, GRANTS_PER_WRITE, REVIEWS_PER_WRITE, Write};
use super::{Kind, Options, Progress, Report, Snapshot};

type Key = (String, String);

pub(super) struct Import<'a> {
    store: &'a Store,
    snapshot: &'a Snapshot,
    options: Options,
    progress: &'a dyn Progress,
    now: Timestamp,
    report: Report,
    /// What the table holds after each kind, for the kinds after it to refer to.
    roles: HashMap<Id, Role>,
    customers: HashMap<Id, Customer>,
    projects: HashMap<Id, Project>,
    users: HashMap<Id, User>,
    invitations: HashMap<Id, Invitation>,
    /// Every user of the source by uuid (granters and reviewers need not be imported).
    people: HashMap<Id, &'a User>,
}

/// The fields in which two versions of an object differ, named; `None` when equal.
fn differences(fields: &[(&str, bool)]) -> Option<String> {
    let differing: Vec<&str> = fields
        .iter()
        .filter(|(_, equal)| !equal)
        .map(|(name, _)| *name)
        .collect();
    (!differing.is_empty()).then(|| format!("it differs here in {}", differing.join(", ")))
}

fn role_label(role: &Role) -> String {
    format!("role {} ({})", role.name, role.uuid)
}

fn user_label(user: &User) -> String {
    format!("user {} ({})", user.username, user.uuid)
}

impl<'a> Import<'a> {
    pub(super) fn new(
        store: &'a Store,
        snapshot: &'a Snapshot,
        options: Options,
        progress: &'a dyn Progress,
        now: &Timestamp,
    ) -> Self {
        Import {
            store,
            snapshot,
            options,
            progress,
            now: *now,
            report: Report {
                dry_run: options.dry_run,
                ..Report::default()
            },
            roles: HashMap::new(),
            customers: HashMap::new(),
            projects: HashMap::new(),
            users: HashMap::new(),
            invitations: HashMap::new(),
            people: snapshot.users.iter().map(|u| (u.user.uuid, &u.user)).collect(),
        }
    }

    pub(super) async fn run(mut self) -> Result<Report> {
        let snapshot = self.snapshot;
        for (kind, read) in [
            (Kind::Role, snapshot.roles.len()),
            (Kind::Customer, snapshot.customers.len()),
            (Kind::Project, snapshot.projects.len()),
            (Kind::User, snapshot.users.len()),
            (Kind::Grant, snapshot.grants.len()),
            (Kind::EndedGrant, snapshot.ended.len()),
            (Kind::Invitation, snapshot.invitations.len()),
            (Kind::Request, snapshot.requests.len()),
            (Kind::Review, snapshot.reviews.len()),
        ] {
            self.report.row_mut(kind).read = read;
        }
        for skipped in &snapshot.skipped {
            self.report.row_mut(skipped.kind).read += 1;
            self.report.skip(skipped.kind, &skipped.what, &skipped.why);
        }
        self.roles().await?;
        self.customers().await?;
        self.projects().await?;
        self.users().await?;
        self.grants().await?;
        self.ended().await?;
        self.invitations().await?;
        self.requests().await?;
        self.reviews().await?;
        if !self.options.dry_run {
            // The lists' tallies are not moved by the import's transactions (eight at a time
            // would all meet on them): they are counted once it has written everything.
            for tally in Tally::ALL {
                self.store.recount_tally(tally).await?;
            }
        }
        self.credentials_note();
        self.report.notes.extend(snapshot.notes.iter().cloned());
        Ok(self.report)
    }

    /// The items with these keys that exist, read 100 to a request, `concurrency` requests at
    /// a time.
    async fn read(&self, keys: Vec<Key>) -> Result<HashMap<Key, Item>> {
        let chunks: Vec<Vec<Key>> = keys.chunks(100).map(<[Key]>::to_vec).collect();
        let store = self.store;
        let pages = stream::iter(chunks)
            .map(|chunk| async move { store.batch_get_items(&chunk).await })
            .buffer_unordered(self.options.concurrency.max(1))
            .try_collect::<Vec<Vec<Item>>>()
            .await?;
        let text = |item: &Item, name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        Ok(pages
            .into_iter()
            .flatten()
            .map(|item| ((text(&item, "PK"), text(&item, "SK")), item))
            .collect())
    }

    /// Writes `rounds` (or, in a dry run, only counts them) and reports each object; returns
    /// what was written.
    async fn write(&mut self, kind: Kind, rounds: Vec<Vec<Write>>) -> Result<Vec<Write>> {
        if self.options.dry_run {
            let writes: Vec<Write> = rounds.into_iter().flatten().collect();
            for write in &writes {
                for label in self.labels(write) {
                    self.report.created(kind, &label);
                }
            }
            return Ok(writes);
        }
        let total: usize = rounds.iter().flatten().map(Write::objects).sum();
        self.progress.stage(kind.plural(), total as u64);
        let applied = apply::apply(
            self.store,
            rounds,
            self.options.concurrency,
            self.progress,
            &self.now,
        )
        .await?;
        for write in &applied.created {
            for label in self.labels(write) {
                self.report.created(kind, &label);
            }
        }
        for (write, why) in &applied.conflicts {
            for label in self.labels(write) {
                self.report.conflict(kind, &label, why);
            }
        }
        Ok(applied.created)
    }

    fn labels(&self, write: &Write) -> Vec<String> {
        match write {
            Write::Role(role) => vec![role_label(role)],
            Write::Customer(c) => vec![format!("customer {} ({})", c.name, c.uuid)],
            Write::Project(p) => vec![format!("project {} ({})", p.name, p.uuid)],
            Write::User(user, _) => vec![user_label(user)],
            Write::Grants(_, members) => members.iter().map(|m| self.grant_label(m)).collect(),
            Write::Ended(member) => vec![self.grant_label(member)],
            Write::Invitation(i) => vec![invitation_label(i)],
            Write::Request(r, _) => vec![request_label(r)],
            Write::Reviews(_, reviews) => reviews.iter().map(review_label).collect(),
        }
    }

    fn grant_label(&self, member: &Member) -> String {
        let grant = &member.grant;
        let role = self
            .roles
            .get(&grant.role_uuid)
            .map_or_else(|| grant.role_uuid.to_string(), |r| r.name.clone());
        format!(
            "grant {} ({} as {role} of {} {})",
            grant.uuid,
            member.names.user_username,
            grant.scope_type.as_str(),
            grant.scope_uuid
        )
    }

    async fn roles(&mut self) -> Result<()> {
        let existing = roles::list(self.store).await?;
        let by_uuid: HashMap<Id, &Role> = existing.iter().map(|r| (r.uuid, r)).collect();
        let by_name: HashMap<&str, Id> = existing.iter().map(|r| (r.name.as_str(), r.uuid)).collect();
        let mut names = HashSet::new();
        let mut writes = Vec::new();
        for role in &self.snapshot.roles {
            let label = role_label(role);
            if !names.insert(role.name.as_str()) {
                self.report
                    .conflict(Kind::Role, &label, "another role of the source has this name");
                continue;
            }
            match (by_uuid.get(&role.uuid), by_name.get(role.name.as_str())) {
                (Some(found), _) => {
                    let sorted = |r: &Role| {
                        let mut permissions = r.permissions.clone();
                        permissions.sort();
                        permissions
                    };
                    match differences(&[
                        ("name", found.name == role.name),
                        ("description", found.description == role.description),
                        ("translations", found.translations == role.translations),
                        ("permissions", sorted(found) == sorted(role)),
                        ("content_type", found.content_type == role.content_type),
                        ("is_system_role", found.is_system_role == role.is_system_role),
                        ("is_active", found.is_active == role.is_active),
                    ]) {
                        None => self.report.unchanged(Kind::Role),
                        Some(why) => self.report.conflict(Kind::Role, &label, &why),
                    }
                    // The same role, changed here or not: what refers to it may come.
                    self.roles.insert(role.uuid, (*found).clone());
                }
                (None, Some(other)) => {
                    self.report
                        .conflict(Kind::Role, &label, &format!("the name is role {other}'s here"))
                }
                (None, None) => writes.push(Write::Role(role.clone())),
            }
        }
        for write in self.write(Kind::Role, vec![writes]).await? {
            if let Write::Role(role) = write {
                self.roles.insert(role.uuid, role);
            }
        }
        Ok(())
    }

    /// The scope items of `scopes` that the table holds.
    async fn read_scopes(&self, scopes: &[(ContentType, Id)]) -> Result<HashMap<Id, Scope>> {
        let keys = scopes
            .iter()
            .map(|(kind, uuid)| (scopes::partition(*kind, uuid), "#META".to_owned()))
            .collect();
        let mut found = HashMap::new();
        for ((pk, _), item) in self.read(keys).await? {
            let kind = if pk.starts_with("CUSTOMER#") {
                ContentType::Customer
            } else {
                ContentType::Project
            };
            let scope = scopes::scope_from_item(kind, item)?;
            found.insert(scope.uuid(), scope);
        }
        Ok(found)
    }

    async fn customers(&mut self) -> Result<()> {
        let wanted: Vec<(ContentType, Id)> = self
            .snapshot
            .customers
            .iter()
            .map(|c| (ContentType::Customer, c.uuid))
            .collect();
        let found = self.read_scopes(&wanted).await?;
        let mut seen = HashSet::new();
        let mut writes = Vec::new();
        for customer in &self.snapshot.customers {
            let label = format!("customer {} ({})", customer.name, customer.uuid);
            if !seen.insert(customer.uuid) {
                self.report
                    .conflict(Kind::Customer, &label, "the source has it twice");
                continue;
            }
            match found.get(&customer.uuid) {
                Some(Scope::Customer(here)) => match differences(&[
                    ("name", here.name == customer.name),
                    ("abbreviation", here.abbreviation == customer.abbreviation),
                    ("native_name", here.native_name == customer.native_name),
                    ("description", here.description == customer.description),
                    ("email", here.email == customer.email),
                    ("created", here.created == customer.created),
                ]) {
                    None => {
                        self.report.unchanged(Kind::Customer);
                        self.customers.insert(here.uuid, here.clone());
                    }
                    Some(why) => {
                        self.report.conflict(Kind::Customer, &label, &why);
                        self.customers.insert(here.uuid, here.clone());
                    }
                },
                _ => writes.push(Write::Customer(customer.clone())),
            }
        }
        for write in self.write(Kind::Customer, vec![writes]).await? {
            if let Write::Customer(customer) = write {
                self.customers.insert(customer.uuid, customer);
            }
        }
        Ok(())
    }

    async fn projects(&mut self) -> Result<()> {
        let wanted: Vec<(ContentType, Id)> = self
            .snapshot
            .projects
            .iter()
            .map(|p| (ContentType::Project, p.uuid))
            .collect();
        let found = self.read_scopes(&wanted).await?;
        let mut seen = HashSet::new();
        let mut writes = Vec::new();
        for project in &self.snapshot.projects {
            let label = format!("project {} ({})", project.name, project.uuid);
            if !self.customers.contains_key(&project.customer_uuid) {
                let why = format!("its customer {} is not imported", project.customer_uuid);
                self.report.skip(Kind::Project, &label, &why);
                continue;
            }
            if !seen.insert(project.uuid) {
                self.report
                    .conflict(Kind::Project, &label, "the source has it twice");
                continue;
            }
            match found.get(&project.uuid) {
                Some(Scope::Project(here)) => match differences(&[
                    ("name", here.name == project.name),
                    ("description", here.description == project.description),
                    ("customer", here.customer_uuid == project.customer_uuid),
                    ("created", here.created == project.created),
                ]) {
                    None => {
                        self.report.unchanged(Kind::Project);
                        self.projects.insert(here.uuid, here.clone());
                    }
                    Some(why) => {
                        self.report.conflict(Kind::Project, &label, &why);
                        self.projects.insert(here.uuid, here.clone());
                    }
                },
                _ => writes.push(Write::Project(project.clone())),
            }
        }
        for write in self.write(Kind::Project, vec![writes]).await? {
            if let Write::Project(project) = write {
                self.projects.insert(project.uuid, project);
            }
        }
        Ok(())
    }

    async fn users(&mut self) -> Result<()> {
        let source = &self.snapshot.users;
        let mut keys = Vec::with_capacity(source.len() * 3);
        for imported in source {
            let user = &imported.user;
            keys.push(User::key(&user.uuid));
            keys.push(users::username_key(&user.username));
            if !user.email.is_empty() {
                keys.push(users::email_key(&user.email));
            }
        }
        let mut found = self.read(keys).await?;
        let mut names = HashSet::new();
        let mut addresses = HashSet::new();
        let mut new = Vec::new();
        for imported in source {
            let user = &imported.user;
            let label = user_label(user);
            if let Some(item) = found.remove(&User::key(&user.uuid)) {
                let here: User = crate::store::decode(item)?;
                match differences(&[
                    ("username", here.username == user.username),
                    ("email", here.email == user.email),
                    ("first_name", here.first_name == user.first_name),
                    ("last_name", here.last_name == user.last_name),
                    ("native_name", here.native_name == user.native_name),
                    ("is_staff", here.is_staff == user.is_staff),
                    ("is_support", here.is_support == user.is_support),
                    ("is_active", here.is_active == user.is_active),
                    ("date_joined", here.date_joined == user.date_joined),
                    ("being deleted", !here.deleting),
                ]) {
                    None => {
                        self.report.unchanged(Kind::User);
                        self.users.insert(here.uuid, here);
                    }
                    Some(why) => {
                        self.report.conflict(Kind::User, &label, &why);
                        if !here.deleting {
                            self.users.insert(here.uuid, here);
                        }
                    }
                }
                continue;
            }
            let username_owner = found
                .get(&users::username_key(&user.username))
                .cloned()
                .map(users::marker_owner)
                .transpose()?;
            let email_owner = if user.email.is_empty() {
                None
            } else {
                found
                    .get(&users::email_key(&user.email))
                    .cloned()
                    .map(users::marker_owner)
                    .transpose()?
            };
            let why = if let Some(other) = username_owner {
                Some(format!("the username is user {other}'s here"))
            } else if let Some(other) = email_owner {
                Some(format!("the e-mail address is user {other}'s here"))
            } else if !names.insert(user.username.clone()) {
                Some("another user of the source has this username".to_owned())
            } else if !user.email.is_empty() && !addresses.insert(user.email.trim().to_lowercase()) {
                Some("another user of the source has this e-mail address".to_owned())
            } else {
                None
            };
            match why {
                Some(why) => self.report.conflict(Kind::User, &label, &why),
                None => new.push(imported),
            }
        }
        // The workspace family's integer ids, one block for all (Waldur's own are not shown by
        // its API and may be taken here).
        let first = if self.options.dry_run || new.is_empty() {
            0
        } else {
            users::reserve_numbers(self.store, "USER", new.len() as i64).await?
        };
        let writes = new
            .into_iter()
            .zip(first..)
            .map(|(imported, pk)| {
                let user = User {
                    pk,
                    ..imported.user.clone()
                };
                Write::User(user, imported.token.clone())
            })
            .collect();
        for write in self.write(Kind::User, vec![writes]).await? {
            if let Write::User(user, _) = write {
                self.users.insert(user.uuid, user);
            }
        }
        Ok(())
    }

    /// The customer of a scope the table holds, if it does.
    fn customer_of(&self, scope_type: ContentType, scope: &Id) -> Option<Id> {
        match scope_type {
            ContentType::Customer => self.customers.get(scope).map(|c| c.uuid),
            ContentType::Project => self.projects.get(scope).map(|p| p.customer_uuid),
            _ => None,
        }
    }

    /// A grant of the source as it will be written (its customer and the names its row shows
    /// taken from what the table holds), or why it cannot be.
    fn prepare_grant(&self, member: &Member) -> Result<Member, String> {
        let grant = &member.grant;
        let user = self
            .users
            .get(&grant.user_uuid)
            .ok_or_else(|| format!("its user {} is not imported", grant.user_uuid))?;
        let customer = self
            .customer_of(grant.scope_type, &grant.scope_uuid)
            .ok_or_else(|| {
                format!(
                    "its {} {} is not imported",
                    grant.scope_type.as_str(),
                    grant.scope_uuid
                )
            })?;
        let role = self
            .roles
            .get(&grant.role_uuid)
            .ok_or_else(|| format!("its role {} is not imported", grant.role_uuid))?;
        if role.content_type != grant.scope_type {
            return Err(format!(
                "its role {} is for {} scopes",
                role.name,
                role.content_type.as_str()
            ));
        }
        let granter = grant.created_by.and_then(|uuid| self.people.get(&uuid));
        Ok(Member {
            grant: Grant {
                customer_uuid: customer,
                ..grant.clone()
            },
            names: MemberNames {
                user_username: user.username.clone(),
                user_full_name: user.full_name(),
                user_email: user.email.clone(),
                user_native_name: user.native_name.clone(),
                created_by_username: granter.map(|g| g.username.clone()),
                created_by_full_name: granter.map(|g| g.full_name()),
            },
            ended: member.ended.clone(),
        })
    }

    async fn grants(&mut self) -> Result<()> {
        let mut candidates = Vec::new();
        for member in &self.snapshot.grants {
            match self.prepare_grant(member) {
                Ok(member) => candidates.push(member),
                Err(why) => {
                    let label = self.grant_label(member);
                    self.report.skip(Kind::Grant, &label, &why);
                }
            }
        }
        let mut keys: Vec<Key> = candidates
            .iter()
            .map(|m| grants::user_side_key(&m.grant))
            .collect();
        keys.extend(candidates.iter().map(|m| grants::history_key(&m.grant)));
        let found = self.read(keys).await?;
        let mut seen = HashSet::new();
        let mut per_user: BTreeMap<Id, Vec<Member>> = BTreeMap::new();
        for member in candidates {
            let label = self.grant_label(&member);
            let key = grants::user_side_key(&member.grant);
            if !seen.insert(key.clone()) {
                self.report.conflict(
                    Kind::Grant,
                    &label,
                    "the source grants the user this role there twice",
                );
                continue;
            }
            // Revoked here after an earlier import: not to be granted again.
            if found.contains_key(&grants::history_key(&member.grant)) {
                self.report
                    .conflict(Kind::Grant, &label, "the grant has ended here");
                continue;
            }
            match found
                .get(&key)
                .cloned()
                .map(grants::user_side_from_item)
                .transpose()?
            {
                Some(here) if here.uuid != member.grant.uuid => self.report.conflict(
                    Kind::Grant,
                    &label,
                    &format!("the user holds this role there already (grant {})", here.uuid),
                ),
                Some(here) => match differences(&[
                    ("created", here.created == member.grant.created),
                    ("created_by", here.created_by == member.grant.created_by),
                    (
                        "expiration_time",
                        here.expiration_time == member.grant.expiration_time,
                    ),
                ]) {
                    None => self.report.unchanged(Kind::Grant),
                    Some(why) => self.report.conflict(Kind::Grant, &label, &why),
                },
                None => per_user.entry(member.grant.user_uuid).or_default().push(member),
            }
        }
        // A user's grants go in writes of up to GRANTS_PER_WRITE, the k-th of every user in
        // round k, each conditioned on the counts the previous left.
        let mut rounds: Vec<Vec<Write>> = Vec::new();
        for (uuid, members) in per_user {
            let mut user = self.users[&uuid].clone();
            for (round, chunk) in members.chunks(GRANTS_PER_WRITE).enumerate() {
                if rounds.len() <= round {
                    rounds.push(Vec::new());
                }
                rounds[round].push(Write::Grants(user.clone(), chunk.to_vec()));
                for member in chunk {
                    *user
                        .customer_grants
                        .entry(member.grant.customer_uuid.to_string())
                        .or_default() += 1;
                }
            }
        }
        self.write(Kind::Grant, rounds).await?;
        Ok(())
    }

    async fn ended(&mut self) -> Result<()> {
        let mut candidates = Vec::new();
        for member in &self.snapshot.ended {
            match self.prepare_grant(member) {
                Ok(member) => candidates.push(member),
                Err(why) => {
                    let label = self.grant_label(member);
                    self.report.skip(Kind::EndedGrant, &label, &why);
                }
            }
        }
        let mut keys: Vec<Key> = candidates.iter().map(|m| grants::history_key(&m.grant)).collect();
        keys.extend(candidates.iter().map(|m| grants::user_side_key(&m.grant)));
        let found = self.read(keys).await?;
        let mut seen = HashSet::new();
        let mut writes = Vec::new();
        for member in candidates {
            let label = self.grant_label(&member);
            let live = found
                .get(&grants::user_side_key(&member.grant))
                .cloned()
                .map(grants::user_side_from_item)
                .transpose()?;
            if live.is_some_and(|live| live.uuid == member.grant.uuid) {
                self.report
                    .conflict(Kind::EndedGrant, &label, "the grant is live here");
            } else if !seen.insert(member.grant.uuid) {
                self.report
                    .conflict(Kind::EndedGrant, &label, "the source has it twice");
            } else if found.contains_key(&grants::history_key(&member.grant)) {
                self.report.unchanged(Kind::EndedGrant);
            } else {
                writes.push(Write::Ended(member));
            }
        }
        self.write(Kind::EndedGrant, vec![writes]).await?;
        Ok(())
    }

    async fn invitations(&mut self) -> Result<()> {
        let keys = self
            .snapshot
            .invitations
            .iter()
            .map(|i| invitations::invitation_item_key(&i.uuid))
            .collect();
        let found = self.read(keys).await?;
        let mut seen = HashSet::new();
        let mut writes = Vec::new();
        for invitation in &self.snapshot.invitations {
            let label = invitation_label(invitation);
            let scope_there = self.customer_of(invitation.scope_type, &invitation.scope_uuid);
            let why = if scope_there.is_none() {
                Some(format!(
                    "its {} {} is not imported",
                    invitation.scope_type.as_str(),
                    invitation.scope_uuid
                ))
            } else if !self.roles.contains_key(&invitation.role_uuid) {
                Some(format!("its role {} is not imported", invitation.role_uuid))
            } else {
                None
            };
            if let Some(why) = why {
                self.report.skip(Kind::Invitation, &label, &why);
                continue;
            }
            if !seen.insert(invitation.uuid) {
                self.report
                    .conflict(Kind::Invitation, &label, "the source has it twice");
                continue;
            }
            match found
                .get(&invitations::invitation_item_key(&invitation.uuid))
                .cloned()
                .map(invitations::invitation_from_item)
                .transpose()?
            {
                Some(here) => match differences(&[
                    (
                        "scope",
                        (here.scope_type, here.scope_uuid) == (invitation.scope_type, invitation.scope_uuid),
                    ),
                    ("role", here.role_uuid == invitation.role_uuid),
                    ("created", here.created == invitation.created),
                    ("created_by", here.created_by == invitation.created_by),
                    ("is_active", here.is_active == invitation.is_active),
                    ("expires", here.expires() == invitation.expires()),
                ]) {
                    None => {
                        self.report.unchanged(Kind::Invitation);
                        self.invitations.insert(here.uuid, here);
                    }
                    Some(why) => {
                        self.report.conflict(Kind::Invitation, &label, &why);
                        self.invitations.insert(here.uuid, here);
                    }
                },
                None => writes.push(Write::Invitation(Invitation {
                    customer_uuid: scope_there.unwrap_or(invitation.customer_uuid),
                    ..invitation.clone()
                })),
            }
        }
        for write in self.write(Kind::Invitation, vec![writes]).await? {
            if let Write::Invitation(invitation) = write {
                self.invitations.insert(invitation.uuid, invitation);
            }
        }
        Ok(())
    }

    async fn requests(&mut self) -> Result<()> {
        let mut candidates = Vec::new();
        for request in &self.snapshot.requests {
            let label = request_label(request);
            let Some(invitation) = self.invitations.get(&request.invitation_uuid) else {
                let why = format!("its invitation {} is not imported", request.invitation_uuid);
                self.report.skip(Kind::Request, &label, &why);
                continue;
            };
            if !self.users.contains_key(&request.created_by) {
                let why = format!("its requester {} is not imported", request.created_by);
                self.report.skip(Kind::Request, &label, &why);
                continue;
            }
            // What the request repeats of its invitation, from the invitation as it is here.
            let request = PermissionRequest {
                scope_type: invitation.scope_type,
                scope_uuid: invitation.scope_uuid,
                customer_uuid: invitation.customer_uuid,
                role_uuid: invitation.role_uuid,
                project_name_template: invitation.project_name_template.clone(),
                invitation_expires: Some(time::storage(&invitation.expires())),
                ..request.clone()
            };
            candidates.push((request, invitation.allow_multiple_requests));
        }
        let marker_key = |r: &PermissionRequest| {
            invitations::open_request_item_key(r.scope_type, &r.scope_uuid, &r.created_by)
        };
        let mut keys: Vec<Key> = candidates
            .iter()
            .map(|(r, _)| invitations::request_item_key(&r.uuid))
            .collect();
        keys.extend(
            candidates
                .iter()
                .filter(|(r, multiple)| r.state == State::Pending && !multiple)
                .map(|(r, _)| marker_key(r)),
        );
        let found = self.read(keys).await?;
        let mut seen = HashSet::new();
        let mut open = HashSet::new();
        let mut writes = Vec::new();
        for (request, allow_multiple) in candidates {
            let label = request_label(&request);
            if !seen.insert(request.uuid) {
                self.report
                    .conflict(Kind::Request, &label, "the source has it twice");
                continue;
            }
            if let Some(here) = found
                .get(&invitations::request_item_key(&request.uuid))
                .cloned()
                .map(invitations::request_from_item)
                .transpose()?
            {
                match differences(&[
                    ("invitation", here.invitation_uuid == request.invitation_uuid),
                    ("state", here.state == request.state),
                    ("created", here.created == request.created),
                    ("created_by", here.created_by == request.created_by),
                    ("reviewed_by", here.reviewed_by == request.reviewed_by),
                    ("reviewed_at", here.reviewed_at == request.reviewed_at),
                    ("review_comment", here.review_comment == request.review_comment),
                ]) {
                    None => self.report.unchanged(Kind::Request),
                    Some(why) => self.report.conflict(Kind::Request, &label, &why),
                }
                continue;
            }
            if request.state == State::Pending && !allow_multiple {
                let holder = found
                    .get(&marker_key(&request))
                    .cloned()
                    .map(invitations::open_request_owner)
                    .transpose()?;
                let why = match holder {
                    Some(other) => Some(format!(
                        "the user has another open request for this scope here ({other})"
                    )),
                    None if !open.insert(marker_key(&request)) => {
                        Some("the source has another open request of the user for this scope".to_owned())
                    }
                    None => None,
                };
                if let Some(why) = why {
                    self.report.conflict(Kind::Request, &label, &why);
                    continue;
                }
            }
            writes.push(Write::Request(request, allow_multiple));
        }
        self.write(Kind::Request, vec![writes]).await?;
        Ok(())
    }

    async fn reviews(&mut self) -> Result<()> {
        let mut candidates = Vec::new();
        for review in &self.snapshot.reviews {
            if self.customer_of(review.scope_type, &review.scope_uuid).is_none() {
                let why = format!(
                    "its {} {} is not imported",
                    review.scope_type.as_str(),
                    review.scope_uuid
                );
                self.report.skip(Kind::Review, &review_label(review), &why);
            } else {
                candidates.push(review);
            }
        }
        let found = self
            .read(candidates.iter().map(|r| reviews::item_key(&r.uuid)).collect())
            .await?;
        let mut seen = HashSet::new();
        let mut per_scope: BTreeMap<(ContentType, Id), Vec<Review>> = BTreeMap::new();
        for review in candidates {
            let label = review_label(review);
            if !seen.insert(review.uuid) {
                self.report
                    .conflict(Kind::Review, &label, "the source has it twice");
                continue;
            }
            match found
                .get(&reviews::item_key(&review.uuid))
                .cloned()
                .map(reviews::from_item)
                .transpose()?
            {
                Some(here) => match differences(&[
                    (
                        "scope",
                        (here.scope_type, here.scope_uuid) == (review.scope_type, review.scope_uuid),
                    ),
                    ("is_pending", here.is_pending == review.is_pending),
                    ("created", here.created == review.created),
                    ("closed", here.closed == review.closed),
                    ("reviewer", here.reviewer_uuid == review.reviewer_uuid),
                ]) {
                    None => self.report.unchanged(Kind::Review),
                    Some(why) => self.report.conflict(Kind::Review, &label, &why),
                },
                None => per_scope
                    .entry((review.scope_type, review.scope_uuid))
                    .or_default()
                    .push(Review {
                        customer_uuid: self
                            .customer_of(review.scope_type, &review.scope_uuid)
                            .unwrap_or(review.customer_uuid),
                        ..review.clone()
                    }),
            }
        }
        // The scopes as they are now: their pointers are the conditions of the writes.
        let wanted: Vec<(ContentType, Id)> = per_scope.keys().copied().collect();
        let scopes_here = self.read_scopes(&wanted).await?;
        let mut rounds: Vec<Vec<Write>> = Vec::new();
        for ((kind, uuid), mut reviews) in per_scope {
            // In a dry run, a scope this import would create is as it would be written.
            let planned = || match kind {
                ContentType::Customer => self.customers.get(&uuid).cloned().map(Scope::Customer),
                _ => self.projects.get(&uuid).cloned().map(Scope::Project),
            };
            let here = scopes_here
                .get(&uuid)
                .cloned()
                .or_else(|| self.options.dry_run.then(planned).flatten());
            let Some(mut scope) = here else {
                for review in &reviews {
                    self.report.conflict(
                        Kind::Review,
                        &review_label(review),
                        "its scope was deleted meanwhile",
                    );
                }
                continue;
            };
            // Oldest close first, the pending one last: the scope's pointers only move forward.
            reviews.sort_by(|a, b| {
                (a.is_pending, &a.closed, &a.created).cmp(&(b.is_pending, &b.closed, &b.created))
            });
            let pending_here = match &scope {
                Scope::Customer(c) => c.pending_review_uuid,
                Scope::Project(p) => p.pending_review_uuid,
            };
            let mut kept = Vec::new();
            let mut pending_kept = pending_here.is_some();
            for review in reviews {
                if review.is_pending && pending_kept {
                    let why = match pending_here {
                        Some(other) => format!("the scope has another pending review here ({other})"),
                        None => "the source has another pending review of the scope".to_owned(),
                    };
                    self.report.conflict(Kind::Review, &review_label(&review), &why);
                    continue;
                }
                pending_kept |= review.is_pending;
                kept.push(review);
            }
            for (round, chunk) in kept.chunks(REVIEWS_PER_WRITE).enumerate() {
                if rounds.len() <= round {
                    rounds.push(Vec::new());
                }
                rounds[round].push(Write::Reviews(scope.clone(), chunk.to_vec()));
                scope = with_reviews(scope, chunk);
            }
        }
        self.write(Kind::Review, rounds).await?;
        Ok(())
    }

    fn credentials_note(&mut self) {
        let users = &self.snapshot.users;
        let note = if self.snapshot.credentials {
            let passwords = users.iter().filter(|u| u.user.password_hash.is_some()).count();
            let tokens = users.iter().filter(|u| u.token.is_some()).count();
            format!(
                "credentials: the source holds {passwords} password hashes and {tokens} API tokens of its {} \
                 users; they come with their users (tokens sealed and found by keyed hash, passwords checked as \
                 Django does and re-hashed with Argon2id at each user's first login)",
                users.len()
            )
        } else {
            format!(
                "credentials: the API shows no passwords and no API tokens, so the {} users this import \
                 created have neither here: give them passwords (admin set-password) and new tokens, or \
                 import a dump instead",
                self.report.row(Kind::User).created
            )
        };
        self.report.notes.push(note);
    }
}

/// The scope's pointers as writing `reviews` leaves them.
fn with_reviews(scope: Scope, reviews: &[Review]) -> Scope {
    let pending = reviews.iter().find(|r| r.is_pending).map(|r| r.uuid);
    let closed = reviews.iter().filter_map(|r| r.closed.clone()).max();
    let update = |pointer: &mut Option<Id>, last: &mut Option<String>| {
        if pending.is_some() {
            *pointer = pending;
        }
        if closed.as_ref() > last.as_ref() {
            last.clone_from(&closed);
        }
    };
    match scope {
        Scope::Customer(mut c) => {
            update(&mut c.pending_review_uuid, &mut c.last_review_closed);
            Scope::Customer(c)
        }
        Scope::Project(mut p) => {
            update(&mut p.pending_review_uuid, &mut p.last_review_closed);
            Scope::Project(p)
        }
    }
}

fn invitation_label(invitation: &Invitation) -> String {
    format!(
        "invitation {} (on {} {})",
        invitation.uuid,
        invitation.scope_type.as_str(),
        invitation.scope_uuid
    )
}

fn request_label(request: &PermissionRequest) -> String {
    format!("request {} (of {})", request.uuid, request.created_by_username)
}

fn review_label(review: &Review) -> String {
    format!(
        "review {} (of {} {})",
        review.uuid,
        review.scope_type.as_str(),
        review.scope_uuid
    )
}
