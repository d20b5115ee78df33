#!/usr/bin/env bash
# The package as users install it: build the wheel, install it into a fresh virtual environment,
# and from a folder outside the source tree index and query a fixture repository.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel -q --no-deps "$src" -w "$work/dist"
python3 -m venv "$work/venv"
# torch first: its CPU wheel is local on these machines (elsewhere: --index-url https://download.pytorch.org/whl/cpu)
"$work/venv/bin/python" -m pip install -q torch==2.13.0
"$work/venv/bin/python" -m pip install -q "$work"/dist/codesearch-*.whl
cp -r "$src/fixtures/python" "$work/repo"
cd "$work"
export CODESEARCH_CACHE="$work/cache" CODESEARCH_CONFIG=/dev/null CODESEARCH_DAEMON=0 HF_HUB_OFFLINE=1
"$work/venv/bin/codesearch" index "$work/repo" -q
"$work/venv/bin/codesearch" query --repo "$work/repo" --json -k 1 "读取CSV并排序" > hits.json
"$work/venv/bin/python" - <<'PY'
import json
hits = json.load(open("hits.json"))
assert hits and hits[0]["path"] == "shoptools/csvio.py" and hits[0]["name"] == "read_sorted_rows", hits
import codesearch
assert "/venv/" in codesearch.__file__, codesearch.__file__  # the installed wheel, not the source tree
print(f"wheel smoke test: ok ({hits[0]['path']}:{hits[0]['start_line']} {hits[0]['name']})")
PY
