//! The authorization engine every endpoint decides with: what a user may see and do, and why.
//!
//! - Staff may do everything; staff and support see everything.
//! - A grant on a customer applies to the customer's projects too.
//! - Expired grants count for nothing; disabled roles still honour existing grants (Waldur).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::grants::{self, Grant};
use crate::ids::Id;
use crate::roles::{self, ContentType, Role};
use crate::scopes::{self, Directory, Scope};
use crate::store::{Fetched, Store};
use crate::time::Timestamp;
use crate::users::User;

/// How long a container trusts its copy of the role definitions.
const ROLE_CACHE_TTL: Duration = Duration::from_secs(10);

/// All role definitions, by uuid and by name.
#[derive(Debug, Default)]
pub struct RoleSet {
    by_uuid: HashMap<Id, Role>,
}

impl RoleSet {
    pub fn new(roles: Vec<Role>) -> Self {
        RoleSet {
            by_uuid: roles.into_iter().map(|r| (r.uuid, r)).collect(),
        }
    }

    pub fn get(&self, uuid: &Id) -> Option<&Role> {
        self.by_uuid.get(uuid)
    }

    /// A role named by its uuid or by its name, as `add_user` accepts.
    pub fn find(&self, text: &str) -> Option<&Role> {
        match Id::parse(text) {
            Some(uuid) => self.get(&uuid),
            None => self.by_uuid.values().find(|r| r.name == text),
        }
    }
}

/// The role definitions of this container, reloaded (one Query) when older than the TTL.
#[derive(Default)]
pub struct RoleCache {
    cached: Mutex<Option<(Instant, Arc<RoleSet>)>>,
}

impl RoleCache {
    pub async fn get(&self, store: &Store) -> Result<Arc<RoleSet>> {
        if let Some((loaded, roles)) = self.cached.lock().map_err(Error::internal)?.as_ref()
            && loaded.elapsed() < ROLE_CACHE_TTL
        {
            return Ok(roles.clone());
        }
        let roles = Arc::new(RoleSet::new(roles::list(store).await?));
        *self.cached.lock().map_err(Error::internal)? = Some((Instant::now(), roles.clone()));
        Ok(roles)
    }

    /// Forgets the copy after this container changed a role.
    pub fn invalidate(&self) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = None;
        }
    }
}

/// Which change of membership is asked for; each has its own permission per scope type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Create,
    Update,
    Delete,
}

impl Membership {
    fn permission(self, scope: ContentType) -> String {
        let action = match self {
            Membership::Create => "CREATE",
            Membership::Update => "UPDATE",
            Membership::Delete => "DELETE",
        };
        format!("{}.{action}_PERMISSION", scope.as_str().to_ascii_uppercase())
    }
}

/// A grant that gives a permission: the answer to "why".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedBy {
    pub role: String,
    pub scope_type: ContentType,
    pub scope_uuid: Id,
}

/// What a scope is, for deciding: its type, id and customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeRef {
    pub content_type: ContentType,
    pub uuid: Id,
    pub customer_uuid: Id,
}

impl From<&Scope> for ScopeRef {
    fn from(scope: &Scope) -> Self {
        ScopeRef {
            content_type: scope.content_type(),
            uuid: scope.uuid(),
            customer_uuid: scope.customer_uuid(),
        }
    }
}

/// One user's standing: flags and active grants, with the role definitions to read them.
pub struct Access {
    pub user: AuthUser,
    grants: Vec<Grant>,
    roles: Arc<RoleSet>,
}

impl Access {
    /// Loads the user's grants: none when they came with the credentials (or for staff, who need
    /// none), else one GetItem of the user item.
    pub async fn load(store: &Store, cache: &RoleCache, user: &AuthUser, now: &Timestamp) -> Result<Self> {
        Ok(Self::load_with(store, cache, user, now, &[]).await?.0)
    }

