# The two commands are `make dev` and `make test`; see README.md.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

DEV_DDB_PORT := 8000
DEV_ADDR := 127.0.0.1:3000
DEV_TABLE := rbac-dev
SAM_PORT := 3001
LOCAL_AWS := AWS_ACCESS_KEY_ID=dummy AWS_SECRET_ACCESS_KEY=dummy AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
DEV_ENV := $(LOCAL_AWS) TABLE_NAME=$(DEV_TABLE) AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$(DEV_DDB_PORT) TOKEN_KEYS_FILE=.dev/token-keys
# The notifier's SMTP server locally: MailDev, whose web page shows every mail.
DEV_SMTP_PORT := 1025
DEV_MAIL_PORT := 1080
DEV_NOTIFY_ENV := SMTP_HOST=127.0.0.1 SMTP_PORT=$(DEV_SMTP_PORT)
SAM := .tools/venv/bin/sam
FUNCTION_PACKAGES := $(addsuffix -function,$(notdir $(wildcard functions/*)))

.PHONY: help dev sam-prepare sam-local sam-invoke test setup lint lint-template test-rust test-client test-client-sam test-contract package run-scheduled bench stop clean

help:
	@echo "make dev    serve the API at http://$(DEV_ADDR) over DynamoDB Local (token in .dev/admin.token);"
	@echo "            the mail it sends is at http://127.0.0.1:$(DEV_MAIL_PORT) (MailDev)"
	@echo "make sam-local   the same API at http://127.0.0.1:$(SAM_PORT), served by AWS's sam local (podman containers)"
	@echo "make sam-invoke FUNCTION=RolesFunction EVENT=events/roles-list.json   one sam local invoke"
	@echo "make test   everything CI runs: fmt, clippy, unit + integration tests, template lint, client tests,"
	@echo "            contract fuzzing of docs/openapi.yaml"
	@echo "make package   arm64 release zips of every function in target/lambda/ (sizes in bench/package-sizes.md)"
	@echo "make run-scheduled [NOW=2027-01-01T06:00:00Z]   run the daily jobs against make dev's table"
	@echo "make bench  every benchmark (round trips, latency, cold start, scale, throughput); rewrites bench/RESULTS.md"
	@echo "make stop   stop the dev DynamoDB Local and MailDev;  make clean   remove .dev"

setup:
	scripts/setup.sh all

dev:
	@command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup" >&2; exit 1; }
	scripts/setup.sh ddb
	scripts/setup.sh maildev
	cargo build -p admin -p local-api
	@# The key that seals the API tokens of the dev table: made once, kept with the data.
	@test -s .dev/token-keys || { mkdir -p .dev && (umask 077 && target/debug/admin new-token-key dev > .dev/token-keys); }
	scripts/ddb.sh start $(DEV_DDB_PORT) .dev/ddb-data
	env $(DEV_ENV) target/debug/admin bootstrap --create-table --seed-roles --recount --staff-user admin --token-file .dev/admin.token
	MAILDEV_SMTP_PORT=$(DEV_SMTP_PORT) MAILDEV_WEB_PORT=$(DEV_MAIL_PORT) scripts/maildev.sh start
	@echo "API token of the staff user admin is in .dev/admin.token; serving http://$(DEV_ADDR); mail at http://127.0.0.1:$(DEV_MAIL_PORT)" >&2
	exec env $(DEV_ENV) $(DEV_NOTIFY_ENV) target/debug/local-api --addr $(DEV_ADDR) --template template.yaml --streams

# make dev's DynamoDB Local, table and token key, and the debug bootstraps SAM runs.
sam-prepare:
	scripts/setup.sh all
	cargo build -p admin $(addprefix -p ,$(FUNCTION_PACKAGES))
	@test -s .dev/token-keys || { mkdir -p .dev && (umask 077 && target/debug/admin new-token-key dev > .dev/token-keys); }
	scripts/ddb.sh start $(DEV_DDB_PORT) .dev/ddb-data
	env $(DEV_ENV) target/debug/admin bootstrap --create-table --seed-roles --recount --staff-user admin --token-file .dev/admin.token
	scripts/sam-local.sh setup
	scripts/sam-local.sh template

sam-local: sam-prepare
	@echo "API token of the staff user admin is in .dev/admin.token; serving http://127.0.0.1:$(SAM_PORT)" >&2
	scripts/sam-local.sh start-api $(SAM_PORT) $(DEV_TABLE) $(DEV_DDB_PORT) "$$(cat .dev/token-keys)"

sam-invoke: sam-prepare
	scripts/sam-local.sh invoke $(FUNCTION) $(EVENT) $(DEV_TABLE) $(DEV_DDB_PORT) "$$(cat .dev/token-keys)"

test: setup lint test-rust lint-template test-client test-client-sam test-contract

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test-rust:
	env $(LOCAL_AWS) DYNAMODB_LOCAL_DIR="$$(scripts/setup.sh ddb-dir)" cargo test --workspace

lint-template:
	env -i PATH="$$PATH" HOME="$$HOME" SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --template template.yaml

test-client:
	tests/client/run.sh

# The same client suite once more, through sam local's API Gateway emulation and the functions'
# own bootstraps in containers: what is deployed, rather than our in-process runner.
test-client-sam:
	API_RUNNER=sam tests/client/run.sh

test-contract:
	tests/contract/run.sh

package:
	scripts/package.sh

run-scheduled:
	cargo build -q -p review-scheduler-function
	env $(DEV_ENV) target/debug/review-scheduler --task reviews $(if $(NOW),--now $(NOW))
	env $(DEV_ENV) target/debug/review-scheduler --task expiry $(if $(NOW),--now $(NOW))

# The benchmarks run against their own DynamoDB Local and the release builds of the functions
# (the cold starts exec them); they rewrite bench/RESULTS.md.
bench:
	scripts/setup.sh ddb
	cargo build --profile bench-release -p bench $(addprefix -p ,$(FUNCTION_PACKAGES))
	env $(LOCAL_AWS) DYNAMODB_LOCAL_DIR="$$(scripts/setup.sh ddb-dir)" \
		target/bench-release/bench all --bin-dir target/bench-release

stop:
	scripts/ddb.sh stop $(DEV_DDB_PORT)
	MAILDEV_WEB_PORT=$(DEV_MAIL_PORT) scripts/maildev.sh stop

clean: stop
	rm -rf .dev
