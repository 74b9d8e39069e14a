"""The official waldur-api-client (8.1.3) against the local runner: the roles endpoint group."""

import os
import uuid

import pytest
from waldur_api_client import errors
from waldur_api_client.api.roles import (
    roles_count,
    roles_create,
    roles_destroy,
    roles_disable,
    roles_enable,
    roles_list,
    roles_partial_update,
    roles_retrieve,
    roles_update,
    roles_update_descriptions_update,
)
from waldur_api_client.client import AuthenticatedClient
from waldur_api_client.models.patched_role_details_request import PatchedRoleDetailsRequest
from waldur_api_client.models.role_description_request import RoleDescriptionRequest
from waldur_api_client.models.role_modify_request import RoleModifyRequest
from waldur_api_client.models.role_modify_request_permissions import RoleModifyRequestPermissions
from waldur_api_client.models.role_type import RoleType
from waldur_api_client.types import UNSET

SYSTEM_ROLES = [
    "CALL.MANAGER",
    "CALL.REVIEWER",
    "CUSTOMER.MANAGER",
    "CUSTOMER.OWNER",
    "CUSTOMER.READER",
    "CUSTOMER.SUPPORT",
    "OFFERING.MANAGER",
    "PROJECT.ADMIN",
    "PROJECT.MANAGER",
    "PROJECT.MEMBER",
    "PROPOSAL.MANAGER",
    "PROPOSAL.MEMBER",
]


@pytest.fixture(scope="module")
def staff():
    return AuthenticatedClient(base_url=os.environ["WALDUR_API_URL"], token=os.environ["WALDUR_API_TOKEN"])


@pytest.fixture(scope="module")
def plain_user():
    return AuthenticatedClient(base_url=os.environ["WALDUR_API_URL"], token=os.environ["WALDUR_USER_TOKEN"])


def new_role(staff, **extra):
    body = RoleModifyRequest(
        name=f"CUSTOMER.TEST_{uuid.uuid4().hex[:8].upper()}",
        permissions=RoleModifyRequestPermissions.from_dict({"PROJECT.CREATE": True, "CUSTOMER.UPDATE": True}),
        content_type="customer",
        description="A role made by the client test",
        **extra,
    )
    return roles_create.sync(client=staff, body=body)


def test_list_follows_the_link_header_through_all_pages(staff):
    everything = roles_list.sync_all(client=staff, is_system_role=True)
    assert [role.name for role in everything] == SYSTEM_ROLES
    owner = next(role for role in everything if role.name == "CUSTOMER.OWNER")
    assert owner.content_type == RoleType.CUSTOMER
    assert owner.uuid == uuid.UUID("afab8022f4df457fba97346cd4c6a4a1")
    assert "PROJECT.CREATE" in owner.permissions
    assert isinstance(owner.users_count, int), "staff see users_count"


def test_list_pages_and_counts(staff):
    first = roles_list.sync(client=staff, page_size=5, is_system_role=True)
    assert [role.name for role in first] == SYSTEM_ROLES[:5]
    third = roles_list.sync(client=staff, page_size=5, page=3, is_system_role=True)
    assert [role.name for role in third] == SYSTEM_ROLES[10:]
    assert roles_count.sync(client=staff, is_system_role=True) == 12
    assert roles_count.sync(client=staff, content_type="project") >= 3


def test_create_retrieve_and_update(staff):
    created = new_role(staff)
    assert created.content_type == RoleType.CUSTOMER
    assert sorted(created.permissions) == ["CUSTOMER.UPDATE", "PROJECT.CREATE"]
    assert created.is_system_role is False
    assert created.is_active is True

    fetched = roles_retrieve.sync(uuid=created.uuid, client=staff)
    assert fetched.name == created.name
    assert fetched.description == "A role made by the client test"

    patched = roles_partial_update.sync(
        uuid=created.uuid,
        client=staff,
        body=PatchedRoleDetailsRequest(description="Patched", description_et="Muudetud"),
    )
    assert patched.description == "Patched"
    assert patched.description_et == "Muudetud"
    assert sorted(patched.permissions) == ["CUSTOMER.UPDATE", "PROJECT.CREATE"]

    replaced = roles_update.sync(
        uuid=created.uuid,
        client=staff,
        body=RoleModifyRequest(
            name=created.name + "_V2",
            permissions=RoleModifyRequestPermissions.from_dict({"ORDER.APPROVE": True}),
            content_type="customer",
        ),
    )
    assert replaced.name == created.name + "_V2"
    assert replaced.permissions == ["ORDER.APPROVE"]

    descriptions = roles_update_descriptions_update.sync(
        uuid=created.uuid, client=staff, body=RoleDescriptionRequest(description_de="Beschreibung")
    )
    assert descriptions.description_de == "Beschreibung"
    assert descriptions.description_et == "Muudetud"


def test_disable_enable_and_destroy(staff):
    created = new_role(staff)
    assert roles_disable.sync_detailed(uuid=created.uuid, client=staff).status_code == 200
    assert roles_retrieve.sync(uuid=created.uuid, client=staff).is_active is False
    assert created.name in [r.name for r in roles_list.sync_all(client=staff, is_active=False)]
    assert roles_enable.sync_detailed(uuid=created.uuid, client=staff).status_code == 200
    assert roles_retrieve.sync(uuid=created.uuid, client=staff).is_active is True

    assert roles_destroy.sync_detailed(uuid=created.uuid, client=staff).status_code == 204
    with pytest.raises(errors.UnexpectedStatus) as missing:
        roles_retrieve.sync(uuid=created.uuid, client=staff)
    assert missing.value.status_code == 404


def test_invalid_input_and_denials_raise(staff, plain_user):
    with pytest.raises(errors.UnexpectedStatus) as invalid:
        roles_create.sync(
            client=staff,
            body=RoleModifyRequest(
                name="CUSTOMER.BROKEN",
                permissions=RoleModifyRequestPermissions.from_dict({"NO.SUCH_PERMISSION": True}),
                content_type="customer",
            ),
        )
    assert invalid.value.status_code == 400
    assert b"Invalid permissions NO.SUCH_PERMISSION" in invalid.value.content

    with pytest.raises(errors.UnexpectedStatus) as system:
        roles_destroy.sync_detailed(uuid=uuid.UUID("afab8022f4df457fba97346cd4c6a4a1"), client=staff)
    assert system.value.status_code == 400

    assert [r.name for r in roles_list.sync_all(client=plain_user, is_system_role=True)] == SYSTEM_ROLES
    owner = roles_retrieve.sync(uuid=uuid.UUID("afab8022f4df457fba97346cd4c6a4a1"), client=plain_user)
    assert owner.users_count is UNSET, "users_count is shown to staff and support only"
    with pytest.raises(errors.UnexpectedStatus) as forbidden:
        new_role(plain_user)
    assert forbidden.value.status_code == 403
