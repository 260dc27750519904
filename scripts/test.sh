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
# One docker daemon and tools image for every file that runs docker boxes (test/helpers/suite-docker.ts),
# unless DOCKER_HOST already names one; stopped when the run ends, however it ends.
if [ -z "${DOCKER_HOST:-}" ]; then
  hostfile=test-output/suite-docker-host
  rm -f "$hostfile"
  node --import tsx test/helpers/suite-docker.ts "$hostfile" &
  keeper=$!
  trap 'kill -TERM "$keeper" 2>/dev/null; wait "$keeper" 2>/dev/null || true' EXIT
  for _ in $(seq 1 1200); do [ -e "$hostfile" ] && break; kill -0 "$keeper" 2>/dev/null || break; sleep 0.5; done
  if [ -s "$hostfile" ]; then export DOCKER_HOST="$(cat "$hostfile")"; echo "docker: one daemon for the run at $DOCKER_HOST" >&2; fi
fi
node --import tsx --test --test-concurrency=2 --test-timeout=600000 "${files[@]}"
