//! The flow matrix, beside the route matrix (`authz_matrix.rs`): every way a role can be
//! obtained or taken away, across the requests it takes, × every actor, each cell asserting
//! whether the role was obtained. The expectation is the one rule of `add_user`, written out here
//! as a table (never read from the service): staff and the customer's owners may grant any role
//! of the customer's projects to anyone; a project manager may grant others a role whose
//! permissions he holds himself, and nothing to himself; nobody else grants anything. Whoever
//! decides is judged as they are now: a grant revoked yesterday and a staff flag taken away count
//! for nothing. An auto-approve invitation never approves its creator's own request.
//!
//! Run with `-- --nocapture` to see the size of the matrix.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Duration;
use futures::stream::{self, StreamExt};
use integration_tests::consistency::assert_consistent;
use integration_tests::{Answer, TestApi};
use serde_json::{Value, json};
use shared::grants::{self, NewGrant};
use shared::ids::Id;
use shared::roles::ContentType;
use shared::users::User;

const PASSWORD: &str = "flow matrix passphrase";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Actor {
    Anonymous,
    BadToken,
    /// CUSTOMER.OWNER on C and PROJECT.MANAGER on P, both expired (not swept).
    Expired,
    Plain,
    Member,
    Manager,
    ProjectAdmin,
    Owner,
    OtherOwner,
    Support,
    Staff,
    /// PROJECT.MANAGER on P until yesterday, when staff revoked it.
    Revoked,
    /// Staff until staff took the flag away; still holds the token and the session of then.
    Demoted,
}

use Actor::*;

const ACTORS: [Actor; 13] = [
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
    Revoked,
    Demoted,
];

/// A way to a role (or, for `ReviewRevoke`, away from one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// `add_user` of the target.
    AddUser,
    /// `update_user` of the target's expiring grant to a later expiration.
    UpdateUser,
    /// Staff invites; the target asks; the actor approves.
    Approve,
    /// The actor makes an auto-approve invitation; the target asks.
    AutoApprove,
    /// The actor makes an auto-approve invitation and asks himself.
    AutoApproveSelf,
    /// The actor makes an auto-approve customer invitation that creates the target's project
    /// with the role.
    AutoCreateProject,
    /// The actor shares the Owner's workspace with the target.
    WorkspaceShare,
    /// The actor transfers the Owner's workspace to the target.
    WorkspaceTransfer,
    /// The actor revokes the target's grant from a pending review of P.
    ReviewRevoke,
    /// Staff grants the target the role and revokes it; the actor restores the revoked row
    /// (`/api/user-permissions/{uuid}/restore/`).
    Restore,
    /// Staff invites to P without auto-approval; the actor edits the invitation to the role at
    /// stake with auto-approval; the target asks.
    EditInvitation,
}

const PATHS: [Path; 11] = [
    Path::AddUser,
    Path::UpdateUser,
    Path::Approve,
    Path::AutoApprove,
    Path::AutoApproveSelf,
    Path::AutoCreateProject,
    Path::WorkspaceShare,
    Path::WorkspaceTransfer,
    Path::ReviewRevoke,
    Path::Restore,
    Path::EditInvitation,
];

/// Which role is at stake: one within a project manager's own permissions, or one beyond them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stake {
    Within,
    Beyond,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Other,
    Himself,
}

#[derive(Clone, Copy, Debug)]
struct Cell {
    actor: Actor,
    path: Path,
    stake: Stake,
    target: Target,
}

/// The rule, as a table: does the actor obtain (or take away) the role in this cell?
fn expected(cell: &Cell) -> bool {
    let Cell {
        actor,
        path,
        stake,
        target,
    } = *cell;
    match path {
        Path::AutoApproveSelf => false,
        // An edited invitation is decided by its editor, who never approves his own request.
        Path::EditInvitation if target == Target::Himself => false,
        Path::WorkspaceShare | Path::WorkspaceTransfer => matches!(actor, Owner | Staff),
        Path::ReviewRevoke => matches!(actor, Owner | Staff),
        Path::AutoCreateProject => matches!(actor, Owner | Staff),
        Path::AddUser
        | Path::UpdateUser
        | Path::Approve
        | Path::AutoApprove
        | Path::Restore
        | Path::EditInvitation => match actor {
            Staff | Owner => true,
            Manager => stake == Stake::Within && target == Target::Other,
            _ => false,
        },
    }
}

