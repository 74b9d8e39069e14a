//! DynamoDB round trips of every route of the template, each measured on one realistic request
//! that succeeds (a warm container: role definitions cached). The budget test in
//! `tests/tests/round_trips.rs` asserts them and `make bench` prints them into bench/RESULTS.md.
//!
//! Budgets: a read costs at most 3 requests (authentication + authorization + its own read);
//! a change costs the reads that authenticate, authorize and validate it, plus at most one
//! write (one conditional write or one TransactWriteItems).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use shared::reviews::Schedule;
use shared::{scheduler, time};

use crate::{TestApi, is_write};

/// The read budget of any read-only request.
pub const READ_BUDGET: usize = 3;

#[derive(Debug, Clone)]
pub struct RouteCost {
    pub method: String,
    /// The template's path of the route.
    pub route: String,
    /// Who called, and anything that matters to the count.
    pub case: String,
    pub status: u16,
    pub reads: usize,
    pub writes: usize,
    /// The longest chain of those requests sent one after another's answer.
    pub depth: usize,
    /// Reads allowed for this request (for a change: those that authorize and validate it).
    pub read_budget: usize,
    /// Where the route is known to miss the budget: what it may not exceed, and why.
    pub exception: Option<&'static Exception>,
    /// Audit events the request added.
    pub audit_events: usize,
    /// The answer's body.
    pub answer: String,
}

/// A route that misses the budget today, with the counts it must not exceed and the reason.
#[derive(Debug)]
pub struct Exception {
    pub method: &'static str,
    pub route: &'static str,
    pub reads: usize,
    pub writes: usize,
    pub why: &'static str,
}

const LISTING_NAMES: &str = "a member's grants on projects are found by one Query of each customer's projects, then \
    one Query of each project's partition (its members)";
const USER_LISTING: &str = "as the other listings (one Query of each customer's projects, then one of each \
    project's partition, live grants and history), then one BatchGetItem of the rows' users: a member does not \
    see the rows of inactive users";
const REQUEST_NAMES: &str = "a member sees their own requests (one Query) and those of the customers they manage \
    (one Query each), then one BatchGetItem of the scopes' names";
const REVIEW_NAMES: &str = "one Query of reviews per scope the member sees (the projects of a customer are one \
    more Query), then one BatchGetItem of the scopes' names";
const LOGIN_BRAKE: &str = "the guessing brake charges each attempt with one conditional UpdateItem before the \
    password is checked, so that simultaneous guesses cannot all get through; a successful login gives it back \
    in the session's transaction";
const LOCKOUT: &str = "the lockout charges each attempt before the password is checked (a first attempt opens \
    its window: a second conditional update), and the login answers the user's current token, read after the user \
    item that names it";
const CUSTOMER_MEMBERS: &str = "the member overview reads the customer's projects (one Query) and each scope's \
    members (one Query per scope, concurrently), then the users (one BatchGetItem)";
const PROJECT_MOVE: &str = "a move reads everything that names the project's customer: the project's partition \
    (members and history), then concurrently the holders, the customer's invitations and requests and the \
    project's reviews, beside the target customer; then one transaction";
const COUNTER: &str = "the workspace family's integer ids come from an atomic counter: one UpdateItem per new \
    id before the transaction (a failed transaction only skips a number)";

pub const EXCEPTIONS: &[Exception] = &[
    Exception {
        method: "POST",
        route: "/api/projects/{uuid}/move_project/",
        reads: 8,
        writes: 1,
        why: PROJECT_MOVE,
    },
    Exception {
        method: "GET",
        route: "/api/customers/{uuid}/users/",
        reads: 6,
        writes: 0,
        why: CUSTOMER_MEMBERS,
    },
    Exception {
        method: "HEAD",
        route: "/api/customers/{uuid}/users/",
        reads: 6,
        writes: 0,
        why: CUSTOMER_MEMBERS,
    },
    Exception {
        method: "POST",
        route: "/api-auth/password/",
        reads: 3,
        writes: 3,
        why: LOCKOUT,
    },
    Exception {
        method: "POST",
        route: "/api/v1/auth/",
        reads: 2,
        writes: 2,
        why: LOGIN_BRAKE,
    },
    Exception {
        method: "POST",
        route: "/api/users/",
        reads: 1,
        writes: 2,
        why: COUNTER,
    },
    Exception {
        method: "GET",
        route: "/api/project-permissions/",
        reads: 4,
        writes: 0,
        why: LISTING_NAMES,
    },
    Exception {
        method: "HEAD",
        route: "/api/project-permissions/",
        reads: 4,
        writes: 0,
        why: LISTING_NAMES,
    },
    Exception {
        method: "GET",
        route: "/api/user-permissions/",
        reads: 5,
        writes: 0,
        why: USER_LISTING,
    },
    Exception {
        method: "HEAD",
        route: "/api/user-permissions/",
        reads: 5,
        writes: 0,
        why: USER_LISTING,
    },
    Exception {
        method: "GET",
        route: "/api/user-permission-requests/",
        reads: 4,
        writes: 0,
        why: REQUEST_NAMES,
    },
    Exception {
        method: "HEAD",
        route: "/api/user-permission-requests/",
        reads: 4,
        writes: 0,
        why: REQUEST_NAMES,
    },
    Exception {
        method: "GET",
        route: "/api/project-permissions-reviews/",
        reads: 4,
        writes: 0,
        why: REVIEW_NAMES,
    },
    Exception {
        method: "HEAD",
        route: "/api/project-permissions-reviews/",
        reads: 4,
        writes: 0,
        why: REVIEW_NAMES,
    },
    Exception {
        method: "POST",
        route: "/api/v1/workspaces/",
        reads: 2,
        writes: 3,
        why: COUNTER,
    },
    Exception {
        method: "POST",
        route: "/api/v1/workspace_permissions/",
        reads: 3,
        writes: 2,
        why: COUNTER,
    },
    Exception {
        method: "PATCH",
        route: "/api/v1/workspace_permissions/transfer/",
        reads: 4,
        writes: 2,
        why: COUNTER,
    },
];

