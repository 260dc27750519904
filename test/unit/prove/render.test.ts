/** The three views of a prove report: the table (human), JSON (machines), JUnit XML (CI). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { renderJson } from "../../../src/prove/render/json.js";
import { renderJUnit } from "../../../src/prove/render/junit.js";
import { renderTable, verdictLine } from "../../../src/prove/render/table.js";
import type { ProbeResult, ProveReport } from "../../../src/prove/types.js";

const result = (id: string, status: ProbeResult["status"], observed: string): ProbeResult => ({
  id,
  wall: id.split(".")[0] as ProbeResult["wall"],
  title: `attack ${id}`,
  expect: "denied",
  status,
  observed,
});

function report(results: ProbeResult[]): ProveReport {
  const count = (s: string) => results.filter((r) => r.status === s).length;
  const tally = { pass: count("PASS"), hole: count("HOLE"), fail: count("FAIL"), skip: count("SKIP") };
  return {
    version: 1,
    runId: "0123456789ab",
    target: { kind: "box", runtime: "namespaces", policy: "(built-in default)", presets: [] },
    launchedAs: "root",
    startedAt: "2026-11-26T00:00:00.000Z",
    durationMs: 1234,
    results,
    tally,
    ok: tally.hole + tally.fail === 0 && tally.pass > 0,
    notes: [],
  };
}

const held = report([
  result("isolation.seccomp", "PASS", "Seccomp 2 (filter)"),
  result("filesystem.read-secrets", "PASS", "4 of 4: ENOENT"),
  result("gate.delete-asks", "SKIP", "approval gate not built yet"),
]);
const leaky = report([
  result("isolation.seccomp", "HOLE", "Seccomp 0: no filter"),
  result("egress.listed-http", "FAIL", "expected <the canary's> answer & \u0001more"),
  result("gate.delete-asks", "SKIP", "approval gate not built yet"),
]);

describe("prove: rendering", () => {
  it("the table groups by wall, shows each status and observation, and ends with the verdict", () => {
    const text = renderTable(held, { colors: false, width: 140 });
    assert.match(text, /a fourwall namespaces box, policy \(built-in default\), launched as root/);
    assert.equal(
      text.match(/^│ (isolation|filesystem|gate) /gm)?.length,
      3,
      "each wall named once, for its group",
    );
    assert.match(text, /PASS +│ Seccomp 2 \(filter\)/);
    assert.match(text, /SKIP +│ approval gate not built yet/);
    assert.match(text, /The walls held: 2 probes passed, 1 skipped, in 1\.2 s\./);
    assert.equal(text.includes("\u001b["), false, "no colour codes when colours are off");
    assert.equal(renderTable(held, { colors: true }).includes("\u001b["), true);
  });

  it("the verdict names every hole and failure", () => {
    assert.equal(
      verdictLine(leaky),
      "1 hole(s): isolation.seccomp; 1 failure(s): egress.listed-http (0 passed, 1 skipped, in 1.2 s).",
    );
    const skipped = report([result("gate.delete-asks", "SKIP", "approval gate not built yet")]);
    assert.match(verdictLine(skipped), /nothing was proven/);
  });

  it("JSON is the report itself, parseable", () => {
    const parsed = JSON.parse(renderJson(leaky));
    assert.equal(parsed.version, 1);
    assert.equal(parsed.results[0].status, "HOLE");
    assert.deepEqual(parsed.tally, { pass: 0, hole: 1, fail: 1, skip: 1 });
  });

  it("JUnit: a suite per wall, HOLE and FAIL as failures, SKIP as skipped, special characters escaped", () => {
    const xml = renderJUnit(leaky);
    assert.match(
      xml,
      /<testsuites name="fourwall prove" tests="3" failures="2" errors="0" skipped="1" time="1.234">/,
    );
    assert.match(xml, /<testsuite name="isolation" tests="1" failures="1"/);
    assert.match(xml, /<failure type="HOLE" message="HOLE: Seccomp 0: no filter">/);
    assert.match(xml, /&lt;the canary&apos;s&gt; answer &amp; \?more/);
    assert.match(xml, /<skipped message="approval gate not built yet"\/>/);
    // A real XML parser must accept it (python3 is a dependency of prove anyway).
    const parsed = spawnSync(
      "python3",
      ["-c", "import sys, xml.etree.ElementTree as E; E.fromstring(sys.stdin.read()); print('ok')"],
      {
        input: xml,
        encoding: "utf8",
      },
    );
    assert.equal(parsed.stdout.trim(), "ok", parsed.stderr);
  });
});