    /// Loads the user's grants together with the items at `keys`, in one BatchGetItem: a request
    /// that reads its target and authorizes on it in one round trip.
    pub async fn load_with(
        store: &Store,
        cache: &RoleCache,
        user: &AuthUser,
        now: &Timestamp,
        keys: &[(String, String)],
    ) -> Result<(Self, Fetched)> {
        let own_key = User::key(&user.uuid);
        // The caller's item came with the credentials, or comes with the request's own items.
        let mut wanted = keys.to_vec();
        match &user.own {
            Some(_) => wanted.retain(|key| *key != own_key),
            None if !user.is_staff && !wanted.contains(&own_key) => wanted.push(own_key.clone()),
            None => {}
        }
        // So did the item the request's path names, when the route wants it (and it is not the
        // caller's own item, taken above).
        let mut prefetched = Vec::new();
        wanted.retain(|key| match user.take_prefetched(key) {
            Some(item) => {
                prefetched.extend(item);
                false
            }
            None => true,
        });
        let read = async {
            match wanted.as_slice() {
                [] => Ok(Vec::new()),
                [(pk, sk)] => Ok(store.get_item(pk, sk).await?.into_iter().collect()),
                _ => store.batch_get_items(&wanted).await,
            }
        };
        let (mut items, roles) = tokio::try_join!(read, cache.get(store))?;
        items.extend(prefetched);
        if let Some(own) = &user.own
            && keys.contains(&own_key)
        {
            items.push(crate::users::as_item(own)?);
        }
        let mut fetched = Fetched::new(items);
        let grants = match &user.own {
            _ if user.is_staff => Vec::new(),
            Some(own) => grants::held_by(own),
            None => {
                let own: Option<User> = if keys.contains(&own_key) {
                    fetched.peek(&own_key.0, &own_key.1)?
                } else {
                    fetched.take(&own_key.0, &own_key.1)?
                };
                own.map(|u| grants::held_by(&u)).unwrap_or_default()
            }
        };
        let grants = grants.into_iter().filter(|g| g.is_active_at(now)).collect();
        Ok((
            Access {
                user: user.clone(),
                grants,
                roles,
            },
            fetched,
        ))
    }

    /// The standing of `user`, read with their item (the permission check of another user, the
    /// creator of an auto-approve invitation). An inactive user's grants count for nothing.
    pub fn of_user(user: &User, roles: Arc<RoleSet>, now: &Timestamp) -> Self {
        let mut standing = user.principal();
        standing.is_staff &= user.is_active;
        standing.is_support &= user.is_active;
        Access {
            user: standing,
            grants: grants::held_by(user)
                .into_iter()
                .filter(|g| user.is_active && g.is_active_at(now))
                .collect(),
            roles,
        }
    }

    pub fn from_parts(user: AuthUser, grants: Vec<Grant>, roles: Arc<RoleSet>) -> Self {
        Access { user, grants, roles }
    }

    pub fn roles(&self) -> &RoleSet {
        &self.roles
    }

    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    pub fn sees_everything(&self) -> bool {
        self.user.is_staff || self.user.is_support
    }

    /// Customers the user holds a role in, directly or through one of their projects.
    pub fn connected_customers(&self) -> Vec<Id> {
        let mut customers: Vec<Id> = self.grants.iter().map(|g| g.customer_uuid).collect();
        customers.sort();
        customers.dedup();
        customers
    }

    /// Customers where the user holds a customer-level role (which reveals all projects).
    pub fn customers_with_customer_role(&self) -> Vec<Id> {
        let mut customers: Vec<Id> = self
            .grants
            .iter()
            .filter(|g| g.scope_type == ContentType::Customer)
            .map(|g| g.scope_uuid)
            .collect();
        customers.sort();
        customers.dedup();
        customers
    }

    /// Projects the user holds a project-level role in.
    pub fn direct_projects(&self) -> Vec<Id> {
        let mut projects: Vec<Id> = self
            .grants
            .iter()
            .filter(|g| g.scope_type == ContentType::Project)
            .map(|g| g.scope_uuid)
            .collect();
        projects.sort();
        projects.dedup();
        projects
    }

    /// Waldur's visibility: a customer is seen by anyone with a role in it or in one of its
    /// projects; a project by anyone with a role in it or in its customer.
    pub fn can_see(&self, scope: &ScopeRef) -> bool {
        self.sees_everything()
            || self.grants.iter().any(|g| match scope.content_type {
                ContentType::Customer => g.customer_uuid == scope.uuid,
                _ => {
                    g.scope_uuid == scope.uuid
                        || (g.scope_type == ContentType::Customer && g.scope_uuid == scope.customer_uuid)
                }
            })
    }

    /// Who sees the access reviews of a scope: a customer's reviews only those with a role on
    /// the customer itself (Waldur hides them from project-only members); a project's reviews
    /// whoever sees the project.
    pub fn can_see_reviews_of(&self, scope: &ScopeRef) -> bool {
        match scope.content_type {
            ContentType::Customer => {
                self.sees_everything()
                    || self
                        .grants
                        .iter()
                        .any(|g| g.scope_type == ContentType::Customer && g.scope_uuid == scope.uuid)
            }
            _ => self.can_see(scope),
        }
    }

