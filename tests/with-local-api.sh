#!/usr/bin/env bash
# Runs a command against the local runner: a DynamoDB Local of its own, a fresh table with the
# system roles, a staff user `admin` and a plain user `alice`, and the API on a free port.
# The command gets WALDUR_API_URL, WALDUR_API_TOKEN (admin), WALDUR_USER_TOKEN and
# WALDUR_USER_UUID (alice) in its environment.
# With API_RUNNER=sam the API is served by AWS's `sam local start-api` (scripts/sam-local.sh) over
# the debug bootstraps of the functions, instead of the in-process runner.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh all
runner=${API_RUNNER:-local-api}
if [ "$runner" = sam ]; then
    cargo build -q -p admin $(for dir in functions/*; do echo "-p $(basename "$dir")-function"; done)
    scripts/sam-local.sh setup
    scripts/sam-local.sh template
else
    cargo build -q -p admin -p local-api -p review-scheduler-function
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
ddb_port=$(free_port)
api_port=$(free_port)
api_pid=""
cleanup() {
    [ -n "$api_pid" ] && { kill "$api_pid" 2>/dev/null; wait "$api_pid" 2>/dev/null; } || true
    scripts/ddb.sh stop "$ddb_port"
    rm -f ".dev/ddb-$ddb_port.log"
    rm -rf "$work"
}
trap cleanup EXIT

scripts/ddb.sh start "$ddb_port" memory
export AWS_ACCESS_KEY_ID=dummy AWS_SECRET_ACCESS_KEY=dummy AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port" TABLE_NAME=local-api-test
TOKEN_KEYS=$(target/debug/admin new-token-key test)
export TOKEN_KEYS

target/debug/admin bootstrap --create-table --seed-roles --staff-user admin --token-file "$work/admin.token" >/dev/null
user_uuid=$(target/debug/admin create-user --username alice --email alice@example.com --first-name Alice --last-name Tester)
user_token=$(target/debug/admin issue-token alice)

if [ "$runner" = sam ]; then
    scripts/sam-local.sh start-api "$api_port" "$TABLE_NAME" "$ddb_port" "$TOKEN_KEYS" >"$work/api.log" 2>&1 &
else
    target/debug/local-api --addr "127.0.0.1:$api_port" --template template.yaml >"$work/api.log" 2>&1 &
fi
api_pid=$!
for _ in $(seq 600); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api_port/api/roles/")" = 200 ]; then break; fi
    if ! kill -0 "$api_pid" 2>/dev/null; then cat "$work/api.log" >&2; exit 1; fi
    sleep 0.1
done

status=0
WALDUR_API_URL="http://127.0.0.1:$api_port" WALDUR_API_TOKEN="$(cat "$work/admin.token")" \
    WALDUR_USER_TOKEN="$user_token" WALDUR_USER_UUID="$user_uuid" "$@" || status=$?
if [ "$status" != 0 ]; then
    echo "--- local API log (last 50 lines)" >&2
    tail -50 "$work/api.log" >&2
fi
exit "$status"