impl RouteCost {
    /// Within the rule: the read budget and one write.
    pub fn within_budget(&self) -> bool {
        self.reads <= self.read_budget && self.writes <= 1
    }

    /// Within the rule or, for a known exception, within the counts recorded for it.
    pub fn within_allowance(&self) -> bool {
        match self.exception {
            Some(exception) => self.reads <= exception.reads && self.writes <= exception.writes,
            None => self.within_budget(),
        }
    }
}

fn exception_for(method: &str, route: &str) -> Option<&'static Exception> {
    EXCEPTIONS
        .iter()
        .find(|exception| exception.method == method && exception.route == route)
}

/// Measures every route; panics when a request of the list does not succeed, so a count is
/// always the cost of the real work.
pub async fn measure_every_route(api: &TestApi) -> Vec<RouteCost> {
    let mut run = Run {
        api,
        costs: Vec::new(),
        head_routes: api
            .router
            .routes()
            .iter()
            .filter(|route| route.method == "HEAD")
            .map(|route| route.path.clone())
            .collect(),
    };
    run.all().await;
    run.costs
}

/// The routes of the template with no measured request: the budget test requires none.
pub fn unmeasured_routes(api: &TestApi, costs: &[RouteCost]) -> Vec<String> {
    let measured: BTreeSet<(&str, &str)> = costs
        .iter()
        .map(|cost| (cost.method.as_str(), cost.route.as_str()))
        .collect();
    api.router
        .routes()
        .iter()
        .filter(|route| !measured.contains(&(route.method.as_str(), route.path.as_str())))
        .map(|route| format!("{} {}", route.method, route.path))
        .collect()
}

/// The Markdown table of RESULTS.md.
pub fn table(costs: &[RouteCost]) -> String {
    let mut text = String::from(
        "| route | request | reads | writes | sequential depth | read budget | within budget |\n| --- | --- | ---: | ---: | ---: | ---: | --- |\n",
    );
    for cost in costs {
        let verdict = match (cost.within_budget(), cost.exception) {
            (true, _) => "yes".to_owned(),
            (false, Some(exception)) => format!("**no**: {}", exception.why),
            (false, None) => "**no**".to_owned(),
        };
        text.push_str(&format!(
            "| `{} {}` | {} | {} | {} | {} | {} | {verdict} |\n",
            cost.method, cost.route, cost.case, cost.reads, cost.writes, cost.depth, cost.read_budget,
        ));
    }
    text
}

const MEMBER_ROLE_UUID: &str = "9c9547bad0d742adafd4d54ef992e605";
const PASSWORD: &str = "correct horse battery";

struct Run<'a> {
    api: &'a TestApi,
    costs: Vec<RouteCost>,
    head_routes: BTreeSet<String>,
}

