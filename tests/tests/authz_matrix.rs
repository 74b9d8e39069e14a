//! The authorization matrix: every HTTP route of template.yaml × eleven actors, each cell
//! compared with the status the policy gives (waldur-behaviour.md §1.2, §2–§5, the seeds, and
//! README "Decisions where we differ from Waldur on purpose"), never with a recording of what
//! the server answers.
//!
//! The rules, in order: no credentials → 401 unless the route is public; a bad token → 401
//! wherever DRF would authenticate it (peer sample 16: even on the public `GET /api/roles/`),
//! only the credential-free routes `/api/schema/` and `GET /api/v1/auth/` ignore it; an actor
//! the policy allows → any 2xx; an actor who can see the object but may not act on it → 403;
//! an actor who cannot see it → 404, never 403 (400 where the object is named by a URL or pk in
//! the body, Waldur's "Can't restore object from url" / "Invalid pk", peer sample 52).
//!
//! Every route of the template must have a row in `rule`, so a route added later without one
//! fails this test. Reads run against one shared world; each cell of a state-changing route
//! gets its own fresh target (role, victim user, invitation, request, project, customer,
//! review, workspace), so that one cell's success cannot spoil the next.
//!
//! Run with `-- --nocapture` to see the size of the matrix.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Duration;
use futures::stream::{self, StreamExt};
use integration_tests::TestApi;
use serde_json::{Value, json};
use shared::grants::{self, NewGrant};
use shared::ids::Id;
use shared::roles::ContentType;
use shared::users::User;

const PASSWORD: &str = "matrix passphrase";
const BAD_TOKEN: &str = "0badc0ffee0badc0ffee0badc0ffee0badc0ffee";
const OWNER_ROLE: &str = "CUSTOMER.OWNER";
const MANAGER_ROLE: &str = "PROJECT.MANAGER";
const ADMIN_ROLE: &str = "PROJECT.ADMIN";
const MEMBER_ROLE: &str = "PROJECT.MEMBER";
/// A project role no actor holds, for invitations (so that requesting it is always possible).
const GUEST_ROLE: &str = "PROJECT.MATRIX_GUEST";

/// Who calls. The Waldur family is relative to one customer C and its project P:
///
/// | actor | grants |
/// | --- | --- |
/// | `Expired` | CUSTOMER.OWNER on C and PROJECT.MANAGER on P, both past their expiration (not swept) |
/// | `Plain` | none |
/// | `Member` / `Manager` / `ProjectAdmin` | PROJECT.MEMBER / MANAGER / ADMIN on P |
/// | `Owner` | CUSTOMER.OWNER on C |
/// | `OtherOwner` | CUSTOMER.OWNER on another customer C2 |
/// | `Support` / `Staff` | none; `is_support` / `is_staff` |
///
/// The `/api/v1/` workspace family has its own roles (OWNER, EDITOR, READER on a workspace W),
/// so there the same users stand for:
///
/// | actor | on W |
/// | --- | --- |
/// | `Expired` | a former READER whose permission was removed (the family has no expiry) |
/// | `Plain` | nothing |
/// | `Member` | READER |
/// | `Manager` | EDITOR |
/// | `ProjectAdmin` | EDITOR with data access |
/// | `Owner` | OWNER (W's creator) |
/// | `OtherOwner` | OWNER of another workspace W2 only |
/// | `Support` | nothing (the safer reading: nothing in seed 003 or the README widens it here) |
/// | `Staff` | the admin, who may act on any workspace (README) |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Actor {
    Anonymous,
    BadToken,
    Expired,
    Plain,
    Member,
    Manager,
    ProjectAdmin,
    Owner,
    OtherOwner,
    Support,
    Staff,
}

use Actor::*;

const ACTORS: [Actor; 11] = [
    Anonymous,
    BadToken,
    Expired,
    Plain,
    Member,
    Manager,
    ProjectAdmin,
    Owner,
    OtherOwner,
    Support,
    Staff,
];
const AUTHENTICATED: &[Actor] = &[
    Expired,
    Plain,
    Member,
    Manager,
    ProjectAdmin,
    Owner,
    OtherOwner,
    Support,
    Staff,
];
/// Who sees C and P (and so their members): a role in P or C, or global support/staff (§3.3).
const SEE_SCOPE: &[Actor] = &[Member, Manager, ProjectAdmin, Owner, Support, Staff];
const STAFF: &[Actor] = &[Staff];
const STAFF_SUPPORT: &[Actor] = &[Support, Staff];
const OWNER_STAFF: &[Actor] = &[Owner, Staff];
/// Who manages P's memberships and invitations (§3.6, §4.A.2, README: owners and project
/// managers of their project, staff).
const PROJECT_MANAGERS: &[Actor] = &[Manager, Owner, Staff];
/// Customer permission reviews are seen by customer-level role holders only; project-only
/// users do not see them (§3.3, §5.2, peer sample 31).
const CUSTOMER_REVIEW_SEERS: &[Actor] = &[Owner, Support, Staff];
/// A permission request is seen by its requester, by whoever may decide it (README: owners and
/// project managers of its project, staff) and by support (§3.3, §4.A.5).
const REQUEST_SEERS: &[Actor] = &[Manager, Owner, Support, Staff];
/// Who holds a permission on W (or is the admin).
const WORKSPACE_SEERS: &[Actor] = &[Member, Manager, ProjectAdmin, Owner, Staff];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Any 2xx.
    Allow,
    /// Exactly this status.
    Deny(u16),
}

/// The expectation of one route as a function of the actor.
#[derive(Clone, Copy)]
struct Rule {
    anonymous: bool,
    bad_token: bool,
    may: &'static [Actor],
    sees: &'static [Actor],
    /// The answer to an authenticated actor who cannot see the target.
    hidden: u16,
    /// The answer to an actor in `may`, when it is not a success (an operation whose feature
    /// has nothing to act on answers its check for everyone allowed to ask).
    granted: Option<u16>,
}