fn cells() -> Vec<Cell> {
    let mut cells = Vec::new();
    for actor in ACTORS {
        for path in PATHS {
            let stakes: &[Stake] = match path {
                Path::WorkspaceShare | Path::WorkspaceTransfer | Path::ReviewRevoke => &[Stake::Within],
                _ => &[Stake::Within, Stake::Beyond],
            };
            let targets: &[Target] = match path {
                Path::AddUser | Path::Restore | Path::EditInvitation => &[Target::Other, Target::Himself],
                Path::AutoApproveSelf => &[Target::Himself],
                _ => &[Target::Other],
            };
            for stake in stakes {
                for target in targets {
                    cells.push(Cell {
                        actor,
                        path,
                        stake: *stake,
                        target: *target,
                    });
                }
            }
        }
    }
    cells
}

struct Actors {
    tokens: Vec<(Actor, String)>,
    users: Vec<(Actor, User)>,
    sessions: Vec<(Actor, String)>,
}

struct World {
    api: TestApi,
    actors: Actors,
    customer: Id,
    customer_url: String,
    project: Id,
    project_url: String,
    within_role: Id,
    beyond_role: Id,
    /// The pending review of P and, per actor, the grant it may revoke from there.
    review: String,
    review_targets: Vec<(Actor, User)>,
    serial: AtomicUsize,
}

fn text(value: &Value) -> String {
    value.as_str().map(str::to_owned).unwrap_or_default()
}

impl World {
    async fn new() -> Self {
        let api = TestApi::new().await;
        let (customer, project) = api.customer_with_project("Flow Org", "Flow Project").await;
        let customer_uuid = Id::parse(&text(&customer["uuid"])).unwrap();
        let project_uuid = Id::parse(&text(&project["uuid"])).unwrap();
        let customer_path = format!("/api/customers/{customer_uuid}/");
        let project_path = format!("/api/projects/{project_uuid}/");
        let (other, _) = api.customer_with_project("Other Org", "Other Project").await;
        let other_path = format!("/api/customers/{}/", text(&other["uuid"]));

        let mut actors = Actors {
            tokens: Vec::new(),
            users: Vec::new(),
            sessions: Vec::new(),
        };
        for actor in ACTORS {
            if matches!(actor, Anonymous | BadToken) {
                continue;
            }
            let name = format!("{actor:?}").to_lowercase();
            let (user, token) = api.user_with_password(&name, PASSWORD).await;
            let admin = Some(api.admin_token.as_str());
            let user_path = format!("/api/users/{}/", user.uuid);
            let flags = match actor {
                Staff | Demoted => Some(json!({"is_staff": true})),
                Support => Some(json!({"is_support": true})),
                _ => None,
            };
            if let Some(flags) = flags {
                let answer = api.call("PATCH", &user_path, admin, Some(flags)).await;
                assert_eq!(answer.status, 200, "{}", answer.text);
            }
            let session = api.session(&user.email, PASSWORD).await;
            match actor {
                Member => api.grant(&project_path, &user.uuid, "PROJECT.MEMBER").await,
                Manager | Revoked => api.grant(&project_path, &user.uuid, "PROJECT.MANAGER").await,
                ProjectAdmin => api.grant(&project_path, &user.uuid, "PROJECT.ADMIN").await,
                Owner => api.grant(&customer_path, &user.uuid, "CUSTOMER.OWNER").await,
                OtherOwner => api.grant(&other_path, &user.uuid, "CUSTOMER.OWNER").await,
                Expired => {
                    expired_grant(
                        &api,
                        ContentType::Customer,
                        &customer_uuid,
                        &user,
                        "CUSTOMER.OWNER",
                    )
                    .await;
                    expired_grant(
                        &api,
                        ContentType::Project,
                        &project_uuid,
                        &user,
                        "PROJECT.MANAGER",
                    )
                    .await;
                }
                _ => {}
            }
            match actor {
                Revoked => {
                    let body = json!({"user": user.uuid, "role": "PROJECT.MANAGER"});
                    let answer = api
                        .call("POST", &format!("{project_path}delete_user/"), admin, Some(body))
                        .await;
                    assert_eq!(answer.status, 200, "{}", answer.text);
                }
                Demoted => {
                    let answer = api
                        .call("PATCH", &user_path, admin, Some(json!({"is_staff": false})))
                        .await;
                    assert_eq!(answer.status, 200, "{}", answer.text);
                }
                _ => {}
            }
            actors.tokens.push((actor, token));
            actors.sessions.push((actor, session));
            actors.users.push((actor, user));
        }

        let role = |name: &str, permissions: Value| {
            let body = json!({"name": name, "content_type": "project", "permissions": permissions});
            let api = &api;
            async move {
                let answer = api
                    .call("POST", "/api/roles/", Some(&api.admin_token), Some(body))
                    .await;
                assert_eq!(answer.status, 201, "{}", answer.text);
                Id::parse(&text(&answer.json["uuid"])).unwrap()
            }
        };
        let within_role = role("PROJECT.FLOW_WITHIN", json!(["PROJECT.UPDATE"])).await;
        let beyond_role = role("PROJECT.FLOW_BEYOND", json!(["PROJECT.DELETE"])).await;

        let mut review_targets = Vec::new();
        for actor in ACTORS {
            let (target, _) = api
                .user(&format!("reviewed_{actor:?}").to_lowercase(), false, false)
                .await;
            api.grant(&project_path, &target.uuid, "PROJECT.FLOW_WITHIN")
                .await;
            review_targets.push((actor, target));
        }
        let store = api.store();
        let now = shared::time::now();
        let scope = shared::scopes::get_scope(store, ContentType::Project, &project_uuid)
            .await
            .unwrap()
            .unwrap();
        let review = shared::reviews::open(store, &scope, &now, &now)
            .await
            .unwrap()
            .expect("a review opens")
            .uuid
            .to_string();
        World {
            api,
            actors,
            customer: customer_uuid,
            customer_url: text(&customer["url"]),
            project: project_uuid,
            project_url: text(&project["url"]),
            within_role,
            beyond_role,
            review,
            review_targets,
            serial: AtomicUsize::new(0),
        }
    }

