/**
 * From the probe program's output to results: parse its JSON lines, judge each probe against its
 * expectation, count. Pure. A probe with no report is FAIL, never PASS: a probe program that
 * crashed or was killed has proven nothing.
 */
import { fail, skip } from "./judges.js";
import type { JudgeContext, ProbeReport, ProbeResult, ProbeSpec, Tally, Verdict } from "./types.js";

export interface ParsedOutput {
  reports: ProbeReport[];
  /** The probe program reached its end (its last line says so). */
  finished: boolean;
  /** Milliseconds the probe program spent on its probes, when it finished. */
  probeMs: number | undefined;
}

/** Reads the probe program's JSON lines, ignoring anything else a wrapper may print. */
export function parseProbeOutput(output: string): ParsedOutput {
  const reports: ProbeReport[] = [];
  let finished = false;
  let probeMs: number | undefined;
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof value !== "object" || value === null) continue;
    const record = value as Record<string, unknown>;
    if (record.done === true) {
      finished = true;
      probeMs = typeof record.ms === "number" ? record.ms : undefined;
    } else if (typeof record.id === "string") {
      if (typeof record.skip === "string") reports.push({ id: record.id, skip: record.skip });
      else if (typeof record.error === "string") reports.push({ id: record.id, error: record.error });
      else if (typeof record.data === "object" && record.data !== null) {
        reports.push({ id: record.id, data: record.data as Record<string, unknown> });
      }
    }
  }
  return { reports, finished, probeMs };
}

function verdictFor(
  spec: ProbeSpec,
  report: ProbeReport | undefined,
  ctx: JudgeContext,
  missing: string,
): Verdict {
  if (spec.skipAlways) return skip(spec.skipAlways);
  if (!report) return fail(missing);
  if ("skip" in report) {
    // the box was given what the probe needs, yet it did not run: the binding never arrived
    if (spec.needs && ctx.target.kind === "box" && ctx.target.bound?.includes(spec.needs))
      return fail(`skipped, though the box was given the ${spec.needs} binding: ${report.skip}`);
    return skip(report.skip);
  }
  if ("error" in report) return fail(`the probe broke: ${report.error}`);
  return spec.judge(report.data, ctx);
}

/**
 * Judges every selected probe. `missing` says why a probe has no report (e.g. "the box could not
 * be built" or "the probe program ended early").
 */
export function evaluate(
  specs: ProbeSpec[],
  reports: ProbeReport[],
  ctx: JudgeContext,
  missing: string,
): ProbeResult[] {
  const byId = new Map(reports.map((r) => [r.id, r]));
  return specs.map((spec) => ({
    id: spec.id,
    wall: spec.wall,
    title: spec.title,
    expect: spec.expect,
    ...verdictFor(spec, byId.get(spec.id), ctx, missing),
  }));
}

export function tally(results: ProbeResult[]): Tally {
  const count = (status: ProbeResult["status"]) => results.filter((r) => r.status === status).length;
  return { pass: count("PASS"), hole: count("HOLE"), fail: count("FAIL"), skip: count("SKIP") };
}

/** The walls held: no hole, no failure, and something was actually proven (all-SKIP proves nothing). */
export const heldUp = (t: Tally) => t.hole === 0 && t.fail === 0 && t.pass > 0;
