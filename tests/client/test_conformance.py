"""Every operation of the official client (waldur-api-client) in the packages of the endpoint
groups this service serves, found by walking the client's modules: an upgrade of the client adds
its new operations here by itself. Each one is either called with real objects and must succeed
(2xx, and the client parses the body into its model; `sync_all` too where the operation has it),
or is in EXPLAINED, the one table of operations that answer otherwise, with the answer and why.
An operation in neither table fails as unexplained."""

import importlib
import inspect
import os
import pkgutil
import subprocess
import typing
import uuid
from uuid import UUID

import boto3
import pytest
from waldur_api_client.client import AuthenticatedClient, Client

URL = os.environ["WALDUR_API_URL"]
PACKAGES = [
    "roles",
    "customers",
    "projects",
    "users",
    "user_permissions",
    "user_group_invitations",
    "user_permission_requests",
    "customer_permissions_reviews",
    "project_permissions_reviews",
    "api_auth",
]
MEMBER = "9c9547bad0d742adafd4d54ef992e605"  # PROJECT.MEMBER
ABSENT = (404, 405)


def operations():
    found = []
    for package in PACKAGES:
        module = importlib.import_module(f"waldur_api_client.api.{package}")
        for info in pkgutil.iter_modules(module.__path__):
            found.append((package, info.name))
    return sorted(found)


# Operations that do not answer 2xx here, each with its answer and the reason (README, "The
# official client"). Features this service does not have answer as a route it does not serve.
NOT_SERVED = "not a feature of this service: the route is not served (DRF 404, or 405 where the path is another route's)"
_FEATURES = {
    "roles_hygiene_report": "role hygiene reports (usage analytics)",
    "customers_countries": "the country catalogue of customers",
    "customers_history": "object history (django-reversion)",
    "customers_project_digest_config": "project digest mails",
    "customers_update_project_digest_config": "project digest mails",
    "customers_project_metadata": "project metadata checklists",
    "customers_providers": "marketplace service providers",
    "customers_stats": "marketplace usage statistics",
    "customers_update_default_affiliations": "affiliations",
    "customers_update_organization_groups": "organization groups",
    "projects_checklist": "project metadata checklists",
    "projects_completion_status": "project metadata checklists",
    "projects_submit_answers": "project metadata checklists",
    "projects_stats": "marketplace usage statistics",
    "projects_update_affiliation": "affiliations",
    "users_dashboard": "dashboards",
    "users_data_access": "GDPR data-access logs",
    "users_history": "object history (django-reversion)",
    "users_identity_bridge_status": "identity bridges",
    "users_profile_completeness": "profile completeness rules",
    "users_pull_remote_user": "eduTEAMS accounts",
    "users_pull_scim_attributes": "SCIM",
    "users_scim_sync_all": "SCIM",
    "users_send_notification": "user action digests",
    "users_update_actions": "user action digests",
    "users_user_active_status_count": "user statistics",
    "users_user_language_count": "user statistics",
    "users_user_registration_trend": "user statistics",
    "api_auth_default_init": "social and federated login (only password and session login here)",
    "api_auth_eduteams": "social and federated login (only password and session login here)",
    "api_auth_keycloak": "social and federated login (only password and session login here)",
    "api_auth_saml2": "social and federated login (only password and session login here)",
    "api_auth_tara": "social and federated login (only password and session login here)",
    "api_auth_token_exchange": "OAuth token exchange",
}
EXPLAINED = {
    "projects_recover": (
        (400,),
        "deleted projects are gone for good here (a project is deleted only once nobody holds a role "
        "in it), so every project is one that is not deleted: Waldur's 400 for that",
    ),
}


def explanation(name):
    if name in EXPLAINED:
        return EXPLAINED[name]
    for prefix, feature in _FEATURES.items():
        if name.startswith(prefix):
            return ABSENT, f"{feature}: {NOT_SERVED}"
    return None


