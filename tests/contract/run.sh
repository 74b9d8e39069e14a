#!/usr/bin/env bash
# Contract fuzzing: schemathesis generates requests from docs/openapi.yaml and sends them to the
# local runner, once as the staff user and once as a plain user. Every answer must be documented
# (status, content type, headers, body schema) and none may be a 5xx. Logout is left out: it ends
# the token the run authenticates with (tests/tests/accounts.rs and the client suite cover it).
#   CONTRACT_EXAMPLES   generated cases per operation in the fuzzing phase (default 50; the
#                       coverage phase adds its own, about 60 per operation)
set -euo pipefail
cd "$(dirname "$0")/../.."

scripts/setup.sh python
if [ -z "${WALDUR_API_URL:-}" ]; then
    exec tests/with-local-api.sh "$0" "$@"
fi

examples=${CONTRACT_EXAMPLES:-50}
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
output=$(mktemp -d)
trap 'rm -rf "$output"' EXIT
WALDUR_ADMIN_UUID=$(curl -sf -H "Authorization: Token $WALDUR_API_TOKEN" "$WALDUR_API_URL/api/users/me/" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["uuid"])')
export WALDUR_ADMIN_UUID PYTHONPATH="$PWD/tests/contract" SCHEMATHESIS_HOOKS=hooks

fuzz() {
    local actor=$1 token=$2 status=0
    echo "contract fuzzing as $actor: the examples and coverage phases, then $examples generated cases per operation" >&2
    .tools/fuzz-venv/bin/schemathesis run docs/openapi.yaml \
        --url "$WALDUR_API_URL" \
        --header "Authorization: Token $token" \
        --checks "$checks" \
        --phases examples,coverage,fuzzing \
        --exclude-operation-id auth_logout \
        --max-examples "$examples" \
        --seed 20261128 \
        --workers 4 \
        --request-timeout 10 \
        --no-color >"$output/$actor.log" 2>&1 || status=$?
    # The summary (failures first, if any) and the number of cases run.
    sed -n '/= ERRORS =\|= FAILURES =\|= SUMMARY =/,$p' "$output/$actor.log" >&2
    local cases
    cases=$(grep -A1 '^Test cases:' "$output/$actor.log" | tail -1 | sed 's/^ *//')
    echo "contract fuzzing as $actor: ${cases:-no cases counted}; exit $status" >&2
    # The run saw the API as this actor to the end only if the token still works.
    if ! curl -sf -o /dev/null -H "Authorization: Token $token" "$WALDUR_API_URL/api/users/me/"; then
        echo "contract fuzzing as $actor: the token no longer works after the run" >&2
        return 1
    fi
    return "$status"
}

status=0
fuzz staff "$WALDUR_API_TOKEN" || status=1
fuzz plain-user "$WALDUR_USER_TOKEN" || status=1
exit "$status"
