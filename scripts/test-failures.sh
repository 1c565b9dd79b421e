#!/usr/bin/env bash
# Prints every failed assertion of the last tap run, with its diagnostics, from the
# per-file results tap saves under .tap/test-results. The suite's output is long and a
# CI log often keeps only its tail; this puts what failed at the end where it is read.
set -uo pipefail
cd "$(dirname "$0")/.."
results=.tap/test-results
[ -d "$results" ] || exit 0
found=0
while IFS= read -r -d '' file; do
  grep -q '^ *not ok ' "$file" || continue
  found=1
  echo "=== ${file#"$results"/}"
  # Each failed line and the YAML block that follows it (indented deeper, up to "...").
  awk '
    /^ *not ok / { print; match($0, /^ */); depth = RLENGTH; inblock = 0; want = 1; next }
    want && /^ *---$/ { inblock = 1; print; next }
    inblock { print; if ($0 ~ /^ *\.\.\.$/) { inblock = 0; want = 0 } ; next }
    { want = 0 }
  ' "$file"
done < <(find "$results" -name '*.tap' -print0 | sort -z)
[ "$found" = 1 ] || echo "(no failed assertion in $results)"