    fn token(&self, actor: Actor) -> Option<String> {
        match actor {
            Anonymous => None,
            BadToken => Some("0badc0ffee0badc0ffee0badc0ffee0badc0ffee".into()),
            actor => self
                .actors
                .tokens
                .iter()
                .find(|(a, _)| *a == actor)
                .map(|(_, t)| t.clone()),
        }
    }

    fn user(&self, actor: Actor) -> Option<&User> {
        self.actors
            .users
            .iter()
            .find(|(a, _)| *a == actor)
            .map(|(_, u)| u)
    }

    /// How the actor calls the workspace family: the demoted staff user with the session of
    /// his staff days, everyone else with a token.
    async fn workspace_call(&self, actor: Actor, method: &str, path: &str, body: Value) -> Answer {
        match (actor, self.actors.sessions.iter().find(|(a, _)| *a == actor)) {
            (Demoted, Some((_, session))) => self.api.with_session(method, path, session, Some(body)).await,
            _ => self.call(actor, method, path, body).await,
        }
    }

    async fn call(&self, actor: Actor, method: &str, path: &str, body: Value) -> Answer {
        self.api
            .call(method, path, self.token(actor).as_deref(), Some(body))
            .await
    }

    async fn staff(&self, method: &str, path: &str, body: Value) -> Answer {
        let answer = self
            .api
            .call(method, path, Some(&self.api.admin_token), Some(body))
            .await;
        assert!(
            (200..300).contains(&answer.status),
            "setup {method} {path}: {}",
            answer.text
        );
        answer
    }

    async fn fresh_user(&self) -> User {
        let n = self.serial.fetch_add(1, Ordering::SeqCst);
        self.api.user(&format!("target{n}"), false, false).await.0
    }

    fn role(&self, stake: Stake) -> Id {
        match stake {
            Stake::Within => self.within_role,
            Stake::Beyond => self.beyond_role,
        }
    }