/// Who sends a request.
#[derive(Clone, Copy)]
enum Caller<'t> {
    Anonymous,
    Token(&'t str),
    Session(&'t str),
}

impl Run<'_> {
    /// Sends one request, records its cost under `route`, and for a GET of a route that also has
    /// a HEAD, measures the HEAD too. Returns the answer's JSON.
    #[allow(clippy::too_many_arguments)]
    async fn measure(
        &mut self,
        case: &str,
        method: &str,
        route: &str,
        path: &str,
        caller: Caller<'_>,
        body: Option<Value>,
        read_budget: usize,
    ) -> Value {
        let value = self
            .measure_one(case, method, route, path, caller, body, read_budget, 200..=299)
            .await;
        if method == "GET" && self.head_routes.contains(route) {
            self.measure_one(case, "HEAD", route, path, caller, None, read_budget, 200..=299)
                .await;
        }
        value
    }

    #[allow(clippy::too_many_arguments)]
    async fn measure_one(
        &mut self,
        case: &str,
        method: &str,
        route: &str,
        path: &str,
        caller: Caller<'_>,
        body: Option<Value>,
        read_budget: usize,
        expected: std::ops::RangeInclusive<u16>,
    ) -> Value {
        let credential = match caller {
            Caller::Anonymous => None,
            Caller::Token(token) => Some(("authorization", format!("Token {token}"))),
            Caller::Session(session) => Some(("cookie", format!("sessionid={session}"))),
        };
        let headers: Vec<(&str, &str)> = credential
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let audit_before = self.api.audit_events().await;
        if std::env::var_os("RT_DEBUG").is_some() {
            eprintln!("ROUTE {method} {route} {case}");
        }
        let (answer, operations, depth) = self.api.traced(method, path, &headers, body).await;
        let audit_events = self.api.audit_events().await - audit_before;
        assert!(
            expected.contains(&answer.status),
            "{method} {path} ({case}) answered {}: {}",
            answer.status,
            answer.text
        );
        let writes = operations.iter().filter(|operation| is_write(operation)).count();
        self.costs.push(RouteCost {
            method: method.to_owned(),
            route: route.to_owned(),
            case: case.to_owned(),
            status: answer.status,
            reads: operations.len() - writes,
            writes,
            depth,
            read_budget,
            exception: exception_for(method, route),
            audit_events,
            answer: answer.text,
        });
        answer.json
    }

    async fn all(&mut self) {
        let api = self.api;
        let admin = api.admin_token.clone();
        let staff = Caller::Token(&admin);
        let (owner, owner_token) = api.user("owner", false, false).await;
        let owner_caller = Caller::Token(&owner_token);
        let (bob, _) = api.user("bob", false, false).await;
        let (carol, _) = api.user("carol", false, false).await;
        let (customer, project) = api.customer_with_project("Org", "P").await;
        let customer_uuid = customer["uuid"].as_str().unwrap().to_owned();
        let customer_url = customer["url"].as_str().unwrap().to_owned();
        let project_uuid = project["uuid"].as_str().unwrap().to_owned();
        let project_url = project["url"].as_str().unwrap().to_owned();
        let customer_path = format!("/api/customers/{customer_uuid}/");
        let project_path = format!("/api/projects/{project_uuid}/");
        api.grant(&customer_path, &owner.uuid, "CUSTOMER.OWNER").await;
        api.grant(&project_path, &carol.uuid, "PROJECT.MEMBER").await;
        // Warm this container's role cache, as a warm Lambda has it (again after the role
        // routes, whose changes drop it).
        let warm_role_cache = async || {
            api.call(
                "GET",
                &format!("{project_path}list_users/"),
                Some(&owner_token),
                None,
            )
            .await;
        };
        warm_role_cache().await;

        self.schema().await;
        self.roles(staff, &customer_uuid).await;
        warm_role_cache().await;
        self.users(staff, &bob).await;

        // Customers and projects, with the grants on them, by the customer's owner.
        self.measure(
            "owner",
            "GET",
            "/api/customers/",
            "/api/customers/",
            owner_caller,
            None,
            3,
        )
        .await;
        let spare_customer = self
            .measure(
                "staff",
                "POST",
                "/api/customers/",
                "/api/customers/",
                staff,
                Some(json!({"name": "Spare"})),
                1,
            )
            .await;
        let route = "/api/customers/{uuid}/";
        self.measure("owner", "GET", route, &customer_path, owner_caller, None, 3)
            .await;
        self.measure(
            "owner",
            "PUT",
            route,
            &customer_path,
            owner_caller,
            Some(json!({"name": "Org renamed"})),
            3,
        )
        .await;
        self.measure(
            "owner",
            "PATCH",
            route,
            &customer_path,
            owner_caller,
            Some(json!({"name": "Org"})),
            3,
        )
        .await;
        let spare_path = format!("/api/customers/{}/", spare_customer["uuid"].as_str().unwrap());
        self.measure(
            "staff, empty customer",
            "DELETE",
            route,
            &spare_path,
            staff,
            None,
            2,
        )
        .await;
        self.grants(
            owner_caller,
            "/api/customers/{uuid}/",
            &customer_path,
            &bob.uuid,
            "CUSTOMER.SUPPORT",
        )
        .await;
        for method in ["GET", "HEAD"] {
            self.measure(
                "owner, one project",
                method,
                "/api/customers/{uuid}/users/",
                &format!("{customer_path}users/"),
                owner_caller,
                None,
                3,
            )
            .await;
        }

        self.measure(
            "owner",
            "GET",
            "/api/projects/",
            "/api/projects/",
            owner_caller,
            None,
            3,
        )
        .await;
        let spare_project = self
            .measure(
                "owner",
                "POST",
                "/api/projects/",
                "/api/projects/",
                owner_caller,
                Some(json!({"name": "Spare", "customer": customer_url})),
                // The body's customer comes with the token and the caller.
                1,
            )
            .await;
        let route = "/api/projects/{uuid}/";
        self.measure("owner", "GET", route, &project_path, owner_caller, None, 3)
            .await;
        self.measure(
            "owner",
            "PUT",
            route,
            &project_path,
            owner_caller,
            Some(json!({"name": "P renamed", "customer": customer_url})),
            3,
        )
        .await;
        self.measure(
            "owner",
            "PATCH",
            route,
            &project_path,
            owner_caller,
            Some(json!({"name": "P"})),
            3,
        )
        .await;
        let spare_path = format!("/api/projects/{}/", spare_project["uuid"].as_str().unwrap());
        self.measure(
            "owner, empty project",
            "DELETE",
            route,
            &spare_path,
            owner_caller,
            None,
            3,
        )
        .await;
        self.grants(
            owner_caller,
            "/api/projects/{uuid}/",
            &project_path,
            &bob.uuid,
            "PROJECT.ADMIN",
        )
        .await;

        self.permissions(owner_caller, &owner, &owner_token, &project_uuid)
            .await;
        self.invitations(owner_caller, &project_url).await;
        let revocations = [
            json!({"user": bob.uuid, "role": "CUSTOMER.SUPPORT", "scope": customer_uuid}),
            json!({"user": carol.uuid, "role": "PROJECT.MEMBER", "scope": project_uuid}),
        ];
        self.reviews(owner_caller, &customer_uuid, &project_uuid, revocations)
            .await;
        self.workspaces(&bob).await;
        self.actions(
            staff,
            owner_caller,
            &owner_token,
            &customer_path,
            &project_path,
            &project_url,
        )
        .await;
    }

    /// The detail actions of customers, projects, users, grant rows, invitations and requests
    /// beyond the seed's (the official client's operations).
    async fn actions(
        &mut self,
        staff: Caller<'_>,
        owner_caller: Caller<'_>,
        owner_token: &str,
        customer_path: &str,
        project_path: &str,
        project_url: &str,
    ) {
        let api = self.api;
        self.measure(
            "owner",
            "POST",
            "/api/customers/{uuid}/contact/",
            &format!("{customer_path}contact/"),
            owner_caller,
            Some(json!({"phone_number": "+372 5555 0000", "homepage": "https://example.org"})),
            3,
        )
        .await;
        self.measure(
            "owner, one other project",
            "GET",
            "/api/projects/{uuid}/other_users/",
            &format!("{project_path}other_users/"),
            owner_caller,
            None,
            3,
        )
        .await;
        // Deleted projects are gone for good: the answer for whoever may recover one is 400.
        self.measure_one(
            "owner, a project that is not deleted",
            "POST",
            "/api/projects/{uuid}/recover/",
            &format!("{project_path}recover/"),
            owner_caller,
            None,
            3,
            400..=400,
        )
        .await;
        for (action, body) in [
            ("set_slug", Some(json!({"slug": "p-renamed"}))),
            ("sync_user_roles", None),
        ] {
            self.measure(
                "staff",
                "POST",
                &format!("/api/projects/{{uuid}}/{action}/"),
                &format!("{project_path}{action}/"),
                staff,
                body,
                2,
            )
            .await;
        }
        // A project of its own with one member, moved to another customer.
        let moved = api
            .call(
                "POST",
                "/api/projects/",
                Some(&api.admin_token),
                Some(json!({"name": "Moved", "customer": api.call("GET", project_url.trim_start_matches("http://testserver"), Some(owner_token), None).await.json["customer"]})),
            )
            .await;
        let moved_path = format!("/api/projects/{}/", moved.json["uuid"].as_str().unwrap());
        let (mover, _) = api.user("mover", false, false).await;
        api.grant(&moved_path, &mover.uuid, "PROJECT.MEMBER").await;
        let (elsewhere, _) = api.customer_with_project("Elsewhere", "Elsewhere P").await;
        self.measure(
            "staff, one member",
            "POST",
            "/api/projects/{uuid}/move_project/",
            &format!("{moved_path}move_project/"),
            staff,
            Some(json!({"customer": elsewhere["url"], "preserve_permissions": true})),
            2,
        )
        .await;
        // Revoke and restore the member's grant by its row.
        let grant = shared::users::get(api.store(), &mover.uuid)
            .await
            .unwrap()
            .map(|user| shared::grants::held_by(&user).remove(0))
            .unwrap();
        for action in ["revoke", "restore"] {
            self.measure(
                "staff",
                "POST",
                &format!("/api/user-permissions/{{uuid}}/{action}/"),
                &format!("/api/user-permissions/{}/{action}/", grant.uuid),
                staff,
                Some(json!({"reason": "Measured"})),
                3,
            )
            .await;
        }

        let (holder, _) = api.user("holder", false, false).await;
        let user_path = format!("/api/users/{}/", holder.uuid);
        self.measure(
            "staff",
            "GET",
            "/api/users/{uuid}/token/",
            &format!("{user_path}token/"),
            staff,
            None,
            3,
        )
        .await;
        for (action, body) in [
            ("change_email", Some(json!({"email": "holder.new@example.com"}))),
            ("cancel_change_email", None),
            ("remove_password", None),
        ] {
            self.measure(
                "staff",
                "POST",
                &format!("/api/users/{{uuid}}/{action}/"),
                &format!("{user_path}{action}/"),
                staff,
                body,
                3,
            )
            .await;
        }
        shared::email_change::request(
            api.store(),
            &holder.principal(),
            &holder,
            "holder.confirmed@example.com",
            &time::now(),
        )
        .await
        .unwrap();
        let holder = shared::users::get(api.store(), &holder.uuid)
            .await
            .unwrap()
            .unwrap();
        self.measure(
            "anonymous, with the mailed code",
            "POST",
            "/api/users/confirm_email/",
            "/api/users/confirm_email/",
            Caller::Anonymous,
            Some(json!({ "code": holder.email_change })),
            2,
        )
        .await;

        let collection = "/api/user-group-invitations/";
        let offer = json!({"scope": project_url, "role": MEMBER_ROLE_UUID});
        let invitation = api.call("POST", collection, Some(owner_token), Some(offer)).await;
        let path = format!("{collection}{}/", invitation.json["uuid"].as_str().unwrap());
        let route = "/api/user-group-invitations/{uuid}/";
        self.measure(
            "owner",
            "PUT",
            route,
            &path,
            owner_caller,
            Some(json!({"scope": project_url, "role": MEMBER_ROLE_UUID, "custom_text": "Join us"})),
            // The invitation and the body's scope come with the token.
            2,
        )
        .await;
        self.measure(
            "owner",
            "PATCH",
            route,
            &path,
            owner_caller,
            Some(json!({"custom_text": "Join us soon"})),
            3,
        )
        .await;
        let (_, requester_token) = api.user("requester", false, false).await;
        let request = api
            .call(
                "POST",
                &format!("{path}submit_request/"),
                Some(&requester_token),
                None,
            )
            .await;
        self.measure(
            "staff",
            "DELETE",
            "/api/user-permission-requests/{uuid}/",
            &format!(
                "/api/user-permission-requests/{}/",
                request.json["uuid"].as_str().unwrap()
            ),
            staff,
            None,
            3,
        )
        .await;
        api.call("POST", &format!("{path}cancel/"), Some(owner_token), None)
            .await;
        self.measure("owner", "DELETE", route, &path, owner_caller, None, 2)
            .await;
    }

    async fn schema(&mut self) {
        self.measure(
            "anonymous",
            "GET",
            "/api/schema/",
            "/api/schema/",
            Caller::Anonymous,
            None,
            0,
        )
        .await;
    }

    async fn roles(&mut self, staff: Caller<'_>, customer_uuid: &str) {
        self.measure(
            "anonymous",
            "GET",
            "/api/roles/",
            "/api/roles/",
            Caller::Anonymous,
            None,
            3,
        )
        .await;
        let body = json!({"name": "PROJECT.AUDITOR", "content_type": "project", "permissions": ["RESOURCE.LIST_IMPORTABLE"]});
        let role = self
            .measure(
                "staff",
                "POST",
                "/api/roles/",
                "/api/roles/",
                staff,
                Some(body.clone()),
                1,
            )
            .await;
        let uuid = role["uuid"].as_str().unwrap();
        let path = format!("/api/roles/{uuid}/");
        let route = "/api/roles/{uuid}/";
        self.measure("staff", "GET", route, &path, staff, None, 3).await;
        self.measure("staff", "PUT", route, &path, staff, Some(body), 2)
            .await;
        self.measure(
            "staff",
            "PATCH",
            route,
            &path,
            staff,
            Some(json!({"description": "Audits"})),
            2,
        )
        .await;
        self.measure(
            "staff",
            "PUT",
            "/api/roles/{uuid}/update_descriptions/",
            &format!("{path}update_descriptions/"),
            staff,
            Some(json!({"description_de": "Prüfer"})),
            2,
        )
        .await;
        for action in ["disable", "enable"] {
            self.measure(
                "staff",
                "POST",
                &format!("/api/roles/{{uuid}}/{action}/"),
                &format!("{path}{action}/"),
                staff,
                None,
                2,
            )
            .await;
        }
        self.measure(
            "staff",
            "POST",
            "/api/roles/{uuid}/clone_to_customer/",
            &format!("{path}clone_to_customer/"),
            staff,
            Some(json!({ "customer": customer_uuid })),
            3,
        )
        .await;
        self.measure("staff", "DELETE", route, &path, staff, None, 2)
            .await;
    }

    async fn users(&mut self, staff: Caller<'_>, bob: &shared::users::User) {
        let api = self.api;
        let now = time::now();
        shared::users::set_password(api.store(), None, bob, PASSWORD, &now)
            .await
            .unwrap();
        let login = self
            .measure(
                "anonymous",
                "POST",
                "/api-auth/password/",
                "/api-auth/password/",
                Caller::Anonymous,
                Some(json!({"username": "bob", "password": PASSWORD})),
                2,
            )
            .await;
        // The login replaced bob's token.
        let bob_token = login["token"].as_str().unwrap().to_owned();
        let bob_caller = Caller::Token(&bob_token);
        self.measure("staff", "GET", "/api/users/", "/api/users/", staff, None, 3)
            .await;
        self.measure(
            "staff",
            "POST",
            "/api/users/",
            "/api/users/",
            staff,
            Some(json!({"username": "dave", "email": "dave@example.com"})),
            1,
        )
        .await;
        self.measure(
            "user",
            "GET",
            "/api/users/me/",
            "/api/users/me/",
            bob_caller,
            None,
            3,
        )
        .await;
        let path = format!("/api/users/{}/", bob.uuid);
        let route = "/api/users/{uuid}/";
        self.measure("user, self", "GET", route, &path, bob_caller, None, 3)
            .await;
        self.measure(
            "user, self",
            "PUT",
            route,
            &path,
            bob_caller,
            Some(json!({"username": "bob", "first_name": "Bob", "last_name": "Tester", "email": "bob@example.com"})),
            2,
        )
        .await;
        self.measure(
            "user, self",
            "PATCH",
            route,
            &path,
            bob_caller,
            Some(json!({"job_title": "Tester"})),
            2,
        )
        .await;
        self.measure(
            "user, self",
            "POST",
            "/api/users/{uuid}/change_password/",
            &format!("{path}change_password/"),
            bob_caller,
            Some(json!({"new_password": "another secret 1"})),
            2,
        )
        .await;
        let refreshed = self
            .measure(
                "user, self",
                "POST",
                "/api/users/{uuid}/refresh_token/",
                &format!("{path}refresh_token/"),
                bob_caller,
                None,
                2,
            )
            .await;
        let new_token = refreshed["token"].as_str().unwrap().to_owned();
        self.measure(
            "user",
            "POST",
            "/api-auth/logout/",
            "/api-auth/logout/",
            Caller::Token(&new_token),
            None,
            2,
        )
        .await;
        let (doomed, _) = api.user("doomed", false, false).await;
        self.measure(
            "staff, a user without grants",
            "DELETE",
            route,
            &format!("/api/users/{}/", doomed.uuid),
            staff,
            None,
            2,
        )
        .await;
    }

    /// add_user, list_users, update_user and delete_user of one scope.
    async fn grants(
        &mut self,
        caller: Caller<'_>,
        route: &str,
        path: &str,
        user: &shared::ids::Id,
        role: &str,
    ) {
        let grant = json!({"user": user, "role": role});
        self.measure(
            "owner",
            "POST",
            &format!("{route}add_user/"),
            &format!("{path}add_user/"),
            caller,
            Some(grant.clone()),
            // The body's user comes with the token, the scope and the caller.
            1,
        )
        .await;
        self.measure(
            "owner",
            "GET",
            &format!("{route}list_users/"),
            &format!("{path}list_users/"),
            caller,
            None,
            3,
        )
        .await;
        self.measure(
            "owner",
            "POST",
            &format!("{route}update_user/"),
            &format!("{path}update_user/"),
            caller,
            Some(json!({"user": user, "role": role, "expiration_time": "2040-01-01"})),
            // The grant is found in the body's user's `held` map.
            1,
        )
        .await;
        self.measure(
            "owner",
            "POST",
            &format!("{route}delete_user/"),
            &format!("{path}delete_user/"),
            caller,
            Some(grant.clone()),
            // Then the member row, which goes to the history with who granted it.
            2,
        )
        .await;
        // Put the grant back: the later steps need it.
        self.api
            .call(
                "POST",
                &format!("{path}add_user/"),
                Some(&self.api.admin_token),
                Some(grant),
            )
            .await;
    }

    async fn permissions(
        &mut self,
        owner_caller: Caller<'_>,
        owner: &shared::users::User,
        owner_token: &str,
        project_uuid: &str,
    ) {
        let check = format!(
            "/api/permissions/check/?user={}&permission=PROJECT.UPDATE&scope_type=project&scope={project_uuid}",
            owner.uuid
        );
        self.measure(
            "user, own permission",
            "GET",
            "/api/permissions/check/",
            &check,
            Caller::Token(owner_token),
            None,
            3,
        )
        .await;
        for listing in ["customer-permissions", "project-permissions", "user-permissions"] {
            let list = self
                .measure(
                    "owner",
                    "GET",
                    &format!("/api/{listing}/"),
                    &format!("/api/{listing}/"),
                    owner_caller,
                    None,
                    3,
                )
                .await;
            // The user listing names the grant `uuid`, the other two `pk`.
            let row = &list[0];
            let pk = row
                .get("pk")
                .or(row.get("uuid"))
                .and_then(Value::as_str)
                .unwrap()
                .to_owned();
            self.measure(
                "owner",
                "GET",
                &format!("/api/{listing}/{{pk}}/"),
                &format!("/api/{listing}/{pk}/"),
                owner_caller,
                None,
                3,
            )
            .await;
        }
    }

    async fn invitations(&mut self, owner_caller: Caller<'_>, project_url: &str) {
        let api = self.api;
        let (_, erin_token) = api.user("erin", false, false).await;
        let (_, gina_token) = api.user("gina", false, false).await;
        let body = json!({"scope": project_url, "role": MEMBER_ROLE_UUID});
        let collection = "/api/user-group-invitations/";
        self.measure("owner", "GET", collection, collection, owner_caller, None, 3)
            .await;
        let invitation = self
            .measure(
                "owner",
                "POST",
                collection,
                collection,
                owner_caller,
                Some(body.clone()),
                // The body's scope comes with the token; then the customer's name for the answer.
                2,
            )
            .await;
        let path = format!("{collection}{}/", invitation["uuid"].as_str().unwrap());
        // The projects a customer invitation offers.
        let project = api
            .call(
                "GET",
                project_url.trim_start_matches("http://testserver"),
                Some(&api.admin_token),
                None,
            )
            .await;
        let offer = json!({"scope": project.json["customer"], "role": "afab8022f4df457fba97346cd4c6a4a1"});
        let customer_invitation = api
            .call("POST", collection, Some(&api.admin_token), Some(offer))
            .await;
        assert_eq!(customer_invitation.status, 201, "{}", customer_invitation.text);
        let projects = format!(
            "{collection}{}/projects/",
            customer_invitation.json["uuid"].as_str().unwrap()
        );
        for method in ["GET", "HEAD"] {
            self.measure(
                "owner",
                method,
                "/api/user-group-invitations/{uuid}/projects/",
                &projects,
                owner_caller,
                None,
                3,
            )
            .await;
        }
        self.measure(
            "owner",
            "GET",
            "/api/user-group-invitations/{uuid}/",
            &path,
            owner_caller,
            None,
            3,
        )
        .await;

        // Three requests on the invitation: approved, rejected and cancelled.
        let mut requests = Vec::new();
        for (action, caller) in [
            ("submit_request", Caller::Token(&erin_token)),
            ("request", Caller::Token(&gina_token)),
        ] {
            let request = self
                .measure(
                    "user",
                    "POST",
                    &format!("/api/user-group-invitations/{{uuid}}/{action}/"),
                    &format!("{path}{action}/"),
                    caller,
                    Some(json!({})),
                    3,
                )
                .await;
            requests.push(request["uuid"].as_str().unwrap().to_owned());
        }
        let (_, third_token) = api.user("frank", false, false).await;
        let third = api
            .call(
                "POST",
                &format!("{path}submit_request/"),
                Some(&third_token),
                Some(json!({})),
            )
            .await;
        let collection = "/api/user-permission-requests/";
        self.measure("owner", "GET", collection, collection, owner_caller, None, 3)
            .await;
        let route = "/api/user-permission-requests/{uuid}/";
        let first = format!("{collection}{}/", requests[0]);
        self.measure("owner", "GET", route, &first, owner_caller, None, 3)
            .await;
        self.measure(
            "owner",
            "POST",
            "/api/user-permission-requests/{uuid}/approve/",
            &format!("{first}approve/"),
            owner_caller,
            Some(json!({"comment": "welcome"})),
            4,
        )
        .await;
        self.measure(
            "owner",
            "POST",
            "/api/user-permission-requests/{uuid}/reject/",
            &format!("{collection}{}/reject/", requests[1]),
            owner_caller,
            Some(json!({"comment": "no"})),
            4,
        )
        .await;
        self.measure(
            "requester",
            "POST",
            "/api/user-permission-requests/{uuid}/cancel_request/",
            &format!(
                "{collection}{}/cancel_request/",
                third.json["uuid"].as_str().unwrap()
            ),
            Caller::Token(&third_token),
            None,
            3,
        )
        .await;
        self.measure(
            "owner",
            "POST",
            "/api/user-group-invitations/{uuid}/cancel/",
            &format!("{path}cancel/"),
            owner_caller,
            None,
            3,
        )
        .await;
    }

    async fn reviews(
        &mut self,
        owner_caller: Caller<'_>,
        customer_uuid: &str,
        project_uuid: &str,
        revocations: [Value; 2],
    ) {
        let api = self.api;
        let now = time::parse_input("2030-01-01T06:00:00Z").unwrap();
        scheduler::open_due_reviews(api.store(), &Schedule::default(), &now)
            .await
            .unwrap();
        let [customer_revocation, project_revocation] = revocations;
        for (kind, filter, revocation) in [
            (
                "customer",
                format!("customer_uuid={customer_uuid}"),
                customer_revocation,
            ),
            (
                "project",
                format!("project_uuid={project_uuid}"),
                project_revocation,
            ),
        ] {
            let collection = format!("/api/{kind}-permissions-reviews/");
            let list = self
                .measure(
                    "owner",
                    "GET",
                    &collection,
                    &format!("{collection}?{filter}"),
                    owner_caller,
                    None,
                    3,
                )
                .await;
            let uuid = list[0]["uuid"].as_str().unwrap();
            let path = format!("{collection}{uuid}/");
            let route = format!("{collection}{{uuid}}/");
            self.measure("owner", "GET", &route, &path, owner_caller, None, 3)
                .await;
            self.measure(
                "owner",
                "GET",
                &format!("{route}permissions/"),
                &format!("{path}permissions/"),
                owner_caller,
                None,
                3,
            )
            .await;
            self.measure(
                "owner",
                "POST",
                &format!("{route}revoke/"),
                &format!("{path}revoke/"),
                owner_caller,
                Some(revocation),
                4,
            )
            .await;
            self.measure(
                "owner",
                "POST",
                &format!("{route}close/"),
                &format!("{path}close/"),
                owner_caller,
                None,
                3,
            )
            .await;
        }
    }

    async fn workspaces(&mut self, bob: &shared::users::User) {
        let api = self.api;
        let now = time::now();
        let (alice, _) = api.user("alice", false, false).await;
        shared::users::set_password(api.store(), None, &alice, PASSWORD, &now)
            .await
            .unwrap();
        let auth = "/api/v1/auth/";
        self.measure("anonymous", "GET", auth, auth, Caller::Anonymous, None, 0)
            .await;
        let (login, _, _) = api
            .traced(
                "POST",
                auth,
                &[],
                Some(json!({"email": "alice@example.com", "password": PASSWORD})),
            )
            .await;
        let cookie = login.header("set-cookie").expect("a session cookie");
        let session = cookie
            .trim_start_matches("sessionid=")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        // The login above only made the session; measure a second one.
        self.measure(
            "anonymous",
            "POST",
            auth,
            auth,
            Caller::Anonymous,
            Some(json!({"email": "alice@example.com", "password": PASSWORD})),
            3,
        )
        .await;
        let alice = Caller::Session(&session);
        let collection = "/api/v1/workspaces/";
        self.measure("owner, session", "GET", collection, collection, alice, None, 3)
            .await;
        let workspace = self
            .measure(
                "owner, session",
                "POST",
                collection,
                collection,
                alice,
                Some(json!({"name": "Data"})),
                2,
            )
            .await;
        let id = workspace["id"].as_i64().unwrap();
        let spare = api
            .call_with_headers(
                "POST",
                collection,
                &[("cookie", &format!("sessionid={session}"))],
                Some(json!({"name": "Spare"})),
            )
            .await
            .json["id"]
            .as_i64()
            .unwrap();
        let route = "/api/v1/workspaces/{id}/";
        self.measure(
            "owner, session",
            "GET",
            route,
            &format!("{collection}{id}/"),
            alice,
            None,
            3,
        )
        .await;
        self.measure(
            "owner, session",
            "DELETE",
            route,
            &format!("{collection}{spare}/"),
            alice,
            None,
            3,
        )
        .await;

        let collection = "/api/v1/workspace_permissions/";
        self.measure("owner, session", "GET", collection, collection, alice, None, 3)
            .await;
        let share = json!({"workspace": id, "user": bob.pk, "role": "EDITOR", "data_access": false});
        let permission = self
            .measure(
                "owner, session",
                "POST",
                collection,
                collection,
                alice,
                Some(share),
                4,
            )
            .await;
        let path = format!("{collection}{}/", permission["pk"]);
        let route = "/api/v1/workspace_permissions/{id}/";
        self.measure("owner, session", "GET", route, &path, alice, None, 3)
            .await;
        self.measure(
            "owner, session",
            "PATCH",
            route,
            &path,
            alice,
            Some(json!({"role": "READER"})),
            3,
        )
        .await;
        self.measure("owner, session", "DELETE", route, &path, alice, None, 3)
            .await;
        self.measure(
            "owner, session",
            "PATCH",
            "/api/v1/workspace_permissions/transfer/",
            "/api/v1/workspace_permissions/transfer/",
            alice,
            Some(json!({"role": "EDITOR", "workspaces": [id], "new_owner": "bob@example.com"})),
            4,
        )
        .await;
        self.measure("session", "DELETE", auth, auth, alice, None, 1)
            .await;
    }
}
