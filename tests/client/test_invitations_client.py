"""The official waldur-api-client (8.1.3) against the local runner: group invitations and user
permission requests."""

import os
import uuid

import pytest
from waldur_api_client.api.projects import projects_list_users_list
from waldur_api_client.api.user_group_invitations import (
    user_group_invitations_create,
    user_group_invitations_submit_request,
)
from waldur_api_client.api.user_permission_requests import (
    user_permission_requests_approve,
    user_permission_requests_cancel_request,
    user_permission_requests_list,
    user_permission_requests_reject,
    user_permission_requests_retrieve,
)
from waldur_api_client.client import AuthenticatedClient
from waldur_api_client.models.group_invitation_request import GroupInvitationRequest
from waldur_api_client.models.review_comment_request import ReviewCommentRequest
from waldur_api_client.models.submit_request_request import SubmitRequestRequest

PROJECT_MEMBER = uuid.UUID("9c9547bad0d742adafd4d54ef992e605")


@pytest.fixture(scope="module")
def staff():
    return AuthenticatedClient(base_url=os.environ["WALDUR_API_URL"], token=os.environ["WALDUR_API_TOKEN"])


@pytest.fixture(scope="module")
def alice():
    return AuthenticatedClient(base_url=os.environ["WALDUR_API_URL"], token=os.environ["WALDUR_USER_TOKEN"])


@pytest.fixture()
def project_url(staff):
    http = staff.get_httpx_client()
    customer = http.post("/api/customers/", json={"name": f"Org {uuid.uuid4().hex[:6]}"})
    project = http.post("/api/projects/", json={"name": "Invited", "customer": customer.json()["url"]})
    assert project.status_code == 201, project.text
    return project.json()["url"]


def invite_and_submit(staff, alice, project_url):
    invitation = user_group_invitations_create.sync(
        client=staff, body=GroupInvitationRequest(role=PROJECT_MEMBER, scope=project_url)
    )
    assert invitation.scope_name == "Invited"
    assert invitation.is_active is True
    submitted = user_group_invitations_submit_request.sync(uuid=invitation.uuid, client=alice, body=SubmitRequestRequest())
    assert submitted.scope_name == "Invited"
    assert submitted.auto_approved is False
    return uuid.UUID(submitted.uuid), invitation


def test_approve(staff, alice, project_url):
    request_uuid, invitation = invite_and_submit(staff, alice, project_url)
    listed = user_permission_requests_list.sync_all(client=staff, invitation=invitation.uuid)
    assert [(r.uuid, r.state, r.created_by_username) for r in listed] == [(request_uuid, "pending", "alice")]
    assert listed[0].reviewed_by_username is None
    response = user_permission_requests_approve.sync_detailed(
        uuid=request_uuid, client=staff, body=ReviewCommentRequest(comment="welcome")
    )
    assert response.status_code == 200
    detail = user_permission_requests_retrieve.sync(uuid=request_uuid, client=alice)
    assert (detail.state, detail.review_comment, detail.reviewed_by_username) == ("approved", "welcome", "admin")
    project = uuid.UUID(project_url.rstrip("/").rsplit("/", 1)[1])
    members = projects_list_users_list.sync_all(uuid=project, client=staff)
    assert [(m.user_username, m.role_name) for m in members] == [("alice", "PROJECT.MEMBER")]


def test_reject_and_cancel(staff, alice, project_url):
    rejected_uuid, _ = invite_and_submit(staff, alice, project_url)
    response = user_permission_requests_reject.sync_detailed(
        uuid=rejected_uuid, client=staff, body=ReviewCommentRequest(comment="no")
    )
    assert response.status_code == 200
    assert user_permission_requests_retrieve.sync(uuid=rejected_uuid, client=staff).state == "rejected"

    canceled_uuid, _ = invite_and_submit(staff, alice, project_url)
    canceled = user_permission_requests_cancel_request.sync(uuid=canceled_uuid, client=alice)
    assert (canceled.uuid, canceled.scope_name) == (canceled_uuid.hex, "Invited")
    states = {r.uuid: r.state for r in user_permission_requests_list.sync_all(client=alice)}
    assert states[rejected_uuid] == "rejected"
    assert states[canceled_uuid] == "canceled"
