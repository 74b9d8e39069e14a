"""Schemathesis hooks: keep the fuzzer off the two accounts it authenticates as (and work around
a CPython bug, below).

Rotating their token (`refresh_token`) or editing them (deactivating, dropping is_staff,
deleting, a new password) in the middle of a run would turn every later case into a 401 and hide
the rest of the API from it. (Logout, which ends the caller's own token, is left out of the run
in run.sh.)
"""

import ast
import os
import threading

import schemathesis

# CPython 3.11.7 (this machine's) can fail `ast.parse` run by several threads at once with
# "SystemError: AST constructor recursion depth mismatch" (gh-106905); Hypothesis parses
# sources to describe strategies, in each of schemathesis' worker threads. One at a time:
_parse = ast.parse
_parse_lock = threading.Lock()


def _serial_parse(*args, **kwargs):
    with _parse_lock:
        return _parse(*args, **kwargs)


ast.parse = _serial_parse

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

