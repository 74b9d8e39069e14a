#!/usr/bin/env bash
# Builds every function of template.yaml for Lambda (arm64, release profile) with cargo-lambda,
# zips each bootstrap, prints the sizes and records them in bench/package-sizes.md, which
# bench/RESULTS.md includes. Fails when a zip is over the 4 MB budget.
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET_BYTES=$((4 * 1024 * 1024))

scripts/setup.sh package
# cargo-lambda runs zig as `python3 -m ziglang`, with the first python3 on PATH.
export PATH="$PWD/.tools/venv/bin:$PATH"

mapfile -t binaries < <(.tools/venv/bin/python - <<'PY'
import yaml

class Loader(yaml.SafeLoader):
    pass

# CloudFormation's short tags (!Ref, !Sub, ...) do not matter here.
Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
template = yaml.load(open("template.yaml"), Loader=Loader)
for resource in template["Resources"].values():
    if resource["Type"] == "AWS::Serverless::Function":
        print(resource["Metadata"]["BuildProperties"]["Binary"])
PY
)

started=$(date +%s)
cargo lambda build --release --arm64 --output-format zip "${binaries[@]/#/--bin=}"
elapsed=$(($(date +%s) - started))

status=0
.tools/venv/bin/python - "$elapsed" "$(nproc)" "$(rustc --version | cut -d' ' -f1-2)" \
    "$(cargo lambda --version | cut -d' ' -f2)" "$BUDGET_BYTES" "${binaries[@]}" <<'PY' > bench/package-sizes.md || status=$?
import datetime, os, sys, zipfile

elapsed, cores, rustc, cargo_lambda, budget, *binaries = sys.argv[1:]
print(f"Measured by `make package` on {datetime.date.today()}, {cores} cores, {rustc}, cargo-lambda {cargo_lambda},")
print(f"target aarch64-unknown-linux-gnu; the build took {elapsed} s.")
print()
print("| function | bootstrap (unzipped) | bootstrap.zip | within 4 MiB |")
print("|---|---:|---:|---|")
over = False
for binary in binaries:
    path = f"target/lambda/{binary}/bootstrap.zip"
    zipped = os.path.getsize(path)
    unzipped = sum(entry.file_size for entry in zipfile.ZipFile(path).infolist())
    within = zipped <= int(budget)
    over |= not within
    print(f"| {binary} | {unzipped / 2**20:.2f} MiB | {zipped / 2**20:.2f} MiB | {'yes' if within else '**no**'} |")
sys.exit(1 if over else 0)
PY
cat bench/package-sizes.md
exit "$status"
