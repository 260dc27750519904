/**
 * Package manager caches (issue 15): `npx -y semver` in a box, cold (an empty box cache each run)
 * and warm (the box cache of the same allowlist, filled once before). The registry is the real
 * npm registry (semver: one small package with a bin, no dependencies), reached through the box's
 * proxy with `-a registry.npmjs.org`. Target: warm at most half of cold (median).
 */
import { execFileSync } from "node:child_process";
import { lookup } from "node:dns/promises";
import { chmodSync, readFileSync } from "node:fs";
import path from "node:path";
import { classifyAddress } from "../src/walls/egress/index.js";
import type { BenchGroup, ExtraTable, GroupResult, Target } from "./lib/group.js";
import { msRow, ratio } from "./lib/group.js";
import { measureInterleaved } from "./lib/measure.js";

const PACKAGE = "semver@7.7.2";

export const caches: BenchGroup = {
  id: "caches",
  title: "npx in a box: cold and warm package cache",
  async run(ctx): Promise<GroupResult> {
    const shim = path.join(ctx.repoRoot, "bin", "fourwall");
    const work = ctx.tempDir();
    const warmHome = ctx.tempDir();
    const coldHomes = ctx.tempDir();
    // as root, the box uid must search the way to each HOME, as it can /home
    chmodSync(coldHomes, 0o755);
    // Where this host resolves the registry (a mirror on a reserved address, in some labs): pinned,
    // so the box's proxy connects there too instead of refusing the address.
    const { address } = await lookup("registry.npmjs.org");
    const pin = classifyAddress(address) === "public" ? [] : ["--resolve", `registry.npmjs.org=${address}`];
    const box = [
      shim,
      "run",
      "-w",
      work,
      "-a",
      "registry.npmjs.org",
      ...pin,
      "--",
      "npx",
      "-y",
      PACKAGE,
      "1.2.3",
    ];
    const shown = `fourwall run -a registry.npmjs.org -- npx -y ${PACKAGE} 1.2.3`;
    const env = { ...process.env, HOME: warmHome };
    execFileSync(box[0]!, box.slice(1), { cwd: work, env, stdio: "ignore" }); // fill the warm cache once
    const offline = [...box.slice(0, -3), "--prefer-offline", ...box.slice(-3)];
    const measured = await measureInterleaved(
      [
        {
          id: "cold",
          label: "npx, empty box cache",
          // a fresh, empty HOME per run: the box's cache (in it) starts empty every time
          command: ["sh", "-c", `HOME=$(mktemp -d -p "$0") exec "$@"`, coldHomes, ...box],
          shown: `HOME=<new dir> ${shown}`,
          cwd: work,
        },
        { id: "warm", label: "npx, box cache filled once", command: box, shown, cwd: work, env },
        {
          id: "warm-offline",
          label: "npx --prefer-offline, box cache filled once",
          command: offline,
          shown: shown.replace("npx -y", "npx --prefer-offline -y"),
          cwd: work,
          env,
        },
      ],
      { runs: ctx.runs, warmup: ctx.warmup, log: (m) => ctx.log(`caches: ${m}`) },
    );
    // What each variant fetched, from the audit log of one more run: the deterministic part of the figure.
    const fetched = (argv: string[], home: string): string[] => {
      const audit = path.join(ctx.tempDir(), "audit.jsonl");
      const [program, ...args] = argv;
      execFileSync(program!, [args[0]!, "--audit", audit, ...args.slice(1)], {
        cwd: work,
        env: { ...process.env, HOME: home },
        stdio: "ignore",
      });
      const events = readFileSync(audit, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { event?: string; bytesDown?: number })
        .filter((e) => e.event === "decision");
      const kib = events.reduce((t, e) => t + (e.bytesDown ?? 0), 0) / 1024;
      return [String(events.length), `${kib.toFixed(0)} KiB`];
    };
    const freshHome = ctx.tempDir();
    const requests: ExtraTable = {
      title: "What npx fetched through the proxy (one run each, from --audit)",
      header: ["variant", "connections", "downloaded"],
      rows: [
        ["cold (empty box cache)", ...fetched(box, freshHome)],
        ["warm", ...fetched(box, warmHome)],
        ["warm, --prefer-offline", ...fetched(offline, warmHome)],
      ],
    };
    const rows = measured.map((m) =>
      msRow(m, m.subject.id === "cold" ? "baseline" : m.subject.id === "warm" ? "subject" : "informative"),
    );
    const r = ratio(rows, "warm", "cold");
    const target: Target = {
      description: "npx -y in a box, warm ≤ 0.5 × cold",
      subject: "warm",
      baseline: "cold",
      limit: 0.5,
      comparison: "<=",
      ratio: r.value,
      met: r.value === null ? null : r.value <= 0.5,
    };
    return {
      id: this.id,
      title: this.title,
      method:
        "Each run is a whole `fourwall run` (box start included). Cold: a new, empty HOME, so the box's npm cache " +
        "(~/.cache/fourwall/boxes/KEY) is empty and npx fetches the packument and tarball through the proxy. Warm: the cache of the same allowlist, filled once before.",
      rows,
      ratios: [r, ratio(rows, "warm-offline", "cold")],
      targets: [target],
      extraTables: [requests],
      notes: [
        "Network: the real npm registry from this host; cold runs vary with it.",
        "Warm, npx still revalidates the package's metadata (one request); the tarball and the installed package come from the box cache. With --prefer-offline it makes no request.",
      ],
    };
  },
};
