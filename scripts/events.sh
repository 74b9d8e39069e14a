#!/usr/bin/env bash
# Regenerates events/, the sample events of `make sam-invoke`, with SAM's own generator, so that
# they have exactly the shape API Gateway (HTTP API, payload 2.0) and the scheduler send.
# One public GET per API function, and the two inputs of the daily schedules.
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0
mkdir -p events

http() { # FILE PATH: a GET of PATH, without the generator's sample body
    .tools/venv/bin/sam local generate-event apigateway http-api-proxy --method GET --path "$2" --body "" >"events/$1.json"
}
http roles-list api/roles/
http scopes-customers api/customers/
http users-me api/users/me/
http permissions-customer api/customer-permissions/
http invitations-list api/user-group-invitations/
http reviews-customer api/customer-permissions-reviews/
http schema api/schema/
http workspace-permissions-auth api/v1/auth/
# EventBridge Scheduler passes the schedule's Input (template.yaml) as the event itself.
echo '{"task": "reviews"}' >events/scheduler-reviews.json
echo '{"task": "expiry"}' >events/scheduler-expiry.json
