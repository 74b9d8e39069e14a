#!/usr/bin/env bash
# Runs the functions under AWS's own `sam local`, in podman containers on this machine.
#   scripts/sam-local.sh setup          podman, runc and busybox-static from Debian (apt), their
#                                       configuration under .tools/podman, and the base image SAM
#                                       runs the functions in; idempotent
#   scripts/sam-local.sh template       derives .aws-sam/local/template.yaml over the debug bootstraps
#                                       (make sam-local builds them first)
#   scripts/sam-local.sh start-api PORT TABLE DDB_PORT TOKEN_KEYS
#                                       serves the API at http://127.0.0.1:PORT until stopped
#   scripts/sam-local.sh invoke FUNCTION EVENT TABLE DDB_PORT TOKEN_KEYS
#                                       one `sam local invoke` of a function of template.yaml
set -euo pipefail
cd "$(dirname "$0")/.."

SAM=.tools/venv/bin/sam
PODMAN_DIR=$PWD/.tools/podman
LOCAL=.aws-sam/local
# SAM looks for exactly this name (architecture suffix included); no image can be pulled here, so
# it is built locally and SAM is told not to pull (--skip-pull-image).
BASE_IMAGE=public.ecr.aws/lambda/provided:al2023-x86_64

# Every podman call (ours and the API service SAM talks to) reads these two files, so no call
# needs flags. Debian's default crun cannot set RLIMIT_NOFILE here and fails on the hybrid
# cgroups; runc with cgroupfs works. Storage stays in the repo's gitignored .tools/.
export CONTAINERS_CONF=$PODMAN_DIR/containers.conf
export CONTAINERS_STORAGE_CONF=$PODMAN_DIR/storage.conf

setup() {
    if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! [ -x /bin/busybox ]; then
        echo "sam-local: installing podman, runc and busybox-static (apt)" >&2
        apt-get install -y -qq podman runc busybox-static >/dev/null \
            || { apt-get update -qq && apt-get install -y -qq podman runc busybox-static >/dev/null; }
    fi
    mkdir -p "$PODMAN_DIR"
    cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
    cat >"$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "overlay"
graphroot = "$PODMAN_DIR/storage"
runroot = "$PODMAN_DIR/run"
CONF
    if ! podman image exists "$BASE_IMAGE"; then
        build_base_image
    fi
}

# SAM adds its Runtime Interface Emulator on top of the base (a Dockerfile with ADD and RUN mv,
# chmod), so the base needs a shell with mv and chmod, the folders Lambda mounts into, and the
# libraries the bootstraps link against: busybox-static and the host's own libc, libm, libgcc_s
# and loader (the bootstraps are built on this host, so these match them exactly), and the host's
# CA bundle, without which the AWS SDK's TLS set-up panics at start even for plain-http endpoints.
build_base_image() {
    echo "sam-local: building $BASE_IMAGE from busybox-static and the host's libc" >&2
    local root
    root=$(mktemp -d)
    mkdir -p "$root"/{bin,tmp,var/task,var/runtime,opt,lib/x86_64-linux-gnu,lib64,etc/ssl/certs}
    cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
    cp /bin/busybox "$root/bin/busybox"
    for tool in sh mv chmod ls cat; do ln -s busybox "$root/bin/$tool"; done
    for lib in libc.so.6 libm.so.6 libgcc_s.so.1; do
        cp -L "/lib/x86_64-linux-gnu/$lib" "$root/lib/x86_64-linux-gnu/$lib"
    done
    cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
    chmod 1777 "$root/tmp"
    tar -C "$root" -c . | podman import --change 'ENTRYPOINT ["/bin/sh"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$root"
}

