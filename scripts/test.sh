#!/usr/bin/env bash
# Every test: type-check, then unit and integration tests in one node:test run (one summary).
# Integration tests run the real bwrap, launched both as root and as uid 65534.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "typecheck: tsc --noEmit" >&2
npx tsc --noEmit -p .
mkdir -p test-output
exec node --import tsx --test --test-concurrency=2 --test-timeout=300000 \
  test/unit/*.test.ts test/integration/*.test.ts
