/**
 * `npm run bench`: runs every benchmark group and writes bench/results.md and bench/results.json
 * (with --quick, a 1-run smoke for CI, to bench/out/ so the committed results stay untouched).
 *
 *   node --import tsx bench/run.ts [--runs N] [--warmup N] [--quick] [--only GROUP,...]
 *
 * To add a group: write bench/<name>.ts exporting a BenchGroup (see bench/lib/group.ts) and list
 * it in GROUPS below.
 */
import { execFileSync } from "node:child_process";
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { writeOutputFile } from "../src/core/output-file.js";
import { caches } from "./caches.js";
import { coldstart } from "./coldstart.js";
import { exec } from "./exec.js";
import type { BenchContext, BenchGroup, GroupResult } from "./lib/group.js";
import { stopRunning } from "./lib/measure.js";
import { renderPlots } from "./lib/plot.js";
import { type BenchReport, type MachineInfo, renderJson, renderMarkdown } from "./lib/report.js";
import { prove } from "./prove.js";
import { proxy } from "./proxy.js";
import { runtimes } from "./runtimes.js";
import { scale } from "./scale.js";

const GROUPS: BenchGroup[] = [coldstart, runtimes, exec, scale, prove, proxy, caches];

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const USAGE = `usage: node --import tsx bench/run.ts [--runs N] [--warmup N] [--quick] [--only GROUP,...]
  --runs N     measured runs per subject (default 10; 1 with --quick)
  --warmup N   discarded warm-up rounds first (default 1)
  --quick      CI smoke: 1 run each, results to bench/out/ instead of bench/
  --only G,..  only these groups (${GROUPS.map((g) => g.id).join(", ")}); results to bench/out/ (a partial
               report never replaces the committed one)`;

function positiveInt(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(
      `bench: --${name} must be an integer >= ${min}, not ${JSON.stringify(value)}\n${USAGE}\n`,
    );
    process.exit(2);
  }
  return n;
}

