"""The official waldur-api-client (8.1.3) against the local runner: role grants on customers and
projects."""

import datetime
import os
import uuid

import pytest
from waldur_api_client.api.customers import customers_add_user, customers_list_users_list
from waldur_api_client.api.projects import (
    projects_add_user,
    projects_delete_user,
    projects_list_users_list,
    projects_update_user,
)
from waldur_api_client.client import AuthenticatedClient
from waldur_api_client.models.user_role_create_request import UserRoleCreateRequest
from waldur_api_client.models.user_role_delete_request import UserRoleDeleteRequest
from waldur_api_client.models.user_role_update_request import UserRoleUpdateRequest


@pytest.fixture(scope="module")
def staff():
    return AuthenticatedClient(base_url=os.environ["WALDUR_API_URL"], token=os.environ["WALDUR_API_TOKEN"])


@pytest.fixture(scope="module")
def alice():
    return uuid.UUID(os.environ["WALDUR_USER_UUID"])


@pytest.fixture()
def scopes(staff):
    http = staff.get_httpx_client()
    customer = http.post("/api/customers/", json={"name": f"Org {uuid.uuid4().hex[:6]}"})
    assert customer.status_code == 201, customer.text
    project = http.post("/api/projects/", json={"name": "Project", "customer": customer.json()["url"]})
    assert project.status_code == 201, project.text
    return uuid.UUID(customer.json()["uuid"]), uuid.UUID(project.json()["uuid"])


def test_customer_grant_and_listing(staff, alice, scopes):
    customer, _ = scopes
    body = UserRoleCreateRequest(role="CUSTOMER.OWNER", user=alice)
    granted = customers_add_user.sync(uuid=customer, client=staff, body=body)
    assert granted.expiration_time is None
    assert customers_add_user.sync(uuid=customer, client=staff, body=body) is None, "a duplicate is a 400"

    members = customers_list_users_list.sync_all(uuid=customer, client=staff)
    assert [(m.user_username, m.role_name, m.user_uuid) for m in members] == [("alice", "CUSTOMER.OWNER", alice)]
    assert members[0].user_full_name == "Alice Tester"
    owners = customers_list_users_list.sync(uuid=customer, client=staff, role=["CUSTOMER.OWNER"])
    assert len(owners) == 1
    assert customers_list_users_list.sync(uuid=customer, client=staff, role=["CUSTOMER.SUPPORT"]) == []


def test_project_grant_update_and_delete(staff, alice, scopes):
    _, project = scopes
    expires = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    granted = projects_add_user.sync(
        uuid=project, client=staff, body=UserRoleCreateRequest(role="PROJECT.ADMIN", user=alice, expiration_time=expires)
    )
    assert granted.expiration_time == expires

    later = datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc)
    updated = projects_update_user.sync(
        uuid=project, client=staff, body=UserRoleUpdateRequest(role="PROJECT.ADMIN", user=alice, expiration_time=later)
    )
    assert updated.expiration_time == later
    (member,) = projects_list_users_list.sync_all(uuid=project, client=staff)
    assert member.expiration_time == later

    removed = projects_delete_user.sync_detailed(
        uuid=project, client=staff, body=UserRoleDeleteRequest(role="PROJECT.ADMIN", user=alice)
    )
    assert removed.status_code == 200
    assert projects_list_users_list.sync_all(uuid=project, client=staff) == []