impl Rule {
    fn expect(&self, actor: Actor) -> Expect {
        match actor {
            Anonymous if self.anonymous => Expect::Allow,
            BadToken if self.bad_token => Expect::Allow,
            Anonymous | BadToken => Expect::Deny(401),
            actor if self.may.contains(&actor) => self.granted.map_or(Expect::Allow, Expect::Deny),
            actor if self.sees.contains(&actor) => Expect::Deny(403),
            _ => Expect::Deny(self.hidden),
        }
    }

    fn hidden(self, status: u16) -> Self {
        Rule {
            hidden: status,
            ..self
        }
    }

    fn granted(self, status: u16) -> Self {
        Rule {
            granted: Some(status),
            ..self
        }
    }

    fn anonymous(self) -> Self {
        Rule {
            anonymous: true,
            ..self
        }
    }
}

/// Allowed to `may`; 403 for the others in `sees`; 404 for the rest.
const fn guarded(may: &'static [Actor], sees: &'static [Actor]) -> Rule {
    Rule {
        anonymous: false,
        bad_token: false,
        may,
        sees,
        hidden: 404,
        granted: None,
    }
}

/// Readable by whoever sees the target, 404 for the rest.
const fn visible(seers: &'static [Actor]) -> Rule {
    guarded(seers, seers)
}

/// Any authenticated user (lists answer 200 and are filtered to what the caller sees).
const fn authenticated() -> Rule {
    visible(AUTHENTICATED)
}

