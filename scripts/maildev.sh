#!/usr/bin/env bash
# Runs MailDev (installed by scripts/setup.sh maildev) on 127.0.0.1: SMTP on $MAILDEV_SMTP_PORT
# (1025), the web page and JSON API (GET /email) on $MAILDEV_WEB_PORT (1080).
#   scripts/maildev.sh         runs in the foreground
#   scripts/maildev.sh start   in the background (make dev), until scripts/maildev.sh stop
#   scripts/maildev.sh bin     prints the path of the maildev executable
set -euo pipefail
cd "$(dirname "$0")/.."
SMTP_PORT=${MAILDEV_SMTP_PORT:-1025}
WEB_PORT=${MAILDEV_WEB_PORT:-1080}
BIN="$(pwd)/.tools/maildev/node_modules/.bin/maildev"
PIDFILE=.dev/maildev-$WEB_PORT.pid

answers() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$WEB_PORT/email"; }

case "${1:-run}" in
bin)
    scripts/setup.sh maildev
    echo "$BIN"
    ;;
run)
    scripts/setup.sh maildev
    exec "$BIN" --ip 127.0.0.1 --smtp "$SMTP_PORT" --web "$WEB_PORT" --silent
    ;;
start)
    if answers; then
        echo "MailDev already answers on port $WEB_PORT; using it" >&2
        exit 0
    fi
    scripts/setup.sh maildev
    mkdir -p .dev
    nohup "$BIN" --ip 127.0.0.1 --smtp "$SMTP_PORT" --web "$WEB_PORT" --silent >".dev/maildev-$WEB_PORT.log" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 100); do
        if answers; then
            echo "MailDev is up: SMTP on 127.0.0.1:$SMTP_PORT, mail at http://127.0.0.1:$WEB_PORT" >&2
            exit 0
        fi
        sleep 0.1
    done
    echo "MailDev did not start:" >&2
    tail -20 ".dev/maildev-$WEB_PORT.log" >&2
    exit 1
    ;;
stop)
    if [ -f "$PIDFILE" ]; then
        kill "$(cat "$PIDFILE")" 2>/dev/null || true
        rm -f "$PIDFILE"
    fi
    ;;
*)
    echo "usage: $0 [run|start|stop|bin]" >&2
    exit 2
    ;;
esac
