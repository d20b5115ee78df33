#!/usr/bin/env bash
# A/B against a previous release: the CPU row of the embedding benchmark and the hook benchmark,
# alternating the two versions round by round so a change in machine load hits both alike.
#
#   bash bench/ab_previous_release.sh OLD_CHECKOUT CLICK_REPO OUT_DIR [ROUNDS]
#
# OLD_CHECKOUT: a checkout of the previous release (its own bench/ scripts are used for it).
# The installed `codesearch` console script calls `codesearch.cli.entry`, which releases before
# the architecture change lack: the old checkout is copied and given one (it calls main), so the
# git hooks the old bench installs run the old code. Figures: docs/embedding.md, docs/hooks.md
# (taken 2026-12-02 with the two halves as separate loops of 3 rounds each, embedding first).
set -euo pipefail
old_src=$(cd "$1" && pwd); click=$2; out=$(mkdir -p "$3" && cd "$3" && pwd); rounds=${4:-3}
new_src=$(cd "$(dirname "$0")/.." && pwd)
old=$(mktemp -d)/old
cp -r "$old_src" "$old" && rm -rf "$old/.git"
grep -q "^def entry" "$old/codesearch/cli.py" 2>/dev/null ||
    printf '\n\ndef entry():  # A/B shim\n    main(prog_name="codesearch")\n' >> "$old/codesearch/cli.py"
work=$(mktemp -d)
cd "$work"
for i in $(seq "$rounds"); do
  for v in old new; do
    if [ $v = old ]; then src=$old; pp=$old; else src=$new_src; pp=${PYTHONPATH:-}; fi
    env PYTHONPATH="$pp" python3 "$src/bench/embed_throughput.py" --model e5-small --device cpu \
        --inputs "repo:$click" --units 150 --max-tokens 192 --strategies cpu:bf16/t2:4096,cpu:fp32/t1:4096 \
        --rounds 2 --threads 1 --out "$out/embed-$v-$i.json" > "$out/embed-$v-$i.log" 2>&1
    env PYTHONPATH="$pp" python3 "$src/bench/hook_commit.py" --functions 5000 --runs 5 \
        --workdir "$work/hook-$v" --json "$out/hook-$v-$i.json" > "$out/hook-$v-$i.log" 2>&1
    echo "round $i $v done $(date +%T)"
  done
done
