"""The official waldur-api-client (8.1.3) against the local runner: customer permission
reviews, opened by the review scheduler binary (as the daily schedule would)."""

import os
import subprocess
import uuid

import pytest
from waldur_api_client import errors
from waldur_api_client.api.customer_permissions_reviews import (
    customer_permissions_reviews_close,
    customer_permissions_reviews_list,
    customer_permissions_reviews_retrieve,
)
from waldur_api_client.client import AuthenticatedClient


@pytest.fixture(scope="module")
def staff():
    return AuthenticatedClient(base_url=os.environ["WALDUR_API_URL"], token=os.environ["WALDUR_API_TOKEN"])


def test_list_retrieve_and_close(staff):
    http = staff.get_httpx_client()
    customer = http.post("/api/customers/", json={"name": f"Reviewed {uuid.uuid4().hex[:6]}"}).json()
    grant = {"user": os.environ["WALDUR_USER_UUID"], "role": "CUSTOMER.SUPPORT"}
    assert http.post(f"/api/customers/{customer['uuid']}/add_user/", json=grant).status_code == 201
    run = subprocess.run(
        ["target/debug/review-scheduler", "--task", "reviews"], capture_output=True, text=True, check=True
    )
    assert '"reviews_opened"' in run.stdout

    customer_uuid = uuid.UUID(customer["uuid"])
    (review,) = customer_permissions_reviews_list.sync_all(client=staff, customer_uuid=customer_uuid, is_pending=True)
    assert review.is_pending is True
    assert review.reviewer_uuid is None and review.reviewer_full_name is None
    assert review.customer_name == customer["name"]
    assert customer_permissions_reviews_retrieve.sync(uuid=review.uuid, client=staff).uuid == review.uuid

    assert customer_permissions_reviews_close.sync_detailed(uuid=review.uuid, client=staff).status_code == 200
    closed = customer_permissions_reviews_retrieve.sync(uuid=review.uuid, client=staff)
    assert closed.is_pending is False
    assert closed.closed is not None
    with pytest.raises(errors.UnexpectedStatus) as again:
        customer_permissions_reviews_close.sync_detailed(uuid=review.uuid, client=staff)
    assert again.value.status_code == 400