    /// The active grant of `role` that `user` holds on `scope`, if any.
    async fn grant_of(&self, user: &Id, scope: &Id, role: &Id) -> Option<grants::Grant> {
        let user = shared::users::get(self.api.store(), user).await.unwrap()?;
        let now = shared::time::now();
        grants::held_by(&user)
            .into_iter()
            .find(|g| g.scope_uuid == *scope && g.role_uuid == *role && g.is_active_at(&now))
    }

    async fn holds(&self, user: &Id, role: &Id) -> bool {
        self.grant_of(user, &self.project, role).await.is_some()
    }

    /// Staff takes back a role a cell gave the actor himself, so that the next cell starts clean.
    async fn take_back(&self, user: &Id, role: &Id) {
        let body = json!({"user": user, "role": role});
        self.staff(
            "POST",
            &format!("/api/projects/{}/delete_user/", self.project),
            body,
        )
        .await;
    }

    async fn invitation(&self, actor: Option<Actor>, body: Value) -> Option<String> {
        let answer = match actor {
            Some(actor) => {
                self.call(actor, "POST", "/api/user-group-invitations/", body)
                    .await
            }
            None => self.staff("POST", "/api/user-group-invitations/", body).await,
        };
        (answer.status == 201).then(|| text(&answer.json["uuid"]))
    }

    /// The role an invitation offers now.
    async fn invitation_role(&self, invitation: &str) -> Id {
        let path = format!("/api/user-group-invitations/{invitation}/");
        let answer = self.staff("GET", &path, json!(null)).await;
        Id::parse(&text(&answer.json["role"])).expect("the invitation's role")
    }

    async fn submit(&self, token: &str, invitation: &str) -> Answer {
        let path = format!("/api/user-group-invitations/{invitation}/submit_request/");
        self.api.call("POST", &path, Some(token), Some(json!({}))).await
    }

    async fn new_workspace(&self) -> i64 {
        let owner = self.token(Owner).unwrap();
        let answer = self
            .api
            .call(
                "POST",
                "/api/v1/workspaces/",
                Some(&owner),
                Some(json!({"name": "Flow"})),
            )
            .await;
        answer.json["id"].as_i64().expect("a workspace")
    }

