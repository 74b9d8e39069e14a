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
# The notifier's stream record: SAM's DynamoDB sample cut to what the event source mapping lets
# through (one INSERT of an outbox item; the stream is KEYS_ONLY). Its item is not in a fresh
# table, so the notifier answers it as a failed record (partial batch response).
.tools/venv/bin/sam local generate-event dynamodb update | python3 -c '
import json, sys
event = json.load(sys.stdin)
record = event["Records"][0]
change = record["dynamodb"]
change["Keys"] = {"PK": {"S": "OUTBOX#2026-12-01"}, "SK": {"S": "2026-12-01T06:00:00.000000Z#0c3f1d6e5a8b4c2d9e7f6a5b4c3d2e1f"}}
change.pop("NewImage", None)
change["StreamViewType"] = "KEYS_ONLY"
event["Records"] = [record]
json.dump(event, sys.stdout, indent=2)
print()' >events/notifier-outbox.json
