#!/usr/bin/env bash
# Every test: type-check, lint, then unit and integration tests in one node:test run (one summary).
# Integration tests run the real bwrap, launched both as root and as uid 65534.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "typecheck: tsc --noEmit" >&2
npx tsc --noEmit -p .
echo "lint: biome check" >&2
npx biome check src test bench scripts
mkdir -p test-output
mapfile -t files < <(find test/unit test/integration -name '*.test.ts' | sort)
exec node --import tsx --test --test-concurrency=2 --test-timeout=600000 "${files[@]}"
