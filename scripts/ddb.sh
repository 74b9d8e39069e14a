#!/usr/bin/env bash
# Starts or stops a DynamoDB Local in the background.
#   scripts/ddb.sh start PORT memory|DATA_DIR    (-inMemory, or -sharedDb -dbPath DATA_DIR)
#   scripts/ddb.sh stop PORT
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .dev
command=${1:?usage: $0 start PORT memory|DIR | stop PORT}
port=${2:?port}
pidfile=.dev/ddb-$port.pid
log=.dev/ddb-$port.log

answers() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; }

case "$command" in
start)
    data=${3:?memory or a data folder}
    if answers; then
        echo "DynamoDB Local already answers on port $port; using it" >&2
        exit 0
    fi
    dir=$(scripts/setup.sh ddb-dir)
    if [ "$data" = memory ]; then
        storage=(-inMemory)
    else
        mkdir -p "$data"
        storage=(-sharedDb -dbPath "$data")
    fi
    nohup java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.library.path="$dir/DynamoDBLocal_lib" \
        -jar "$dir/DynamoDBLocal.jar" "${storage[@]}" -port "$port" >"$log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 300); do
        if answers; then
            echo "DynamoDB Local is up on port $port" >&2
            exit 0
        fi
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "DynamoDB Local did not start on port $port:" >&2
    tail -20 "$log" >&2
    exit 1
    ;;
stop)
    if [ -f "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    fi
    ;;
*)
    echo "usage: $0 start PORT memory|DIR | stop PORT" >&2
    exit 2
    ;;
esac