/// The expected status of every actor on a route, or `None` when the route has no row.
fn rule(method: &str, path: &str) -> Option<Rule> {
    let read = matches!(method, "GET" | "HEAD");
    Some(match (method, path) {
        // Credential-free documents: public for everyone, a bad token included.
        (_, "/api/schema/" | "/api/v1/auth/") if read => Rule {
            anonymous: true,
            bad_token: true,
            ..authenticated()
        },
        // Logins are public; a bad token is still refused as DRF does (§1, peer sample 16).
        ("POST", "/api-auth/password/" | "/api/v1/auth/") => authenticated().anonymous(),
        ("DELETE", "/api/v1/auth/") => authenticated(),
        // Roles: reading is public (§2.4, Q1), every write is for staff; roles are visible to
        // all, so a non-staff writer gets 403.
        (_, "/api/roles/" | "/api/roles/{uuid}/") if read => authenticated().anonymous(),
        (
            _,
            "/api/roles/"
            | "/api/roles/{uuid}/"
            | "/api/roles/{uuid}/update_descriptions/"
            | "/api/roles/{uuid}/enable/"
            | "/api/roles/{uuid}/disable/"
            | "/api/roles/{uuid}/clone_to_customer/",
        ) => guarded(STAFF, AUTHENTICATED),
        (
            _,
            "/api/customers/"
            | "/api/projects/"
            | "/api/users/"
            | "/api/users/me/"
            | "/api/customer-permissions/"
            | "/api/project-permissions/"
            | "/api/user-permissions/"
            | "/api/user-group-invitations/"
            | "/api/user-permission-requests/"
            | "/api/customer-permissions-reviews/"
            | "/api/project-permissions-reviews/"
            | "/api/v1/workspaces/"
            | "/api/v1/workspace_permissions/",
        ) if read => authenticated(),
        // Customers: created and deleted by staff only (newer Waldur also lets holders of
        // CUSTOMER.CREATE / CUSTOMER.DELETE do it; nothing in the spec or README says the product
        // does, so the safer reading); updated with CUSTOMER.UPDATE (owners); their memberships
        // managed by owners (README: CUSTOMER.*_PERMISSION on the owner).
        ("POST", "/api/customers/") => guarded(STAFF, AUTHENTICATED),
        (_, "/api/customers/{uuid}/" | "/api/customers/{uuid}/list_users/") if read => visible(SEE_SCOPE),
        // The member overview (§3.11): staff, support, the customer's owners and support.
        (_, "/api/customers/{uuid}/users/") if read => guarded(&[Owner, Support, Staff], SEE_SCOPE),
        ("PUT" | "PATCH", "/api/customers/{uuid}/") => guarded(OWNER_STAFF, SEE_SCOPE),
        ("DELETE", "/api/customers/{uuid}/") => guarded(STAFF, SEE_SCOPE),
        ("POST", "/api/customers/{uuid}/contact/") => guarded(OWNER_STAFF, SEE_SCOPE),
        (
            "POST",
            "/api/customers/{uuid}/add_user/"
            | "/api/customers/{uuid}/update_user/"
            | "/api/customers/{uuid}/delete_user/",
        ) => guarded(OWNER_STAFF, SEE_SCOPE),
        // Projects: PROJECT.CREATE / DELETE are the owner's, PROJECT.UPDATE also the project
        // manager's; memberships by owners and the project's managers (§3.6).
        ("POST", "/api/projects/") => guarded(OWNER_STAFF, SEE_SCOPE).hidden(400),
        (_, "/api/projects/{uuid}/" | "/api/projects/{uuid}/list_users/") if read => visible(SEE_SCOPE),
        ("PUT" | "PATCH", "/api/projects/{uuid}/") => guarded(PROJECT_MANAGERS, SEE_SCOPE),
        ("DELETE", "/api/projects/{uuid}/") => guarded(OWNER_STAFF, SEE_SCOPE),
        (_, "/api/projects/{uuid}/other_users/") if read => visible(SEE_SCOPE),
        (
            "POST",
            "/api/projects/{uuid}/set_slug/"
            | "/api/projects/{uuid}/sync_user_roles/"
            | "/api/projects/{uuid}/move_project/",
        ) => guarded(STAFF, SEE_SCOPE),
        // Deleted projects are gone for good here: whoever may recover one (PROJECT.CREATE on
        // its customer) learns that this one is not deleted (README).
        ("POST", "/api/projects/{uuid}/recover/") => guarded(OWNER_STAFF, SEE_SCOPE).granted(400),
        // A grant by its row: the authorization of delete_user and add_user on its scope.
        ("POST", "/api/user-permissions/{uuid}/revoke/" | "/api/user-permissions/{uuid}/restore/") => {
            guarded(PROJECT_MANAGERS, SEE_SCOPE)
        }
        (
            "POST",
            "/api/projects/{uuid}/add_user/"
            | "/api/projects/{uuid}/update_user/"
            | "/api/projects/{uuid}/delete_user/",
        ) => guarded(PROJECT_MANAGERS, SEE_SCOPE),
        // Users (§3.10): created by staff; a user is changed by staff or themself (the target
        // here is another user, a member of P); visible to whoever shares a scope with them.
        ("POST", "/api/users/") => guarded(STAFF, AUTHENTICATED),
        (_, "/api/users/{uuid}/") if read => visible(SEE_SCOPE),
        ("PUT" | "PATCH" | "DELETE", "/api/users/{uuid}/")
        | (
            "POST",
            "/api/users/{uuid}/refresh_token/"
            | "/api/users/{uuid}/change_password/"
            | "/api/users/{uuid}/remove_password/"
            | "/api/users/{uuid}/change_email/"
            | "/api/users/{uuid}/cancel_change_email/",
        ) => guarded(STAFF, SEE_SCOPE),
        (_, "/api/users/{uuid}/token/") if read => guarded(STAFF, SEE_SCOPE),
        // The mailed code is the credential: no login, and a bad token is not looked at.
        ("POST", "/api/users/confirm_email/") => Rule {
            anonymous: true,
            bad_token: true,
            ..authenticated()
        },
        // Logout ends the caller's own token (and the matrix gives the actor a new one).
        ("POST", "/api-auth/logout/") => authenticated(),
        // Permission listings: a grant is seen by whoever sees its scope; the permission check
        // of another user is for staff and support (README).
        (_, "/api/permissions/check/") if read => guarded(STAFF_SUPPORT, AUTHENTICATED),
        (
            _,
            "/api/customer-permissions/{pk}/"
            | "/api/project-permissions/{pk}/"
            | "/api/user-permissions/{pk}/",
        ) if read => visible(SEE_SCOPE),
        // Group invitations (§4.A.3): retrieve, request and cancel are reachable by any
        // authenticated user (the invitation is visible to all, so a non-manager gets 403);
        // creating needs a visible scope (else 400, Q18) and the right to manage it.
        ("POST", "/api/user-group-invitations/") => guarded(PROJECT_MANAGERS, SEE_SCOPE).hidden(400),
        (_, "/api/user-group-invitations/{uuid}/") if read => authenticated(),
        // The matrix's invitation is a project invitation, which offers no projects: 404 for
        // everyone (Waldur), whoever may read the invitation itself.
        (_, "/api/user-group-invitations/{uuid}/projects/") if read => guarded(&[], &[]),
        ("POST", "/api/user-group-invitations/{uuid}/cancel/")
        | ("PUT" | "PATCH" | "DELETE", "/api/user-group-invitations/{uuid}/") => {
            guarded(PROJECT_MANAGERS, AUTHENTICATED)
        }
        (
            "POST",
            "/api/user-group-invitations/{uuid}/submit_request/"
            | "/api/user-group-invitations/{uuid}/request/",
        ) => authenticated(),
        // Permission requests (§4.A.5, §4.B, README): deciders decide, the requester or staff
        // cancel, support only looks.
        (_, "/api/user-permission-requests/{uuid}/") if read => visible(REQUEST_SEERS),
        (
            "POST",
            "/api/user-permission-requests/{uuid}/approve/" | "/api/user-permission-requests/{uuid}/reject/",
        ) => guarded(PROJECT_MANAGERS, REQUEST_SEERS),
        ("POST", "/api/user-permission-requests/{uuid}/cancel_request/")
        | ("DELETE", "/api/user-permission-requests/{uuid}/") => guarded(STAFF, REQUEST_SEERS),
        // Reviews (§5, README): closing and revoking are for the customer's owners and staff.
        (
            _,
            "/api/customer-permissions-reviews/{uuid}/"
            | "/api/customer-permissions-reviews/{uuid}/permissions/",
        ) if read => visible(CUSTOMER_REVIEW_SEERS),
        (
            "POST",
            "/api/customer-permissions-reviews/{uuid}/close/"
            | "/api/customer-permissions-reviews/{uuid}/revoke/",
        ) => guarded(OWNER_STAFF, CUSTOMER_REVIEW_SEERS),
        (
            _,
            "/api/project-permissions-reviews/{uuid}/"
            | "/api/project-permissions-reviews/{uuid}/permissions/",
        ) if read => visible(SEE_SCOPE),
        (
            "POST",
            "/api/project-permissions-reviews/{uuid}/close/"
            | "/api/project-permissions-reviews/{uuid}/revoke/",
        ) => guarded(OWNER_STAFF, SEE_SCOPE),
        // Workspaces (seed 003, README): anyone creates one and owns it; only its owner (or
        // staff) shares, changes, removes or transfers; those without a permission see nothing.
        ("POST", "/api/v1/workspaces/") => authenticated(),
        (_, "/api/v1/workspaces/{id}/" | "/api/v1/workspace_permissions/{id}/") if read => {
            visible(WORKSPACE_SEERS)
        }
        ("POST", "/api/v1/workspace_permissions/") => guarded(OWNER_STAFF, WORKSPACE_SEERS).hidden(400),
        ("DELETE", "/api/v1/workspaces/{id}/")
        | ("PATCH" | "DELETE", "/api/v1/workspace_permissions/{id}/")
        | ("PATCH", "/api/v1/workspace_permissions/transfer/") => guarded(OWNER_STAFF, WORKSPACE_SEERS),
        _ => return None,
    })
}

