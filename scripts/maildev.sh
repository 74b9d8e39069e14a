#!/usr/bin/env bash
# Runs MailDev (installed by scripts/setup.sh maildev) on 127.0.0.1: SMTP on $MAILDEV_SMTP_PORT
# (1025), the web page and JSON API (GET /email) on $MAILDEV_WEB_PORT (1080).
#   scripts/maildev.sh         runs in the foreground
#   scripts/maildev.sh bin     prints the path of the maildev executable
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh maildev
BIN="$(pwd)/.tools/maildev/node_modules/.bin/maildev"
if [ "${1:-}" = bin ]; then
    echo "$BIN"
    exit 0
fi
exec "$BIN" --ip 127.0.0.1 --smtp "${MAILDEV_SMTP_PORT:-1025}" --web "${MAILDEV_WEB_PORT:-1080}" --silent
