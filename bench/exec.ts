/**
 * Exec latency (issues 7 and 16): a command in an already running box (`fourwall exec NAME -- true`),
 * against bare `true` and a whole `fourwall run -- true`, measured in the same run. Target (issue
 * 16): at most 5 ms added over the bare command (median), on the namespaces runtime.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import type { BenchGroup, ExtraTable, GroupResult } from "./lib/group.js";
import { msRow, ratio } from "./lib/group.js";
import { measureInterleaved } from "./lib/measure.js";

const TARGET_ADDED_MS = 5;

export const exec: BenchGroup = {
  id: "exec",
  title: "Exec latency (a command in a running box)",
  async run(ctx): Promise<GroupResult> {
    const shim = path.join(ctx.repoRoot, "bin", "fourwall");
    const work = ctx.tempDir();
    const name = `bench-${process.pid}`;
    execFileSync(shim, ["up", "--name", name, "-w", work], { cwd: work, stdio: "ignore" });
    try {
      const measured = await measureInterleaved(
        [
          { id: "true", label: "bare true", command: ["true"] },
          {
            id: "exec",
            label: "fourwall exec NAME -- true",
            command: [shim, "exec", name, "--", "true"],
            cwd: work,
          },
          {
            id: "run",
            label: "fourwall run -- true (a new box)",
            command: [shim, "run", "-w", work, "--", "true"],
            cwd: work,
          },
        ],
        { runs: Math.max(ctx.runs, 10), warmup: ctx.warmup, log: (m) => ctx.log(`exec: ${m}`) },
      );
      const rows = measured.map((m) =>
        msRow(m, m.subject.id === "exec" ? "subject" : m.subject.id === "true" ? "baseline" : "informative"),
      );
      const median = (id: string) => {
        const row = rows.find((r) => r.id === id);
        return row?.result.ok ? row.result.stats.median : undefined;
      };
      const added =
        median("exec") !== undefined && median("true") !== undefined
          ? median("exec")! - median("true")!
          : undefined;
      const verdict: ExtraTable = {
        title: "Exec target",
        header: ["target", "measured", "met"],
        rows: [
          [
            `added over bare true ≤ ${TARGET_ADDED_MS} ms (median)`,
            added === undefined ? "n/a" : `${added.toFixed(1)} ms`,
            added === undefined ? "unknown" : added <= TARGET_ADDED_MS ? "yes" : "no",
          ],
        ],
      };
      return {
        id: this.id,
        title: this.title,
        method:
          "One box is brought up with `fourwall up`; each `fourwall exec` goes through bin/fourwall (a POSIX sh shim) straight to native/fourwall-enter, " +
          "which joins the box's namespaces and applies its uid, capabilities, no_new_privs, rlimits and seccomp filter (no Node on this path).",
        rows,
        ratios: [ratio(rows, "exec", "true"), ratio(rows, "run", "exec")],
        targets: [],
        extraTables: [verdict],
        notes: [],
      };
    } finally {
      execFileSync(shim, ["down", name], { stdio: "ignore" });
    }
  },
};
