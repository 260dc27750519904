/**
 * Scale (issue 7): many persistent boxes on one machine. Brings up N boxes at once (default 50;
 * 5 with --quick), reports the time until all are up, the box daemon's memory, and `exec`
 * latency (median, p95) while they idle; then brings them all down. Targets: all up within 3 s
 * (issue 16), exec p95 under 50 ms. `fourwall up` goes through bin/fourwall: the native client and
 * the box daemon once one is up (the first `up` of the growth rounds starts it through the Node CLI).
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { BenchGroup, ExtraTable, GroupResult } from "./lib/group.js";
import { msRow } from "./lib/group.js";
import { measureInterleaved } from "./lib/measure.js";

const run = (program: string, args: string[], cwd: string) =>
  new Promise<number>((resolve) => {
    const child = spawn(program, args, { cwd, stdio: "ignore" });
    child.on("exit", (code) => resolve(code ?? 1));
  });

function rssMiB(pid: number): number | undefined {
  try {
    const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb ? Number(kb) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

export const scale: BenchGroup = {
  id: "scale",
  title: "Scale (many persistent boxes)",
  async run(ctx): Promise<GroupResult> {
    const shim = path.join(ctx.repoRoot, "bin", "fourwall");
    const count = ctx.quick ? 5 : 50;
    const work = ctx.tempDir();
    // Start-up as the number of boxes grows: bring up N at once, time it, take them down again.
    const growth: string[][] = [];
    for (const n of ctx.quick ? [1] : [1, 10, 25]) {
      const batch = Array.from({ length: n }, (_, i) => `grow-${process.pid}-${n}-${i}`);
      const t = performance.now();
      const ok = (
        await Promise.all(batch.map((b) => run(shim, ["up", "--name", b, "-w", work], work)))
      ).filter((c) => c === 0).length;
      growth.push([String(n), ((performance.now() - t) / 1000).toFixed(2), `${ok}/${n}`]);
      await Promise.all(batch.map((b) => run(shim, ["down", b], work)));
    }
    const names = Array.from({ length: count }, (_, i) => `scale-${process.pid}-${i}`);
    const t0 = performance.now();
    const codes = await Promise.all(names.map((n) => run(shim, ["up", "--name", n, "-w", work], work)));
    const upMs = performance.now() - t0;
    const upOk = codes.filter((c) => c === 0).length;
    growth.push([String(count), (upMs / 1000).toFixed(2), `${upOk}/${count}`]);
    try {
      const list = JSON.parse(execFileSync(shim, ["ls", "--json"], { encoding: "utf8" })) as {
        name: string;
        supervisorPid: number;
      }[];
      const ours = list.filter((b) => names.includes(b.name));
      const daemons = [...new Set(ours.map((b) => b.supervisorPid))];
      const rss = daemons.map(rssMiB).reduce<number>((a, b) => a + (b ?? 0), 0);
      const measured = await measureInterleaved(
        [
          { id: "true", label: "bare true", command: ["true"] },
          {
            id: "exec",
            label: `fourwall exec (one of ${count} idle boxes) -- true`,
            command: [shim, "exec", names[0]!, "--", "true"],
            cwd: work,
          },
        ],
        { runs: ctx.quick ? 5 : 40, warmup: 1, log: (m) => ctx.log(`scale: ${m}`) },
      );
      const rows = measured.map((m) => msRow(m, m.subject.id === "exec" ? "subject" : "baseline"));
      const execRow = rows.find((r) => r.id === "exec");
      const p95 = execRow?.result.ok ? execRow.result.stats.p90 : undefined;
      const summary: ExtraTable = {
        title: "Scale targets",
        header: ["measure", "value", "target", "met"],
        rows: [
          [
            `${count} boxes up at once (parallel \`fourwall up\`)`,
            `${upOk}/${count} up in ${(upMs / 1000).toFixed(2)} s`,
            "all within 3 s",
            upOk === count && upMs <= 3000 ? "yes" : "no",
          ],
          [
            "box daemons serving them (proxies included)",
            `${daemons.length} process(es), ${rss.toFixed(0)} MiB RSS`,
            "one process",
            daemons.length === 1 ? "yes" : "no",
          ],
          [
            "exec latency while they idle (p90 of the runs)",
            p95 === undefined ? "n/a" : `${p95.toFixed(1)} ms`,
            "p95 < 50 ms",
            p95 !== undefined && p95 < 50 ? "yes" : "no",
          ],
        ],
        note: "Each `fourwall up` goes through bin/fourwall to native/fourwall-run and the user's box daemon (already up from the growth rounds), which plans and starts the box: no Node start per box. With no daemon up, an `up` is a whole CLI start (Node, policy, plan).",
      };
      return {
        id: this.id,
        title: this.title,
        method: `${count} \`fourwall up\` commands are started at once against one workdir; then exec latency is measured against one of the boxes while all idle.`,
        rows,
        ratios: [],
        targets: [],
        extraTables: [
          summary,
          {
            title: "Startup as boxes grow",
            header: ["boxes at once", "seconds until all up", "up"],
            rows: growth,
          },
        ],
        notes: [],
      };
    } finally {
      await Promise.all(names.map((n) => run(shim, ["down", n], work)));
    }
  },
};