    /// Runs one cell and answers whether the role was obtained (or, for a review, taken away).
    async fn run(&self, cell: &Cell) -> bool {
        let role = self.role(cell.stake);
        let project_path = format!("/api/projects/{}/", self.project);
        let himself = self.user(cell.actor).map(|u| u.uuid);
        match cell.path {
            Path::AddUser => {
                let target = match (cell.target, himself) {
                    (Target::Himself, Some(uuid)) => uuid,
                    (Target::Himself, None) => return false,
                    (Target::Other, _) => self.fresh_user().await.uuid,
                };
                let before = self.holds(&target, &role).await;
                let body = json!({"user": target, "role": role});
                self.call(cell.actor, "POST", &format!("{project_path}add_user/"), body)
                    .await;
                let obtained = !before && self.holds(&target, &role).await;
                if obtained && cell.target == Target::Himself {
                    self.take_back(&target, &role).await;
                }
                obtained
            }
            Path::UpdateUser => {
                let target = self.fresh_user().await;
                let body =
                    json!({"user": target.uuid, "role": role, "expiration_time": "2031-01-01T00:00:00Z"});
                self.staff("POST", &format!("{project_path}add_user/"), body)
                    .await;
                let body =
                    json!({"user": target.uuid, "role": role, "expiration_time": "2035-01-01T00:00:00Z"});
                self.call(cell.actor, "POST", &format!("{project_path}update_user/"), body)
                    .await;
                self.grant_of(&target.uuid, &self.project, &role)
                    .await
                    .and_then(|g| g.expiration_time)
                    .is_some_and(|e| e.starts_with("2035"))
            }
            Path::Approve => {
                let (target, token) = self
                    .api
                    .user(
                        &format!("asker{}", self.serial.fetch_add(1, Ordering::SeqCst)),
                        false,
                        false,
                    )
                    .await;
                let invitation = self
                    .invitation(None, json!({"scope": self.project_url, "role": role}))
                    .await
                    .expect("staff invites");
                let request = text(&self.submit(&token, &invitation).await.json["uuid"]);
                let path = format!("/api/user-permission-requests/{request}/approve/");
                self.call(cell.actor, "POST", &path, json!({})).await;
                self.holds(&target.uuid, &role).await
            }
            Path::AutoApprove | Path::AutoApproveSelf => {
                let body = json!({"scope": self.project_url, "role": role, "auto_approve": true});
                let Some(invitation) = self.invitation(Some(cell.actor), body).await else {
                    return false;
                };
                let (target, token) = if cell.path == Path::AutoApproveSelf {
                    (himself.unwrap(), self.token(cell.actor).unwrap())
                } else {
                    let n = self.serial.fetch_add(1, Ordering::SeqCst);
                    let (user, token) = self.api.user(&format!("auto{n}"), false, false).await;
                    (user.uuid, token)
                };
                let before = self.holds(&target, &role).await;
                let submitted = self.submit(&token, &invitation).await;
                assert_eq!(submitted.status, 200, "{cell:?}: {}", submitted.text);
                let obtained = !before && self.holds(&target, &role).await;
                if cell.path == Path::AutoApproveSelf {
                    if obtained {
                        self.take_back(&target, &role).await;
                    } else {
                        // Withdrawn, so that the actor's next request of P is decided anew
                        // (one open request per scope and user).
                        let request = text(&submitted.json["uuid"]);
                        let path = format!("/api/user-permission-requests/{request}/cancel_request/");
                        self.api.call("POST", &path, Some(&token), Some(json!({}))).await;
                    }
                }
                obtained
            }
            Path::AutoCreateProject => {
                let body = json!({
                    "scope": self.customer_url,
                    "role": role,
                    "auto_create_project": true,
                    "auto_approve": true,
                    "project_name_template": "{username} lab",
                });
                let Some(invitation) = self.invitation(Some(cell.actor), body).await else {
                    return false;
                };
                let n = self.serial.fetch_add(1, Ordering::SeqCst);
                let (target, token) = self.api.user(&format!("founder{n}"), false, false).await;
                let submitted = self.submit(&token, &invitation).await;
                let Some(project) = Id::parse(&text(&submitted.json["project_uuid"])) else {
                    return false;
                };
                let scope = shared::scopes::get_scope(self.api.store(), ContentType::Project, &project)
                    .await
                    .unwrap();
                assert!(
                    scope.as_ref().is_none_or(|s| s.customer_uuid() == self.customer),
                    "a project of the invitation's customer"
                );
                self.grant_of(&target.uuid, &project, &role).await.is_some()
            }
            Path::WorkspaceShare => {
                let workspace = self.new_workspace().await;
                let target = self.fresh_user().await;
                let body = json!({"workspace": workspace, "user": target.pk, "role": "EDITOR"});
                self.workspace_call(cell.actor, "POST", "/api/v1/workspace_permissions/", body)
                    .await;
                let (_, permissions) = shared::workspaces::get(self.api.store(), workspace)
                    .await
                    .unwrap()
                    .unwrap();
                permissions.iter().any(|p| p.user == target.pk)
            }
            Path::WorkspaceTransfer => {
                let workspace = self.new_workspace().await;
                let target = self.fresh_user().await;
                let body = json!({"workspaces": [workspace], "new_owner": target.email, "role": "READER"});
                self.workspace_call(
                    cell.actor,
                    "PATCH",
                    "/api/v1/workspace_permissions/transfer/",
                    body,
                )
                .await;
                let (workspace, _) = shared::workspaces::get(self.api.store(), workspace)
                    .await
                    .unwrap()
                    .unwrap();
                workspace.owner_user_pk == target.pk
            }
            Path::Restore => {
                let target = match (cell.target, himself) {
                    (Target::Himself, Some(uuid)) => uuid,
                    (Target::Himself, None) => return false,
                    (Target::Other, _) => self.fresh_user().await.uuid,
                };
                let body = json!({"user": target, "role": role});
                self.staff("POST", &format!("{project_path}add_user/"), body.clone())
                    .await;
                let row = self
                    .grant_of(&target, &self.project, &role)
                    .await
                    .expect("the grant")
                    .uuid;
                self.staff("POST", &format!("{project_path}delete_user/"), body)
                    .await;
                let path = format!("/api/user-permissions/{row}/restore/");
                self.call(cell.actor, "POST", &path, json!({})).await;
                let obtained = self.holds(&target, &role).await;
                if obtained && cell.target == Target::Himself {
                    self.take_back(&target, &role).await;
                }
                obtained
            }
            Path::EditInvitation => {
                let invitation = self
                    .invitation(None, json!({"scope": self.project_url, "role": self.within_role}))
                    .await
                    .expect("staff invites");
                let path = format!("/api/user-group-invitations/{invitation}/");
                self.call(
                    cell.actor,
                    "PATCH",
                    &path,
                    json!({"role": role, "auto_approve": true}),
                )
                .await;
                let (target, token) = match (cell.target, himself) {
                    (Target::Himself, Some(uuid)) => (uuid, self.token(cell.actor).unwrap()),
                    (Target::Himself, None) => return false,
                    (Target::Other, _) => {
                        let n = self.serial.fetch_add(1, Ordering::SeqCst);
                        let (user, token) = self.api.user(&format!("edited{n}"), false, false).await;
                        (user.uuid, token)
                    }
                };
                let granted = self.invitation_role(&invitation).await;
                let before = self.holds(&target, &granted).await;
                let submitted = self.submit(&token, &invitation).await;
                assert_eq!(submitted.status, 200, "{cell:?}: {}", submitted.text);
                let obtained = !before && granted == role && self.holds(&target, &role).await;
                if cell.target == Target::Himself {
                    if self.holds(&target, &granted).await && !before {
                        self.take_back(&target, &granted).await;
                    }
                    // Deleted, whatever became of it, so that the actor's next request of P is
                    // decided anew (one open or approved request per scope and user).
                    let request = text(&submitted.json["uuid"]);
                    let path = format!("/api/user-permission-requests/{request}/");
                    self.staff("DELETE", &path, json!(null)).await;
                }
                obtained
            }
            Path::ReviewRevoke => {
                let (_, target) = self
                    .review_targets
                    .iter()
                    .find(|(a, _)| *a == cell.actor)
                    .unwrap();
                let path = format!("/api/project-permissions-reviews/{}/revoke/", self.review);
                let body = json!({"user": target.uuid, "role": "PROJECT.FLOW_WITHIN", "scope": self.project});
                self.call(cell.actor, "POST", &path, body).await;
                !self.holds(&target.uuid, &self.within_role).await
            }
        }
    }
}

