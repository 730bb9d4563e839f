#!/usr/bin/env bash
# Fail when nbdev-export or nbdev-clean would change a tracked file, or README.md is stale.
# usage: tools/check_sync.sh [BIN_DIR]
set -euo pipefail
bin=${1:-.venv/bin}
"$bin/nbdev-export"
"$bin/nbdev-clean"
if ! git diff --quiet -- . ; then
  echo "FAIL: nbdev-export/nbdev-clean changed tracked files (run them and commit):"
  git --no-pager diff --stat
  exit 1
fi
untracked=$(git ls-files --others --exclude-standard -- animestyle)
if [ -n "$untracked" ]; then
  echo "FAIL: nbdev-export produced files that are not committed: $untracked"; exit 1
fi
"$bin/python" tools/docs.py readme --check
"$bin/python" tools/docs.py sidebar --check
"$bin/python" benchmarks/ablation_table.py --check
echo "sync: notebooks, library and README are consistent"
