#!/usr/bin/env bash
# The test command of the README and of CI: set up what is missing, then run every test.
# Privileged end-to-end tests run here as root; none skips itself under CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
npm run --silent lint:types   # type-checks src, tests and benchmarks together
status=0
npx tap "$@" || status=$?
if [ "$status" != 0 ]; then
  echo "# tap exited with $status; what failed:"
  ./scripts/test-failures.sh
fi
exit "$status"