class World:
    """Real objects, made through the API as staff (fresh ones for operations that use them up)."""

    def __init__(self):
        self.staff = AuthenticatedClient(base_url=URL, token=os.environ["WALDUR_API_TOKEN"])
        self.user = AuthenticatedClient(base_url=URL, token=os.environ["WALDUR_USER_TOKEN"])
        self.anonymous = Client(base_url=URL)
        self.http = self.staff.get_httpx_client()
        self.customer = self.new_customer()
        self.other_customer = self.new_customer()
        self.project = self.new_project()
        self.role = self.new_role()
        self.member = self.new_user()
        self.grant("projects", self.project["uuid"], self.member["uuid"], "PROJECT.MEMBER")
        sibling = self.new_project()
        self.grant("projects", sibling["uuid"], self.new_user()["uuid"], "PROJECT.MEMBER")
        self.grant("customers", self.customer["uuid"], os.environ["WALDUR_USER_UUID"], "CUSTOMER.SUPPORT")
        self.invitation = self.new_invitation(self.project["url"])
        self.customer_invitation = self.new_invitation(self.customer["url"], "CUSTOMER.SUPPORT")
        self.request = self.new_request()
        subprocess.run(["target/debug/review-scheduler", "--task", "reviews"], capture_output=True, check=True)
        self.customer_review = self.get(f"/api/customer-permissions-reviews/?customer_uuid={self.customer['uuid']}")[0]
        self.project_review = self.get(f"/api/project-permissions-reviews/?project_uuid={self.project['uuid']}")[0]

    def ok(self, response):
        assert response.status_code < 300, (response.request.url, response.status_code, response.text)
        return response.json() if response.content else None

    def get(self, path):
        return self.ok(self.http.get(path))

    def post(self, path, body=None):
        return self.ok(self.http.post(path, json=body or {}))

    def suffix(self):
        return uuid.uuid4().hex[:8]

    def new_customer(self):
        return self.post("/api/customers/", {"name": f"Conformance {self.suffix()}"})

    def new_project(self):
        return self.post("/api/projects/", {"name": f"Project {self.suffix()}", "customer": self.customer["url"]})

    def new_role(self):
        body = {"name": f"PROJECT.CONFORMANCE_{self.suffix().upper()}", "content_type": "project", "permissions": []}
        return self.post("/api/roles/", body)

    def new_user(self, password=None):
        name = f"conf{self.suffix()}"
        user = self.post("/api/users/", {"username": name, "email": f"{name}@example.com"})
        if password:
            self.post(f"/api/users/{user['uuid']}/change_password/", {"new_password": password})
        return user

    def grant(self, collection, scope, user, role):
        return self.post(f"/api/{collection}/{scope}/add_user/", {"user": user, "role": role})

    def granted_user(self, collection, scope, role):
        user = self.new_user()
        self.grant(collection, scope, user["uuid"], role)
        return user

    def new_invitation(self, scope_url, role=MEMBER):
        roles = {r["name"]: r["uuid"] for r in self.get("/api/roles/?page_size=100")}
        return self.post("/api/user-group-invitations/", {"scope": scope_url, "role": roles.get(role, role)})

    def new_request(self):
        invitation = self.new_invitation(self.project["url"])
        password = "conformance secret 1"
        user = self.new_user(password)
        token = self.login(user["username"], password)
        client = AuthenticatedClient(base_url=URL, token=token).get_httpx_client()
        response = client.post(f"/api/user-group-invitations/{invitation['uuid']}/submit_request/", json={})
        return self.ok(response)

    def login(self, username, password):
        return self.ok(self.anonymous.get_httpx_client().post(
            "/api-auth/password/", json={"username": username, "password": password}
        ))["token"]

    def grant_row(self, user):
        rows = self.get(f"/api/projects/{self.project['uuid']}/list_users/?user={user['uuid']}")
        return rows[0]["uuid"]

    def revoked_row(self):
        user = self.granted_user("projects", self.project["uuid"], "PROJECT.MEMBER")
        row = self.grant_row(user)
        self.post(f"/api/user-permissions/{row}/revoke/")
        return row

    def email_code(self, user):
        table = boto3.resource("dynamodb", region_name=os.environ["AWS_REGION"]).Table(os.environ["TABLE_NAME"])
        item = table.get_item(Key={"PK": f"USER#{user['uuid']}", "SK": "#META"})["Item"]
        return item["email_change"]

    def canceled_invitation(self):
        invitation = self.new_invitation(self.project["url"])
        self.post(f"/api/user-group-invitations/{invitation['uuid']}/cancel/")
        return invitation


def user_login(w):
    password = "conformance secret 1"
    user = w.new_user(password)
    return {"body": {"username": user["username"], "password": password}}