async fn expired_grant(api: &TestApi, kind: ContentType, scope: &Id, user: &User, role_name: &str) {
    let store = api.store();
    let now = shared::time::now();
    let scope = shared::scopes::get_scope(store, kind, scope)
        .await
        .unwrap()
        .unwrap();
    let role = shared::roles::list(store)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == role_name)
        .unwrap();
    let new = NewGrant {
        scope: &scope,
        user,
        role: &role,
        expiration_time: Some(now - Duration::days(1)),
        granted_by: None,
    };
    grants::grant(store, &new, &now).await.expect("expired grant");
}

#[tokio::test]
async fn every_way_to_a_role_follows_the_add_user_rule() {
    let world = World::new().await;
    let cells = cells();
    // Each actor's cells in order (a cell may change the actor's own grants, and takes them
    // back); the actors side by side.
    let unexpected: Vec<String> = stream::iter(ACTORS)
        .map(|actor| {
            let world = &world;
            let mine: Vec<Cell> = cells.iter().filter(|c| c.actor == actor).copied().collect();
            async move {
                let mut wrong = Vec::new();
                for cell in mine {
                    let obtained = world.run(&cell).await;
                    if obtained != expected(&cell) {
                        wrong.push(format!(
                            "{cell:?}: obtained {obtained}, expected {}",
                            expected(&cell)
                        ));
                    }
                }
                wrong
            }
        })
        .buffer_unordered(4)
        .flat_map(stream::iter)
        .collect()
        .await;
    let obtained = cells.iter().filter(|c| expected(c)).count();
    println!(
        "flow matrix: {} cells ({} paths × {} actors, with role and target variants), {} allowed, {} unexpected",
        cells.len(),
        PATHS.len(),
        ACTORS.len(),
        obtained,
        unexpected.len()
    );
    assert!(
        unexpected.is_empty(),
        "unexpected outcomes:\n{}",
        unexpected.join("\n")
    );
    assert_consistent(&world.api).await;
}
