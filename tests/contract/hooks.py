"""Schemathesis hooks: keep the fuzzer off the two accounts it authenticates as.

Rotating their token (`refresh_token`) or editing them (deactivating, dropping is_staff) in the
middle of a run would turn every later case into a 401 and hide the rest of the API from it.
"""

import os

import schemathesis

PROTECTED = {
    os.environ.get(name, "").replace("-", "").lower()
    for name in ("WALDUR_ADMIN_UUID", "WALDUR_USER_UUID")
} - {""}


# Any uuid that names no user: the case still runs and must answer a documented 404.
STAND_IN = "ffffffffffffffffffffffffffffffff"


@schemathesis.hook
def before_call(context, case, kwargs):
    # Runs before every request of every phase (filters apply to generated data only).
    for name, value in list((case.path_parameters or {}).items()):
        if str(value).replace("-", "").lower() in PROTECTED:
            case.path_parameters[name] = STAND_IN