def user_logout(w):
    password = "conformance secret 1"
    user = w.new_user(password)
    return AuthenticatedClient(base_url=URL, token=w.login(user["username"], password)), {}


def with_token(w):
    user = w.new_user()
    w.post(f"/api/users/{user['uuid']}/refresh_token/")
    return {"uuid": user["uuid"]}


def confirm_email(w):
    user = w.new_user()
    w.post(f"/api/users/{user['uuid']}/change_email/", {"email": f"confirmed{w.suffix()}@example.com"})
    return {"body": {"code": w.email_code(user)}}


def held_role(role):
    """update_user / delete_user of a fresh holder of `role` on the world's customer or project."""

    def arguments(w):
        collection, scope = ("customers", w.customer) if role.startswith("CUSTOMER") else ("projects", w.project)
        holder = w.granted_user(collection, scope["uuid"], role)
        return {
            "uuid": scope["uuid"],
            "body": {"user": holder["uuid"], "role": role, "expiration_time": "2035-01-01T00:00:00Z"},
        }

    return arguments


# The arguments of every operation expected to work: a function of the world answering the
# keyword arguments (`body` as a dict, turned into the operation's request model), or a client
# and those arguments. Path parameters are strings, turned into what the operation takes.
def calls():
    c = lambda w: w.customer["uuid"]  # noqa: E731
    p = lambda w: w.project["uuid"]  # noqa: E731
    return {
        "roles_clone_to_customer": lambda w: {"uuid": w.new_role()["uuid"], "body": {"customer": c(w)}},
        "roles_count": lambda w: {},
        "roles_create": lambda w: {"body": {"name": f"PROJECT.NEW_{w.suffix().upper()}", "content_type": "project", "permissions": []}},
        "roles_destroy": lambda w: {"uuid": w.new_role()["uuid"]},
        "roles_disable": lambda w: {"uuid": w.role["uuid"]},
        "roles_enable": lambda w: {"uuid": w.role["uuid"]},
        "roles_list": lambda w: {},
        "roles_partial_update": lambda w: {"uuid": w.role["uuid"], "body": {"name": w.role["name"], "content_type": "project", "permissions": []}},
        "roles_retrieve": lambda w: {"uuid": w.role["uuid"]},
        "roles_update": lambda w: {"uuid": w.role["uuid"], "body": {"name": w.role["name"], "content_type": "project", "permissions": []}},
        "roles_update_descriptions_update": lambda w: {"uuid": w.role["uuid"], "body": {"description_de": "Konformität"}},
        "customers_add_user": lambda w: {"uuid": c(w), "body": {"user": w.new_user()["uuid"], "role": "CUSTOMER.SUPPORT"}},
        "customers_contact": lambda w: {"uuid": c(w), "body": {"phone_number": "+372 5555 0000"}},
        "customers_count": lambda w: {},
        "customers_create": lambda w: {"body": {"name": f"Created {w.suffix()}"}},
        "customers_delete_user": held_role("CUSTOMER.SUPPORT"),
        "customers_destroy": lambda w: {"uuid": w.new_customer()["uuid"]},
        "customers_list": lambda w: {},
        "customers_list_users_count": lambda w: {"uuid": c(w)},
        "customers_list_users_list": lambda w: {"uuid": c(w)},
        "customers_partial_update": lambda w: {"uuid": c(w), "body": {"description": "Patched"}},
        "customers_retrieve": lambda w: {"uuid": c(w)},
        "customers_update": lambda w: {"uuid": c(w), "body": {"name": w.customer["name"]}},
        "customers_update_user": held_role("CUSTOMER.SUPPORT"),
        "customers_users_count": lambda w: {"customer_uuid": c(w)},
        "customers_users_list": lambda w: {"customer_uuid": c(w)},
        "projects_add_user": lambda w: {"uuid": p(w), "body": {"user": w.new_user()["uuid"], "role": "PROJECT.MEMBER"}},
        "projects_count": lambda w: {},
        "projects_create": lambda w: {"body": {"name": f"Created {w.suffix()}", "customer": w.customer["url"]}},
        "projects_delete_user": held_role("PROJECT.MEMBER"),
        "projects_destroy": lambda w: {"uuid": w.new_project()["uuid"]},
        "projects_list": lambda w: {},
        "projects_list_users_count": lambda w: {"uuid": p(w)},
        "projects_list_users_list": lambda w: {"uuid": p(w)},
        "projects_move_project": lambda w: {"uuid": w.new_project()["uuid"], "body": {"customer": w.other_customer["url"], "preserve_permissions": True}},
        "projects_other_users_count": lambda w: {"project_uuid": p(w)},
        "projects_other_users_list": lambda w: {"project_uuid": p(w)},
        "projects_partial_update": lambda w: {"uuid": p(w), "body": {"description": "Patched"}},
        "projects_retrieve": lambda w: {"uuid": p(w)},
        "projects_set_slug": lambda w: {"uuid": p(w), "body": {"slug": f"conformance-{w.suffix()}"}},
        "projects_sync_user_roles": lambda w: {"uuid": p(w)},
        "projects_update": lambda w: {"uuid": p(w), "body": {"name": w.project["name"], "customer": w.customer["url"]}},
        "projects_update_user": held_role("PROJECT.MEMBER"),
        "users_cancel_change_email": lambda w: {"uuid": w.member["uuid"]},
        "users_change_email": lambda w: {"uuid": w.new_user()["uuid"], "body": {"email": f"changed{w.suffix()}@example.com"}},
        "users_change_password": lambda w: {"uuid": w.new_user()["uuid"], "body": {"new_password": "changed secret 1"}},
        "users_confirm_email": lambda w: (w.anonymous, confirm_email(w)),
        "users_count": lambda w: {},
        "users_create": lambda w: {"body": {"username": f"created{w.suffix()}", "email": f"created{w.suffix()}@example.com"}},
        "users_destroy": lambda w: {"uuid": w.new_user()["uuid"]},
        "users_list": lambda w: {},
        "users_me_count": lambda w: (w.user, {}),
        "users_me_retrieve": lambda w: (w.user, {}),
        "users_partial_update": lambda w: {"uuid": w.member["uuid"], "body": {"first_name": "Patched"}},
        "users_refresh_token": lambda w: {"uuid": w.new_user()["uuid"]},
        "users_remove_password": lambda w: {"uuid": w.new_user("removed secret 1")["uuid"]},
        "users_retrieve": lambda w: {"uuid": w.member["uuid"]},
        "users_token_retrieve": with_token,
        "users_update": lambda w: {"uuid": w.member["uuid"], "body": {"username": w.member["username"], "email": w.member["email"]}},
        "user_permissions_count": lambda w: {},
        "user_permissions_list": lambda w: {},
        "user_permissions_restore": lambda w: {"uuid": w.revoked_row(), "body": {"reason": "conformance"}},
        "user_permissions_retrieve": lambda w: {"uuid": w.grant_row(w.member)},
        "user_permissions_revoke": lambda w: {"uuid": w.grant_row(w.granted_user("projects", p(w), "PROJECT.MEMBER")), "body": {"reason": "conformance"}},
        "user_group_invitations_cancel": lambda w: {"uuid": w.new_invitation(w.project["url"])["uuid"]},
        "user_group_invitations_count": lambda w: {},
        "user_group_invitations_create": lambda w: {"body": {"scope": w.project["url"], "role": MEMBER}},
        "user_group_invitations_destroy": lambda w: {"uuid": w.canceled_invitation()["uuid"]},
        "user_group_invitations_list": lambda w: {},
        "user_group_invitations_partial_update": lambda w: {"uuid": w.invitation["uuid"], "body": {"custom_text": "Patched"}},
        "user_group_invitations_projects_list": lambda w: {"uuid": w.customer_invitation["uuid"]},
        "user_group_invitations_retrieve": lambda w: {"uuid": w.invitation["uuid"]},
        "user_group_invitations_submit_request": lambda w: (w.user, {"uuid": w.new_invitation(w.project["url"])["uuid"], "body": {}}),
        "user_group_invitations_update": lambda w: {"uuid": w.invitation["uuid"], "body": {"scope": w.project["url"], "role": MEMBER, "custom_text": "Put"}},
        "user_permission_requests_approve": lambda w: {"uuid": w.new_request()["uuid"], "body": {"comment": "Welcome"}},
        "user_permission_requests_cancel_request": lambda w: {"uuid": w.new_request()["uuid"]},
        "user_permission_requests_count": lambda w: {},
        "user_permission_requests_destroy": lambda w: {"uuid": w.new_request()["uuid"]},
        "user_permission_requests_list": lambda w: {},
        "user_permission_requests_reject": lambda w: {"uuid": w.new_request()["uuid"], "body": {"comment": "Not now"}},
        "user_permission_requests_retrieve": lambda w: {"uuid": w.request["uuid"]},
        "customer_permissions_reviews_close": lambda w: {"uuid": w.customer_review["uuid"]},
        "customer_permissions_reviews_count": lambda w: {},
        "customer_permissions_reviews_list": lambda w: {},
        "customer_permissions_reviews_retrieve": lambda w: {"uuid": w.customer_review["uuid"]},
        "project_permissions_reviews_close": lambda w: {"uuid": w.project_review["uuid"]},
        "project_permissions_reviews_count": lambda w: {},
        "project_permissions_reviews_list": lambda w: {},
        "project_permissions_reviews_retrieve": lambda w: {"uuid": w.project_review["uuid"]},
        "api_auth_logout": user_logout,
        "api_auth_password": lambda w: (w.anonymous, user_login(w)),
    }