/// Every `HttpApi` event of template.yaml: (method, path).
fn template_routes() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml");
    let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("template.yaml is YAML");
    let mut routes = Vec::new();
    for (_, resource) in template["Resources"].as_mapping().expect("Resources") {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (_, event) in events {
            // `$default` serves what no route does (404/405), tested in `wire.rs`.
            if event["Type"] == "HttpApi" && event["Properties"]["Path"] != "$default" {
                let properties = &event["Properties"];
                let method = properties["Method"].as_str().expect("Method").to_uppercase();
                let path = properties["Path"].as_str().expect("Path").to_owned();
                routes.push((method, path));
            }
        }
    }
    routes
}

/// The objects a request names, by the collection that precedes the path parameter.
#[derive(Clone, Default)]
struct Ids {
    role: String,
    customer: String,
    project: String,
    user: String,
    customer_grant: String,
    project_grant: String,
    invitation: String,
    request: String,
    customer_review: String,
    project_review: String,
    workspace: String,
    workspace_permission: String,
}

impl Ids {
    fn for_collection(&self, collection: &str) -> &str {
        match collection {
            "roles" => &self.role,
            "customers" => &self.customer,
            "projects" => &self.project,
            "users" => &self.user,
            "customer-permissions" => &self.customer_grant,
            "project-permissions" | "user-permissions" => &self.project_grant,
            "user-group-invitations" => &self.invitation,
            "user-permission-requests" => &self.request,
            "customer-permissions-reviews" => &self.customer_review,
            "project-permissions-reviews" => &self.project_review,
            "workspaces" => &self.workspace,
            "workspace_permissions" => &self.workspace_permission,
            other => panic!("no object for a path parameter after /{other}/"),
        }
    }

