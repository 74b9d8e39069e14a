#!/usr/bin/env bash
# The official waldur-api-client against the local runner (API_RUNNER=sam: through sam local).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec tests/with-local-api.sh .tools/venv/bin/pytest -q -p no:cacheprovider tests/client