/** Output of a version command, or what went wrong: the header must never be blank or invented. */
function versionOf(program: string, args: string[]): string {
  try {
    return execFileSync(program, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  } catch (error) {
    return `unavailable (${(error as Error).message.split("\n")[0]})`;
  }
}

function fourwallVersion(): string {
  const { version } = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as {
    version: string;
  };
  const commit = versionOf("git", ["-C", repoRoot, "rev-parse", "--short", "HEAD"]);
  // --no-optional-locks: others work in this checkout; a status must not take the index lock.
  const dirty = versionOf("git", [
    "-C",
    repoRoot,
    "--no-optional-locks",
    "status",
    "--porcelain",
    "--untracked-files=no",
  ]);
  return `${version} at ${commit}${dirty ? " (with uncommitted changes)" : ""}`;
}

function srtVersion(): string {
  const pkg = path.join(repoRoot, "node_modules", "@anthropic-ai", "sandbox-runtime", "package.json");
  if (!existsSync(pkg)) return "not installed";
  return (JSON.parse(readFileSync(pkg, "utf8")) as { version: string }).version;
}

function machineInfo(loadStart: number): MachineInfo {
  return {
    kernel: versionOf("uname", ["-r"]),
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model.trim() ?? "unknown",
    node: process.version,
    bwrap: versionOf("bwrap", ["--version"]),
    srt: srtVersion(),
    fourwall: fourwallVersion(),
    loadStart,
    loadEnd: os.loadavg()[0]!,
  };
}

/**
 * bin/fourwall.js silently falls back to tsx when dist/ is missing, which would measure the
 * transpiler, not fourwall: refuse that, and warn when the bundle is older than the sources.
 */
function checkBundle(): string[] {
  const bundle = path.join(repoRoot, "dist", "fourwall.js");
  if (!existsSync(bundle)) {
    process.stderr.write(
      "bench: dist/fourwall.js is missing; run `bash scripts/setup.sh` (npm run bench does) first\n",
    );
    process.exit(1);
  }
  const built = statSync(bundle).mtimeMs;
  const src = path.join(repoRoot, "src");
  const newer = (readdirSync(src, { recursive: true }) as string[]).filter(
    (f) => f.endsWith(".ts") && statSync(path.join(src, f)).mtimeMs > built,
  );
  return newer.length > 0
    ? [
        `dist/ is older than ${newer.length} source file(s) (e.g. src/${newer[0]}): these numbers are for the last build.`,
      ]
    : [];
}

/**
 * `npm run lint` runs biome over all of bench/, generated files included, and biome has opinions
 * on both (it pads markdown tables, puts short JSON arrays on one line): let biome lay the files
 * out, so a bench run never breaks lint. Best effort: unformatted, both are still valid.
 */
function formatLikeTheRepo(files: string[]): void {
  const biome = path.join(repoRoot, "node_modules", ".bin", "biome");
  if (!existsSync(biome)) return;
  try {
    execFileSync(biome, ["format", "--write", ...files], { cwd: repoRoot, stdio: "ignore" });
  } catch {
    process.stderr.write("bench: biome could not format the results (npm run lint may flag them)\n");
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: "string" },
      warmup: { type: "string" },
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const quick = values.quick === true;
  const runs = positiveInt("runs", values.runs, quick ? 1 : 10, 1);
  const warmup = positiveInt("warmup", values.warmup, 1, 0);
  const only = values.only?.split(",").filter(Boolean);
  const unknown = only?.find((id) => !GROUPS.some((g) => g.id === id));
  if (unknown !== undefined) {
    process.stderr.write(`bench: no group ${JSON.stringify(unknown)}\n${USAGE}\n`);
    process.exit(2);
  }
  const outDir = path.join(repoRoot, "bench", quick || only ? "out" : "");
  const warnings = checkBundle();
  const loadStart = os.loadavg()[0]!;

  // Temp dirs live outside fourwall's own /tmp/fourwall-* namespace so leak checks that other
  // tests run at the same time never mistake ours for theirs.
  const temps: string[] = [];
  const cleanup = () => {
    for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    stopRunning();
    cleanup();
    process.kill(process.pid, signal);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const ctx: BenchContext = {
    runs,
    warmup,
    quick,
    repoRoot,
    isRoot: process.getuid?.() === 0,
    tempDir(owner) {
      const dir = mkdtempSync(path.join(os.tmpdir(), "fwbench-"));
      temps.push(dir);
      if (owner) chownSync(dir, owner.uid, owner.gid);
      return dir;
    },
    log: (message) => process.stderr.write(`bench: ${message}\n`),
  };

  const groups: GroupResult[] = [];
  try {
    for (const group of GROUPS.filter((g) => !only || only.includes(g.id))) {
      ctx.log(`${group.title}: ${runs} run(s) each after ${warmup} warm-up round(s)`);
      groups.push(await group.run(ctx));
    }
  } finally {
    cleanup();
  }

  const report: BenchReport = {
    generatedAt: new Date().toISOString(),
    mode: quick ? "quick" : "full",
    runs,
    warmup,
    machine: machineInfo(loadStart),
    groups,
    warnings,
  };
  mkdirSync(outDir, { recursive: true });
  const markdown = path.join(outDir, "results.md");
  const json = path.join(outDir, "results.json");
  writeOutputFile(markdown, renderMarkdown(report));
  writeOutputFile(json, renderJson(report));
  const plots = renderPlots(groups);
  for (const plot of plots) writeOutputFile(path.join(outDir, plot.file), plot.svg);
  formatLikeTheRepo([markdown, json]);
  // Printed after formatting: biome aligns the table columns, which reads better in a terminal too.
  process.stdout.write(readFileSync(markdown, "utf8"));
  ctx.log(
    `wrote ${path.relative(repoRoot, outDir) || "."}/results.md, results.json and ${plots.length} plot(s)`,
  );
}

await main();