    fn fill(&self, template: &str) -> String {
        let segments: Vec<&str> = template.split('/').collect();
        segments
            .iter()
            .enumerate()
            .map(|(i, segment)| {
                if segment.starts_with('{') {
                    self.for_collection(segments[i - 1]).to_owned()
                } else {
                    (*segment).to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// The shared world: actors, C and P with their grants, C2, a victim user (PROJECT.MEMBER of
/// P), an invitation and a request on P, pending reviews of C and P, and workspaces.
struct World {
    api: TestApi,
    /// Behind a lock: a logout cell ends the actor's token, and the actor gets a new one.
    tokens: std::sync::Mutex<HashMap<Actor, String>>,
    users: HashMap<Actor, User>,
    ids: Ids,
    customer_url: String,
    project_url: String,
    /// C2's URL (where moved projects go).
    other_customer_url: String,
    victim: User,
    login: User,
    heir: User,
    workspace_owner_token: String,
    serial: AtomicUsize,
}

fn status_ok(status: u16) -> bool {
    (200..300).contains(&status)
}

impl World {
    async fn new() -> Self {
        let api = TestApi::new().await;
        let mut tokens = HashMap::new();
        let mut users = HashMap::new();
        for actor in AUTHENTICATED {
            let name = format!("{actor:?}").to_lowercase();
            let (user, token) = api.user(&name, *actor == Staff, *actor == Support).await;
            tokens.insert(*actor, token);
            users.insert(*actor, user);
        }
        let login = api.user("login", false, false).await.0;
        shared::users::set_password(api.store(), None, &login, PASSWORD, &shared::time::now())
            .await
            .expect("set the password");
        let mut world = World {
            tokens: std::sync::Mutex::new(tokens),
            users,
            ids: Ids::default(),
            customer_url: String::new(),
            project_url: String::new(),
            other_customer_url: String::new(),
            victim: api.user("victim", false, false).await.0,
            login,
            heir: api.user("heir", false, false).await.0,
            workspace_owner_token: api.user("wsowner", false, false).await.1,
            serial: AtomicUsize::new(0),
            api,
        };

        let (customer, project) = world.api.customer_with_project("Main Org", "Main Project").await;
        world.ids.customer = text(&customer["uuid"]);
        world.customer_url = text(&customer["url"]);
        world.ids.project = text(&project["uuid"]);
        world.project_url = text(&project["url"]);
        let (other, _) = world
            .api
            .customer_with_project("Other Org", "Other Project")
            .await;
        let other_path = format!("/api/customers/{}/", text(&other["uuid"]));
        world.other_customer_url = text(&other["url"]);
        world
            .api
            .grant(&other_path, &world.users[&OtherOwner].uuid, OWNER_ROLE)
            .await;
        for actor in [Expired, Member, Manager, ProjectAdmin, Owner] {
            let (customer, project) = (world.ids.customer.clone(), world.ids.project.clone());
            world.relate(actor, Some(&customer), Some(&project)).await;
        }
        world
            .api
            .grant(&world.project_path(), &world.victim.uuid, MEMBER_ROLE)
            .await;

        let guest = json!({"name": GUEST_ROLE, "content_type": "project", "permissions": []});
        let guest = world.admin("POST", "/api/roles/", Some(guest)).await;
        world.ids.role = text(&guest["uuid"]);
        world.ids.user = world.victim.uuid.to_string();
        world.ids.customer_grant = world
            .grant_uuid(&world.customer_path(), &world.users[&Owner].uuid)
            .await;
        world.ids.project_grant = world.grant_uuid(&world.project_path(), &world.victim.uuid).await;
        world.ids.invitation = world.new_invitation().await;
        world.ids.request = world.new_request(&world.ids.invitation).await;
        world.ids.customer_review = world
            .open_review(ContentType::Customer, &world.ids.customer)
            .await;
        world.ids.project_review = world.open_review(ContentType::Project, &world.ids.project).await;

        let owner_token = world.tokens.lock().unwrap()[&Owner].clone();
        let workspace = world.new_workspace_of(&owner_token, "Main workspace").await;
        for actor in [Expired, Member, Manager, ProjectAdmin] {
            world.share_workspace(actor, workspace, &owner_token).await;
        }
        let victim_permission = world
            .share(&owner_token, workspace, world.victim.pk, "READER", false)
            .await;
        world.ids.workspace = workspace.to_string();
        world.ids.workspace_permission = victim_permission.to_string();
        let other_token = world.tokens.lock().unwrap()[&OtherOwner].clone();
        world.new_workspace_of(&other_token, "Other workspace").await;
        world
    }

    /// A new token for an actor whose token a cell ended.
    async fn renew_token(&self, actor: Actor) {
        let Some(user) = self.users.get(&actor) else {
            return;
        };
        let user = shared::users::get(self.api.store(), &user.uuid)
            .await
            .expect("read the actor")
            .expect("the actor exists");
        let token = shared::users::issue_token(self.api.store(), None, &user, &shared::time::now())
            .await
            .expect("a new token");
        self.tokens.lock().unwrap().insert(actor, token);
    }

    fn next(&self) -> usize {
        self.serial.fetch_add(1, Ordering::SeqCst)
    }

    fn token(&self, actor: Actor) -> Option<String> {
        match actor {
            Anonymous => None,
            BadToken => Some(BAD_TOKEN.to_owned()),
            actor => Some(self.tokens.lock().unwrap()[&actor].clone()),
        }
    }

    fn customer_path(&self) -> String {
        format!("/api/customers/{}/", self.ids.customer)
    }

    fn project_path(&self) -> String {
        format!("/api/projects/{}/", self.ids.project)
    }

    /// A setup request as the bootstrap admin, which must succeed.
    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.with(&self.api.admin_token, method, path, body).await
    }

    /// A setup request with `token`, which must succeed.
    async fn with(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = self.api.call(method, path, Some(token), body).await;
        assert!(
            status_ok(answer.status),
            "setup {method} {path}: {} {}",
            answer.status,
            answer.text
        );
        answer.json
    }

    async fn new_user(&self, prefix: &str) -> User {
        let name = format!("{prefix}{}", self.next());
        self.api.user(&name, false, false).await.0
    }

    async fn new_customer(&self) -> (String, String) {
        let name = format!("Matrix Org {}", self.next());
        let customer = self
            .admin("POST", "/api/customers/", Some(json!({ "name": name })))
            .await;
        (text(&customer["uuid"]), text(&customer["url"]))
    }

    async fn new_project(&self, customer_url: &str) -> String {
        let name = format!("Matrix Project {}", self.next());
        let body = json!({"name": name, "customer": customer_url});
        text(&self.admin("POST", "/api/projects/", Some(body)).await["uuid"])
    }

    /// A custom role nobody holds: its uuid and name.
    async fn new_role(&self) -> (String, String) {
        let name = format!("MATRIX.ROLE_{}", self.next());
        let body = json!({"name": name, "content_type": "project", "permissions": []});
        (
            text(&self.admin("POST", "/api/roles/", Some(body)).await["uuid"]),
            name,
        )
    }

    /// An invitation to P that takes several requests of one user (an actor asks in more than
    /// one cell; one open request per scope and user is checked in `wire.rs`).
    async fn new_invitation(&self) -> String {
        let body = json!({"scope": self.project_url, "role": self.ids.role, "allow_multiple_requests": true});
        text(
            &self
                .admin("POST", "/api/user-group-invitations/", Some(body))
                .await["uuid"],
        )
    }

    /// A pending request by a fresh requester.
    async fn new_request(&self, invitation: &str) -> String {
        let name = format!("requester{}", self.next());
        let (_, token) = self.api.user(&name, false, false).await;
        let path = format!("/api/user-group-invitations/{invitation}/submit_request/");
        text(&self.with(&token, "POST", &path, None).await["uuid"])
    }

    /// Opens a pending review of the scope (as the scheduler would).
    async fn open_review(&self, kind: ContentType, scope: &str) -> String {
        let store = self.api.store();
        let now = shared::time::now();
        let scope = shared::scopes::get_scope(store, kind, &Id::parse(scope).expect("uuid"))
            .await
            .expect("read scope")
            .expect("scope exists");
        shared::reviews::open(store, &scope, &now, &now)
            .await
            .expect("open review")
            .expect("a review opens")
            .uuid
            .to_string()
    }

    /// The uuid (pk) of `user`'s grant on a scope.
    async fn grant_uuid(&self, scope_path: &str, user: &Id) -> String {
        let members = self
            .admin("GET", &format!("{scope_path}list_users/?user={user}"), None)
            .await;
        text(&members[0]["uuid"])
    }

    /// A grant whose expiration has passed and that no sweep has revoked yet.
    async fn expired_grant(&self, kind: ContentType, scope: &str, user: &User, role_name: &str) {
        let store = self.api.store();
        let now = shared::time::now();
        let scope = shared::scopes::get_scope(store, kind, &Id::parse(scope).expect("uuid"))
            .await
            .expect("read scope")
            .expect("scope exists");
        let role = shared::roles::list(store)
            .await
            .expect("roles")
            .into_iter()
            .find(|r| r.name == role_name)
            .expect("system role");
        let new = NewGrant {
            scope: &scope,
            user,
            role: &role,
            expiration_time: Some(now - Duration::days(1)),
            granted_by: None,
        };
        grants::grant(store, &new, &now).await.expect("expired grant");
    }

    /// Gives `actor` its relation to a customer and/or project (see `Actor`).
    async fn relate(&self, actor: Actor, customer: Option<&str>, project: Option<&str>) {
        let Some(user) = self.users.get(&actor) else {
            return;
        };
        let role = match actor {
            Member => MEMBER_ROLE,
            Manager => MANAGER_ROLE,
            ProjectAdmin => ADMIN_ROLE,
            Owner => OWNER_ROLE,
            _ => "",
        };
        match (actor, customer, project) {
            (Owner, Some(customer), _) => {
                self.api
                    .grant(&format!("/api/customers/{customer}/"), &user.uuid, role)
                    .await;
            }
            (Member | Manager | ProjectAdmin, _, Some(project)) => {
                self.api
                    .grant(&format!("/api/projects/{project}/"), &user.uuid, role)
                    .await;
            }
            (Expired, _, _) => {
                if let Some(customer) = customer {
                    self.expired_grant(ContentType::Customer, customer, user, OWNER_ROLE)
                        .await;
                }
                if let Some(project) = project {
                    self.expired_grant(ContentType::Project, project, user, MANAGER_ROLE)
                        .await;
                }
            }
            _ => {}
        }
    }

    async fn new_workspace_of(&self, token: &str, name: &str) -> i64 {
        let created = self
            .with(
                token,
                "POST",
                "/api/v1/workspaces/",
                Some(json!({ "name": name })),
            )
            .await;
        created["id"].as_i64().expect("workspace id")
    }

    async fn share(&self, token: &str, workspace: i64, user_pk: i64, role: &str, data_access: bool) -> i64 {
        let body = json!({"workspace": workspace, "user": user_pk, "role": role, "data_access": data_access});
        let shared = self
            .with(token, "POST", "/api/v1/workspace_permissions/", Some(body))
            .await;
        shared["pk"].as_i64().expect("permission pk")
    }

    /// Gives `actor` its workspace role on `workspace` (see `Actor`).
    async fn share_workspace(&self, actor: Actor, workspace: i64, owner_token: &str) {
        let Some(user) = self.users.get(&actor) else {
            return;
        };
        match actor {
            Member => {
                self.share(owner_token, workspace, user.pk, "READER", false).await;
            }
            Manager => {
                self.share(owner_token, workspace, user.pk, "EDITOR", false).await;
            }
            ProjectAdmin => {
                self.share(owner_token, workspace, user.pk, "EDITOR", true).await;
            }
            Expired => {
                let pk = self.share(owner_token, workspace, user.pk, "READER", false).await;
                let path = format!("/api/v1/workspace_permissions/{pk}/");
                self.with(owner_token, "DELETE", &path, None).await;
            }
            _ => {}
        }
    }

    /// A fresh workspace with `actor` in its role and the victim as READER: (workspace, the
    /// victim's permission).
    async fn new_workspace(&self, actor: Actor) -> (i64, i64) {
        let owner_token = if actor == Owner {
            self.tokens.lock().unwrap()[&Owner].clone()
        } else {
            self.workspace_owner_token.clone()
        };
        let name = format!("Matrix workspace {}", self.next());
        let workspace = self.new_workspace_of(&owner_token, &name).await;
        self.share_workspace(actor, workspace, &owner_token).await;
        let victim = self
            .share(&owner_token, workspace, self.victim.pk, "READER", false)
            .await;
        (workspace, victim)
    }

    /// The concrete path and body of one cell, with fresh targets for state-changing routes.
    async fn prepare(&self, method: &str, template: &str, actor: Actor) -> (String, Option<Value>) {
        let mut ids = self.ids.clone();
        let n = self.next();
        let changed = "Changed by the authorization matrix";
        let body = match (method, template) {
            ("GET" | "HEAD", "/api/permissions/check/") => {
                let path = format!(
                    "{template}?user={}&permission=PROJECT.UPDATE&scope_type=project&scope={}",
                    self.victim.uuid, self.ids.project
                );
                return (path, None);
            }
            ("GET" | "HEAD", _) => None,
            ("POST", "/api-auth/password/") => {
                Some(json!({"username": self.login.username, "password": PASSWORD}))
            }
            ("POST", "/api/v1/auth/") => Some(json!({"email": self.login.email, "password": PASSWORD})),
            ("DELETE", "/api/v1/auth/") => None,
            ("POST", "/api/roles/") => {
                Some(json!({"name": format!("MATRIX.NEW_{n}"), "content_type": "project", "permissions": []}))
            }
            (_, t) if t.starts_with("/api/roles/{uuid}/") => {
                let (uuid, name) = self.new_role().await;
                ids.role = uuid;
                match (method, t) {
                    ("PUT", "/api/roles/{uuid}/") => {
                        Some(json!({"name": name, "content_type": "project", "permissions": []}))
                    }
                    ("PUT", _) => Some(json!({ "description_en": changed })),
                    ("POST", "/api/roles/{uuid}/clone_to_customer/") => {
                        Some(json!({"customer": self.ids.customer}))
                    }
                    ("PATCH", _) => Some(json!({ "description": changed })),
                    _ => None,
                }
            }
            ("POST", "/api/customers/") => Some(json!({"name": format!("Created Org {n}")})),
            ("PUT", "/api/customers/{uuid}/") => Some(json!({"name": "Main Org"})),
            ("PUT", "/api/projects/{uuid}/") => Some(json!({"name": "Main Project"})),
            ("PATCH", "/api/customers/{uuid}/" | "/api/projects/{uuid}/") => {
                Some(json!({ "description": changed }))
            }
            ("DELETE", "/api/customers/{uuid}/") => {
                // A customer with nothing in it (staff may delete it), where the actor has its
                // role (through a project for the project roles).
                let (customer, url) = self.new_customer().await;
                let project = if matches!(actor, Member | Manager | ProjectAdmin) {
                    Some(self.new_project(&url).await)
                } else {
                    None
                };
                self.relate(actor, Some(&customer), project.as_deref()).await;
                ids.customer = customer;
                None
            }
            ("DELETE", "/api/projects/{uuid}/") => {
                // A project of C without members, except the actor's own project role.
                let project = self.new_project(&self.customer_url).await;
                self.relate(actor, None, Some(&project)).await;
                ids.project = project;
                None
            }
            ("POST", "/api/customers/{uuid}/add_user/") => {
                let victim = self.new_user("newowner").await;
                Some(json!({"user": victim.uuid, "role": OWNER_ROLE}))
            }
            ("POST", "/api/projects/{uuid}/add_user/") => {
                let victim = self.new_user("newmanager").await;
                Some(json!({"user": victim.uuid, "role": MANAGER_ROLE}))
            }
            ("POST", t) if t.ends_with("/update_user/") || t.ends_with("/delete_user/") => {
                let (scope, role) = if t.starts_with("/api/customers/") {
                    (self.customer_path(), OWNER_ROLE)
                } else {
                    (self.project_path(), MANAGER_ROLE)
                };
                let victim = self.new_user("held").await;
                self.api.grant(&scope, &victim.uuid, role).await;
                Some(json!({"user": victim.uuid, "role": role, "expiration_time": "2035-01-01"}))
            }
            ("POST", "/api/projects/") => {
                Some(json!({"name": format!("Created Project {n}"), "customer": self.customer_url}))
            }
            ("POST", "/api/customers/{uuid}/contact/") => {
                Some(json!({"phone_number": format!("+372 555 {n}")}))
            }
            ("POST", "/api/projects/{uuid}/set_slug/") => Some(json!({"slug": format!("matrix-{n}")})),
            ("POST", "/api/projects/{uuid}/sync_user_roles/" | "/api/projects/{uuid}/recover/") => None,
            ("POST", "/api/projects/{uuid}/move_project/") => {
                // A project of C of its own with the actor's project role, moved to C2.
                let project = self.new_project(&self.customer_url).await;
                self.relate(actor, None, Some(&project)).await;
                ids.project = project;
                Some(json!({"customer": self.other_customer_url, "preserve_permissions": true}))
            }
            ("POST", "/api/user-permissions/{uuid}/revoke/" | "/api/user-permissions/{uuid}/restore/") => {
                // A fresh grant of P (revoked first, for a restore).
                let holder = self.new_user("row").await;
                self.api
                    .grant(&self.project_path(), &holder.uuid, MANAGER_ROLE)
                    .await;
                let held = shared::users::get(self.api.store(), &holder.uuid)
                    .await
                    .expect("the holder")
                    .expect("the holder");
                let grant = grants::held_by(&held).remove(0);
                if template.ends_with("/restore/") {
                    let body = json!({"user": holder.uuid, "role": MANAGER_ROLE});
                    self.admin(
                        "POST",
                        &format!("{}delete_user/", self.project_path()),
                        Some(body),
                    )
                    .await;
                }
                ids.project_grant = grant.uuid.to_string();
                None
            }
            ("POST", "/api/users/") => Some(json!({
                "username": format!("created{n}"),
                "email": format!("created{n}@example.com"),
                "password": PASSWORD,
            })),
            ("PUT", "/api/users/{uuid}/") => Some(json!({
                "username": self.victim.username,
                "first_name": self.victim.first_name,
                "last_name": self.victim.last_name,
            })),
            ("PATCH", "/api/users/{uuid}/") => Some(json!({"first_name": self.victim.first_name})),
            ("POST", "/api/users/{uuid}/refresh_token/" | "/api/users/{uuid}/cancel_change_email/") => None,
            ("POST", "/api/users/{uuid}/change_email/") => {
                Some(json!({"email": format!("changed{n}@example.com")}))
            }
            ("POST", "/api/users/confirm_email/") => {
                let holder = self.new_user("confirming").await;
                let email = format!("confirmed{n}@example.com");
                shared::email_change::request(
                    self.api.store(),
                    &holder.principal(),
                    &holder,
                    &email,
                    &shared::time::now(),
                )
                .await
                .expect("an e-mail change request");
                let code = shared::users::get(self.api.store(), &holder.uuid)
                    .await
                    .expect("the user")
                    .and_then(|u| u.email_change)
                    .expect("the code");
                Some(json!({ "code": code }))
            }
            ("POST", "/api-auth/logout/") => None,
            ("DELETE", "/api/users/{uuid}/")
            | ("POST", "/api/users/{uuid}/change_password/" | "/api/users/{uuid}/remove_password/") => {
                // A user of P of its own, as the victim is.
                let victim = self.new_user("deleted").await;
                self.api
                    .grant(&self.project_path(), &victim.uuid, MEMBER_ROLE)
                    .await;
                ids.user = victim.uuid.to_string();
                template
                    .ends_with("/change_password/")
                    .then(|| json!({"new_password": "matrix secret 1"}))
            }
            ("POST", "/api/user-group-invitations/") => {
                Some(json!({"scope": self.project_url, "role": self.ids.role}))
            }
            ("POST", t) if t.starts_with("/api/user-group-invitations/{uuid}/") => {
                ids.invitation = self.new_invitation().await;
                None
            }
            (_, "/api/user-group-invitations/{uuid}/") => {
                ids.invitation = self.new_invitation().await;
                match method {
                    "PUT" => Some(
                        json!({"scope": self.project_url, "role": self.ids.role, "custom_text": changed}),
                    ),
                    "PATCH" => Some(json!({ "custom_text": changed })),
                    _ => {
                        let cancel = format!("/api/user-group-invitations/{}/cancel/", ids.invitation);
                        self.admin("POST", &cancel, None).await;
                        None
                    }
                }
            }
            ("DELETE", "/api/user-permission-requests/{uuid}/") => {
                let invitation = self.new_invitation().await;
                ids.request = self.new_request(&invitation).await;
                None
            }
            ("POST", t) if t.starts_with("/api/user-permission-requests/{uuid}/") => {
                let invitation = self.new_invitation().await;
                ids.request = self.new_request(&invitation).await;
                if t.ends_with("/cancel_request/") {
                    None
                } else {
                    Some(json!({"comment": "Decided by the authorization matrix"}))
                }
            }
            ("POST", t) if t.contains("-permissions-reviews/{uuid}/") => {
                // A fresh customer and project with the actor's role, a member to revoke, and a
                // pending review (one per scope at a time, hence fresh scopes).
                let (customer, url) = self.new_customer().await;
                let project = self.new_project(&url).await;
                self.relate(actor, Some(&customer), Some(&project)).await;
                let victim = self.new_user("reviewed").await;
                self.api
                    .grant(&format!("/api/projects/{project}/"), &victim.uuid, MEMBER_ROLE)
                    .await;
                if t.starts_with("/api/customer-") {
                    ids.customer_review = self.open_review(ContentType::Customer, &customer).await;
                } else {
                    ids.project_review = self.open_review(ContentType::Project, &project).await;
                }
                t.ends_with("/revoke/")
                    .then(|| json!({"user": victim.uuid, "role": MEMBER_ROLE, "scope": project}))
            }
            ("POST", "/api/v1/workspaces/") => Some(json!({"name": format!("Created workspace {n}")})),
            (
                _,
                "/api/v1/workspaces/{id}/"
                | "/api/v1/workspace_permissions/"
                | "/api/v1/workspace_permissions/{id}/"
                | "/api/v1/workspace_permissions/transfer/",
            ) => {
                let (workspace, victim) = self.new_workspace(actor).await;
                ids.workspace = workspace.to_string();
                ids.workspace_permission = victim.to_string();
                match (method, template) {
                    ("POST", _) => {
                        Some(json!({"workspace": workspace, "user": self.heir.pk, "role": "READER"}))
                    }
                    ("PATCH", "/api/v1/workspace_permissions/transfer/") => Some(json!({
                        "role": "EDITOR",
                        "workspaces": [workspace],
                        "new_owner": self.heir.email,
                    })),
                    ("PATCH", _) => Some(json!({"role": "EDITOR"})),
                    _ => None,
                }
            }
            _ => panic!("the matrix prepares no request for {method} {template}"),
        };
        (ids.fill(template), body)
    }
}

fn text(value: &Value) -> String {
    value.as_str().expect("a string").to_owned()
}

fn shorten(text: &str) -> String {
    let text = text.replace('\n', " ");
    if text.chars().count() > 200 {
        format!("{}…", text.chars().take(200).collect::<String>())
    } else {
        text
    }
}

/// One cell's outcome: `None` when it matches the policy, else (unexpected allow?, report).
async fn run_cell(world: &World, method: &str, template: &str, actor: Actor) -> Option<(bool, String)> {
    let rule = rule(method, template).expect("a row");
    let expected = rule.expect(actor);
    let (path, body) = world.prepare(method, template, actor).await;
    let answer = world
        .api
        .call(method, &path, world.token(actor).as_deref(), body)
        .await;
    let allowed = status_ok(answer.status);
    if allowed && template == "/api-auth/logout/" {
        world.renew_token(actor).await;
    }
    let matches = match expected {
        Expect::Allow => allowed,
        Expect::Deny(status) => answer.status == status,
    };
    if matches {
        return None;
    }
    let unexpected = allowed && matches!(expected, Expect::Deny(_));
    Some((
        unexpected,
        format!(
            "{}{method} {template} as {actor:?}: expected {expected:?}, got {} {}",
            if unexpected { "UNEXPECTED ALLOW: " } else { "" },
            answer.status,
            shorten(&answer.text),
        ),
    ))
}

#[tokio::test]
async fn every_route_answers_every_actor_as_the_policy_says() {
    let world = World::new().await;
    let routes = template_routes();
    let missing: Vec<String> = routes
        .iter()
        .filter(|(method, path)| rule(method, path).is_none())
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(
        missing.is_empty(),
        "routes of template.yaml without a row in the authorization matrix: {missing:?}"
    );
    let cells: Vec<(&str, &str, Actor)> = routes
        .iter()
        .flat_map(|(method, path)| ACTORS.map(|actor| (method.as_str(), path.as_str(), actor)))
        .collect();
    let (reads, writes): (Vec<_>, Vec<_>) = cells
        .iter()
        .partition(|(method, _, _)| matches!(*method, "GET" | "HEAD"));

    // Reads change nothing, so they run a few at a time against the shared world; then the
    // state-changing cells, one after the other (their setups touch shared counters).
    let mut outcomes: Vec<Option<(bool, String)>> = stream::iter(reads)
        .map(|(method, path, actor)| run_cell(&world, method, path, actor))
        .buffered(8)
        .collect()
        .await;
    for (method, path, actor) in writes {
        outcomes.push(run_cell(&world, method, path, actor).await);
    }
    println!(
        "authorization matrix: {} cells, {} routes, {} actors",
        cells.len(),
        routes.len(),
        ACTORS.len()
    );
    let mismatches: Vec<(bool, String)> = outcomes.into_iter().flatten().collect();
    let unexpected_allows = mismatches.iter().filter(|(unexpected, _)| *unexpected).count();
    let report = mismatches
        .iter()
        .map(|(_, line)| line.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        unexpected_allows,
        0,
        "{unexpected_allows} unexpected allows among {} cells that differ from the policy:\n{report}",
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} cells differ from the policy:\n{report}",
        mismatches.len()
    );
}