    /// The grants that give `permission` on `scope`: roles held on the scope itself or on its
    /// customer. Empty for staff, who hold every permission without a grant.
    pub fn granted_by(&self, permission: &str, scope: &ScopeRef) -> Vec<GrantedBy> {
        self.grants
            .iter()
            .filter(|g| {
                (g.scope_type == scope.content_type && g.scope_uuid == scope.uuid)
                    || (g.scope_type == ContentType::Customer && g.scope_uuid == scope.customer_uuid)
            })
            .filter_map(|g| {
                let role = self.roles.get(&g.role_uuid)?;
                role.permissions
                    .iter()
                    .any(|p| p == permission)
                    .then(|| GrantedBy {
                        role: role.name.clone(),
                        scope_type: g.scope_type,
                        scope_uuid: g.scope_uuid,
                    })
            })
            .collect()
    }

    pub fn has_permission(&self, permission: &str, scope: &ScopeRef) -> bool {
        self.user.is_staff || !self.granted_by(permission, scope).is_empty()
    }

    /// The permissions the user holds on a scope (its own roles and its customer's).
    fn permissions_on(&self, scope: &ScopeRef) -> Vec<&str> {
        self.grants
            .iter()
            .filter(|g| {
                (g.scope_type == scope.content_type && g.scope_uuid == scope.uuid)
                    || (g.scope_type == ContentType::Customer && g.scope_uuid == scope.customer_uuid)
            })
            .filter_map(|g| self.roles.get(&g.role_uuid))
            .flat_map(|r| r.permissions.iter().map(String::as_str))
            .collect()
    }

    /// May the user manage invitations to `scope` and decide the requests they bring? Staff, and
    /// whoever may add members to the scope (on it or on its customer).
    pub fn manages(&self, scope: &ScopeRef) -> bool {
        self.has_permission(&Membership::Create.permission(scope.content_type), scope)
    }

    /// May the user grant, change or revoke `role` of `target` on `scope`? Staff may; so may
    /// whoever holds the membership permission on the scope's customer (a customer owner);
    /// authority from the project alone (a project manager) cannot touch its own roles and
    /// cannot hand out a role with permissions it does not hold itself.
    pub fn may_manage(&self, action: Membership, scope: &ScopeRef, target: &Id, role: &Role) -> Result<()> {
        self.may_change(action, scope, Some(target), role)
    }

    /// May the user offer `role` on `scope` to whoever asks (an invitation)? The rule of
    /// `may_manage` for a grantee not known yet; the grant itself is decided again, for the
    /// requester, when it is made.
    pub fn may_offer(&self, scope: &ScopeRef, role: &Role) -> Result<()> {
        self.may_change(Membership::Create, scope, None, role)
    }

    fn may_change(
        &self,
        action: Membership,
        scope: &ScopeRef,
        target: Option<&Id>,
        role: &Role,
    ) -> Result<()> {
        if self.user.is_staff {
            return Ok(());
        }
        let permission = action.permission(scope.content_type);
        let customer = ScopeRef {
            content_type: ContentType::Customer,
            uuid: scope.customer_uuid,
            customer_uuid: scope.customer_uuid,
        };
        if self.has_permission(&permission, &customer) {
            return Ok(());
        }
        if !self.has_permission(&permission, scope) {
            return Err(Error::PermissionDenied);
        }
        if target == Some(&self.user.uuid) {
            return Err(Error::non_field("User can not manage own role."));
        }
        let own = self.permissions_on(scope);
        if role.permissions.iter().all(|p| own.contains(&p.as_str())) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }
}

/// The customers (and, with `projects`, the projects) a user sees through their grants (not
/// for staff and support, who see everything and are served from the type-wide indexes), and the
/// project items read to find them, for naming rows without reading them again.
pub async fn visible_scopes(
    store: &Store,
    access: &Access,
    projects: bool,
) -> Result<(Vec<ScopeRef>, Directory)> {
    let mut visible = Vec::new();
    let mut directory = Directory::default();
    let customers = access.connected_customers();
    let projects = if projects {
        crate::store::concurrently(
            customers
                .iter()
                .map(|customer| scopes::projects_of(store, customer))
                .collect(),
        )
        .await?
    } else {
        Vec::new()
    };
    for (index, customer) in customers.into_iter().enumerate() {
        visible.push(ScopeRef {
            content_type: ContentType::Customer,
            uuid: customer,
            customer_uuid: customer,
        });
        for project in projects.get(index).into_iter().flatten() {
            visible.push(ScopeRef {
                content_type: ContentType::Project,
                uuid: project.uuid,
                customer_uuid: customer,
            });
            directory.insert(Scope::Project(project.clone()));
        }
    }
    visible.retain(|scope| access.can_see(scope));
    Ok((visible, directory))
}
