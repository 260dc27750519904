/** JUnit XML for CI: one test suite per wall, one test case per probe; HOLE and FAIL are failures. */
import { PROVE_WALLS, type ProbeResult, type ProveReport } from "../types.js";

const escapeXml = (s: string) =>
  s.replace(
    /[<>&"']/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!,
  );
/** XML 1.0 cannot carry control characters other than tab and newlines at all, escaped or not. */
const isForbidden = (code: number) => code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d;
const clean = (s: string) =>
  escapeXml(Array.from(s, (ch) => (isForbidden(ch.charCodeAt(0)) ? "?" : ch)).join(""));

function testcase(r: ProbeResult): string {
  const open = `    <testcase classname="fourwall.prove.${r.wall}" name="${clean(`${r.id}: ${r.title}`)}" time="0">`;
  const body =
    r.status === "HOLE" || r.status === "FAIL"
      ? `\n      <failure type="${r.status}" message="${clean(`${r.status}: ${r.observed}`)}">${clean(`expected: ${r.expect}\nobserved: ${r.observed}`)}</failure>\n    `
      : r.status === "SKIP"
        ? `\n      <skipped message="${clean(r.observed)}"/>\n    `
        : `\n      <system-out>${clean(r.observed)}</system-out>\n    `;
  return `${open}${body}</testcase>`;
}

export function renderJUnit(report: ProveReport): string {
  const seconds = (report.durationMs / 1000).toFixed(3);
  const suites = PROVE_WALLS.map((wall) => report.results.filter((r) => r.wall === wall))
    .filter((results) => results.length > 0)
    .map((results) => {
      const failures = results.filter((r) => r.status === "HOLE" || r.status === "FAIL").length;
      const skipped = results.filter((r) => r.status === "SKIP").length;
      return [
        `  <testsuite name="${results[0]!.wall}" tests="${results.length}" failures="${failures}" errors="0" skipped="${skipped}">`,
        ...results.map(testcase),
        "  </testsuite>",
      ].join("\n");
    });
  const t = report.tally;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="fourwall prove" tests="${report.results.length}" failures="${t.hole + t.fail}" errors="0" skipped="${t.skip}" time="${seconds}">`,
    ...suites,
    "</testsuites>",
    "",
  ].join("\n");
}
