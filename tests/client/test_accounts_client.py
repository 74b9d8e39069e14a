"""The official waldur-api-client (8.1.3) against the local runner: password login, the user's
own token, change_password, refresh_token, logout and deleting users."""

import os
import uuid

import pytest
from waldur_api_client.api.api_auth import api_auth_logout, api_auth_password
from waldur_api_client.api.users import (
    users_change_password,
    users_create,
    users_destroy,
    users_me_count,
    users_me_retrieve,
    users_refresh_token,
)
from waldur_api_client.client import AuthenticatedClient, Client
from waldur_api_client.errors import UnexpectedStatus
from waldur_api_client.models.obtain_auth_token_request import ObtainAuthTokenRequest
from waldur_api_client.models.password_change_request import PasswordChangeRequest
from waldur_api_client.models.user_request import UserRequest

URL = os.environ["WALDUR_API_URL"]


@pytest.fixture(scope="module")
def staff():
    return AuthenticatedClient(base_url=URL, token=os.environ["WALDUR_API_TOKEN"])


@pytest.fixture()
def account(staff):
    """A fresh user with a password: (uuid, username, password)."""
    username = f"client{uuid.uuid4().hex[:8]}"
    password = "first secret 1"
    body = UserRequest(username=username, email=f"{username}@example.com")
    created = users_create.sync_detailed(client=staff, body=body)
    assert created.status_code == 201, created.content
    user = uuid.UUID(created.parsed.uuid.hex)
    set_by_staff = users_change_password.sync_detailed(
        uuid=user, client=staff, body=PasswordChangeRequest(new_password=password)
    )
    assert set_by_staff.status_code == 200, set_by_staff.content
    return user, username, password


def login(username, password):
    body = ObtainAuthTokenRequest(username=username, password=password)
    return api_auth_password.sync_detailed(client=Client(base_url=URL), body=body)


def test_logins_share_one_token_which_its_owner_sees(account):
    _, username, password = account
    first = login(username, password)
    second = login(username, password)
    assert first.status_code == second.status_code == 200, first.content
    token = first.parsed.token
    assert second.parsed.token == token
    client = AuthenticatedClient(base_url=URL, token=token)
    me = users_me_retrieve.sync(client=client)
    assert me.username == username and me.token == token and me.token_lifetime == 3600
    assert users_me_count.sync(client=client) == 1


def test_change_password_refresh_and_logout(account):
    user, username, password = account
    token = login(username, password).parsed.token
    client = AuthenticatedClient(base_url=URL, token=token)
    changed = users_change_password.sync_detailed(
        uuid=user, client=client, body=PasswordChangeRequest(new_password="second secret 2")
    )
    assert changed.status_code == 200, changed.content
    assert login(username, password).status_code == 401
    assert login(username, "second secret 2").status_code == 200

    refreshed = users_refresh_token.sync(uuid=user, client=client)
    # The model keeps `token` among its additional properties.
    assert refreshed.user_username == username and refreshed["token"] != token
    client = AuthenticatedClient(base_url=URL, token=refreshed["token"])
    assert api_auth_logout.sync_detailed(client=client).status_code == 204
    with pytest.raises(UnexpectedStatus) as ended:
        users_me_retrieve.sync_detailed(client=client)
    assert ended.value.status_code == 401


def test_staff_deletes_a_user(staff, account):
    user, username, password = account
    token = login(username, password).parsed.token
    own = AuthenticatedClient(base_url=URL, token=token)
    # 403 is not among the statuses the client documents for this operation.
    with pytest.raises(UnexpectedStatus) as refused:
        users_destroy.sync_detailed(uuid=user, client=own)
    assert refused.value.status_code == 403
    assert users_destroy.sync_detailed(uuid=user, client=staff).status_code == 204
    with pytest.raises(UnexpectedStatus) as ended:
        users_me_retrieve.sync_detailed(client=own)
    assert ended.value.status_code == 401
    with pytest.raises(UnexpectedStatus) as gone:
        users_destroy.sync_detailed(uuid=user, client=staff)
    assert gone.value.status_code == 404