CALLS = calls()
OUTCOMES = {"worked": 0, "explained": 0}


@pytest.fixture(scope="module")
def world():
    return World()


def typed(function, kwargs):
    """The keyword arguments as the operation takes them: path uuids as UUID, the body as its model."""
    hints = typing.get_type_hints(function)
    converted = {}
    for name, value in kwargs.items():
        hint = hints.get(name)
        if name == "body" and isinstance(value, dict):
            model = next(arg for arg in typing.get_args(hint) or (hint,) if hasattr(arg, "from_dict"))
            value = model.from_dict(value)
        elif hint is UUID and isinstance(value, str):
            value = UUID(value)
        converted[name] = value
    return converted


def parsed_model(function):
    """The type the operation parses a success into (None when it has no body to parse)."""
    (inner,) = typing.get_args(typing.get_type_hints(function)["return"])
    # `Union[Any, Model]`: the operation documents a success without a body too (204).
    return None if inner is typing.Any or typing.Any in typing.get_args(inner) else inner


@pytest.mark.parametrize("package,name", operations())
def test_operation(world, package, name):
    module = importlib.import_module(f"waldur_api_client.api.{package}.{name}")
    explained = explanation(name)
    assert (name in CALLS) != (explained is not None), f"{name}: expected to work, or explained — exactly one"
    if explained is not None:
        statuses, why = explained
        target = world.project["uuid"] if name == "projects_recover" else str(uuid.uuid4())
        answer = world.http.request(**request_of(module, target))
        assert answer.status_code in statuses, f"{name} ({why}): {answer.status_code} {answer.text}"
        OUTCOMES["explained"] += 1
        return
    made = CALLS[name](world)
    client, kwargs = made if isinstance(made, tuple) else (world.staff, made)
    kwargs = typed(module.sync_detailed, kwargs)
    response = module.sync_detailed(client=client, **kwargs)
    assert 200 <= response.status_code < 300, f"{name}: {response.status_code} {response.content!r}"
    if parsed_model(module.sync_detailed) is not None:
        assert response.parsed is not None, f"{name}: the client did not parse {response.content!r}"
    if hasattr(module, "sync_all"):
        path_only = {k: v for k, v in kwargs.items() if k in ("uuid", "customer_uuid", "project_uuid")}
        assert isinstance(module.sync_all(client=client, **path_only), list), name
    OUTCOMES["worked"] += 1


class AnyBody(list):
    """A request body of no content (an empty list where a list is sent), for sending an
    operation that is not expected to work."""

    def to_dict(self):
        return {}

    def to_multipart(self):
        return {}


def request_of(module, target):
    """The operation's request, with `target` as its path uuid and placeholders for the rest."""
    arguments = {}
    for name, parameter in inspect.signature(module._get_kwargs).parameters.items():
        if parameter.default is not inspect.Parameter.empty:
            continue
        if name == "body":
            arguments[name] = AnyBody()
        elif name.endswith("uuid"):
            arguments[name] = UUID(target)
        else:
            arguments[name] = "1"
    return module._get_kwargs(**arguments)