# The local template is derived from template.yaml, never kept by hand: each function's CodeUri
# points at a folder holding its debug bootstrap (the fast profile; a release build of nine
# functions is too slow for CI), and AWS_ENDPOINT_URL_DYNAMODB is declared so that --env-vars can
# point the functions at DynamoDB Local (SAM only passes variables the template declares).
template() {
    local binaries
    binaries=$(grep -h -A1 '^\[\[bin\]\]' functions/*/Cargo.toml | sed -n 's/^name = "\(.*\)"/\1/p')
    # Updated in place (ln -f, rewritten files), never removed: a running make sam-local serves it.
    mkdir -p "$LOCAL"
    for binary in $binaries; do
        mkdir -p "$LOCAL/$binary"
        # A hard link (same file system as target/) instead of a 35 MB copy per function.
        ln -f "target/debug/$binary" "$LOCAL/$binary/bootstrap" 2>/dev/null \
            || cp "target/debug/$binary" "$LOCAL/$binary/bootstrap"
    done
    .tools/venv/bin/python - "$LOCAL" <<'PY'
import sys
from samcli.yamlhelper import yaml_parse, yaml_dump

local = sys.argv[1]
with open("template.yaml") as f:
    template = yaml_parse(f.read())
function = template["Globals"]["Function"]
function["Environment"]["Variables"]["AWS_ENDPOINT_URL_DYNAMODB"] = ""
for resource in template["Resources"].values():
    if resource["Type"] == "AWS::Serverless::Function":
        binary = resource.pop("Metadata")["BuildProperties"]["Binary"]
        resource["Properties"]["CodeUri"] = binary
with open(f"{local}/template.yaml", "w") as f:
    f.write(yaml_dump(template))
PY
}

# env_vars TABLE DDB_PORT TOKEN_KEYS: the --env-vars file, the local values of what the template
# gives every function (the table, DynamoDB Local, the token keys make dev uses; the notifier
# sends to make dev's MailDev, with no secret to fetch). SAM 1.170 leaves
# the containers on podman's default bridge even with --docker-network host (it only connects them
# to networks other than host), so 127.0.0.1 in a container is the container's own: DynamoDB Local
# (listening on all of this machine's interfaces) is reached at host.containers.internal, podman's
# name for this machine's end of the bridge. The traffic never leaves the machine.
env_vars() {
    local file=$LOCAL/env.json
    TABLE=$1 DDB_PORT=$2 KEYS=$3 python3 -c 'import json, os; print(json.dumps({"Parameters": {
        "TABLE_NAME": os.environ["TABLE"], "TOKEN_KEYS": os.environ["KEYS"],
        "AWS_ENDPOINT_URL_DYNAMODB": "http://host.containers.internal:" + os.environ["DDB_PORT"],
        "SMTP_HOST": "host.containers.internal", "SMTP_PORT": "1025", "SMTP_SECRET_ARN": ""}}))' >"$file"
    echo "$file"
}

# Starts podman's Docker-compatible API on a socket of ours and points SAM at it; the service
# is stopped when this script exits (Ctrl-C included). One socket per run, so that make sam-local
# and the SAM client tests of make test can run side by side.
podman_service() {
    socket=$PODMAN_DIR/podman-$$.sock
    rm -f "$socket"
    # In a session of its own, so that Ctrl-C reaches sam but not the engine sam still needs to
    # stop its containers; the EXIT trap stops it after sam.
    setsid podman system service --time=0 "unix://$socket" >"$PODMAN_DIR/service-$$.log" 2>&1 &
    podman_pid=$!
    trap 'kill "$podman_pid" 2>/dev/null || true; wait "$podman_pid" 2>/dev/null || true; rm -f "$socket"' EXIT
    for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done
    export DOCKER_HOST=unix://$socket
}

# The AWS settings of the local tools: SAM hands the credentials and region to the containers,
# where the functions' SDK accepts any key for DynamoDB Local.
export AWS_ACCESS_KEY_ID=dummy AWS_SECRET_ACCESS_KEY=dummy AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
# The template's parameter for local runs: this host's architecture (the deployment keeps the
# default, arm64).
LOCAL_PARAMETERS="Architecture=x86_64"

case "${1:-}" in
setup) setup ;;
template) template ;;
start-api)
    port=${2:?port} env_file=$(env_vars "${3:?table}" "${4:?DynamoDB port}" "${5:?token keys}")
    podman_service
    # --docker-network host is what SAM is meant to be given here; it leaves the containers on the
    # bridge (see env_vars), where they reach DynamoDB Local at host.containers.internal.
    # Ctrl-C (or a TERM, as the client tests send) is passed to sam as the SIGINT it shuts down
    # on, stopping its containers through the podman service (in a session of its own); then
    # the EXIT trap stops the service. sam is started with SIGINT at its default: a background
    # job of a script, or anything started by a parent that ignores SIGINT, would ignore it too,
    # and a TERM would stop sam without stopping its containers.
    python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
        "$SAM" local start-api --template "$LOCAL/template.yaml" --env-vars "$env_file" \
        --parameter-overrides "$LOCAL_PARAMETERS" --skip-pull-image --docker-network host --warm-containers LAZY \
        --host 127.0.0.1 --port "$port" &
    sam_pid=$!
    trap 'kill -INT "$sam_pid" 2>/dev/null || true' INT TERM
    while kill -0 "$sam_pid" 2>/dev/null; do wait "$sam_pid" || true; done
    ;;
invoke)
    function=${2:?function} event=${3:?event}
    env_file=$(env_vars "${4:?table}" "${5:?DynamoDB port}" "${6:?token keys}")
    podman_service
    "$SAM" local invoke "$function" --template "$LOCAL/template.yaml" --env-vars "$env_file" \
        --parameter-overrides "$LOCAL_PARAMETERS" --event "$event" --skip-pull-image --docker-network host
    ;;
*)
    sed -n '2,10p' "$0" >&2
    exit 2
    ;;
esac
