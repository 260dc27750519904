/**
 * The human view: one table, wall by wall (PASS / HOLE / FAIL / SKIP with what was observed), and
 * a one-line verdict. Pure: colours are on or off by the caller's choice.
 */
import Table from "cli-table3";
import pc from "picocolors";
import { heldUp } from "../evaluate.js";
import type { ProveReport, Status } from "../types.js";

type Colors = ReturnType<typeof pc.createColors>;

const paint = (c: Colors): Record<Status, (s: string) => string> => ({
  PASS: c.green,
  HOLE: (s) => c.bold(c.red(s)),
  FAIL: c.red,
  SKIP: c.yellow,
});

export function describeTarget(report: ProveReport): string {
  const t = report.target;
  if (t.kind === "against") return `under \`${t.wrapper}\` (not a fourwall box)`;
  const presets = t.presets.length > 0 ? ` + preset ${t.presets.join(", ")}` : "";
  return `a fourwall ${t.runtime} box, policy ${t.policy}${presets}`;
}

export function renderTable(report: ProveReport, options: { colors: boolean; width?: number }): string {
  const c = pc.createColors(options.colors);
  const colour = paint(c);
  const width = Math.max(options.width ?? 120, 100);
  // wall | probe | expected | result | observed; the observed column takes what the terminal has left.
  const fixed = [12, 44, 20, 8];
  const table = new Table({
    head: ["wall", "attack", "expected", "result", "observed"].map((h) => c.bold(h)),
    colWidths: [...fixed, width - fixed.reduce((a, b) => a + b, 0) - 6],
    wordWrap: true,
    style: { head: [], border: [] },
    // No rule between rows: the wall's name, printed once, groups them.
    chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" },
  });
  let wall = "";
  for (const r of report.results) {
    table.push([
      r.wall === wall ? "" : c.bold(r.wall),
      r.title,
      r.expect,
      colour[r.status](r.status),
      r.observed,
    ]);
    wall = r.wall;
  }
  const lines = [
    `${c.bold("fourwall prove")}: ${describeTarget(report)}, launched as ${report.launchedAs}`,
    table.toString(),
  ];
  for (const note of report.notes) lines.push(c.yellow(`note: ${note}`));
  lines.push(verdictLine(report, c));
  return `${lines.join("\n")}\n`;
}

export function verdictLine(report: ProveReport, c: Colors = pc.createColors(false)): string {
  const t = report.tally;
  const seconds = `${(report.durationMs / 1000).toFixed(1)} s`;
  const skipped = t.skip > 0 ? `, ${t.skip} skipped` : "";
  if (report.ok && heldUp(t))
    return c.green(c.bold(`The walls held: ${t.pass} probes passed${skipped}, in ${seconds}.`));
  const named = (status: Status) =>
    report.results
      .filter((r) => r.status === status)
      .map((r) => r.id)
      .join(", ");
  const parts = [
    t.hole > 0 ? `${t.hole} hole(s): ${named("HOLE")}` : "",
    t.fail > 0 ? `${t.fail} failure(s): ${named("FAIL")}` : "",
    t.hole + t.fail === 0 ? "nothing was proven (every probe was skipped)" : "",
  ].filter(Boolean);
  return c.red(c.bold(`${parts.join("; ")} (${t.pass} passed${skipped}, in ${seconds}).`));
}
