/**
 * `fourwall prove`'s own attacks, reused by the wall tests: the test writes prove's probe program
 * (src/prove/probe.py) into the workdir with a config naming the fixture's secrets, runs it in the
 * box, and judges its report with prove's own judges (src/prove/catalog.ts). One attack, written
 * once, checked both ways.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { PROBES } from "../../src/prove/catalog.js";
import type { JudgeContext, ProbeReport } from "../../src/prove/types.js";
import { type Fixture, type Result, ROOT, SECRET } from "./box.js";

const PROBE_PY = path.join(ROOT, "src", "prove", "probe.py");
/** In the workdir: the one host directory every runtime shows the box at the same path. */
const DIR = ".fourwall-probe";

/** The fixture's secrets, in the shape of prove's config; the token is the planted secret itself. */
function probeConfig(fx: Fixture, ids: string[]) {
  return {
    token: SECRET,
    workdir: fx.workdir,
    home: fx.home,
    probes: ids,
    isolation: {},
    filesystem: {
      writes: {},
      secretFiles: [".ssh/id_ed25519", ".aws/credentials", ".config/gcloud/credentials.db", ".netrc"].map(
        (p) => path.join(fx.home, p),
      ),
      dotenv: path.join(fx.workdir, ".env"),
      plantedEnv: ["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "SSH_AUTH_SOCK"],
    },
  };
}

/** Puts the probe program and its config in the workdir; the box command that runs them. */
export function placeProbe(fx: Fixture, ids: string[]): string {
  const dir = path.join(fx.workdir, DIR);
  mkdirSync(dir, { recursive: true });
  copyFileSync(PROBE_PY, path.join(dir, "probe.py"));
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(probeConfig(fx, ids)));
  return `/usr/bin/python3 ${DIR}/probe.py ${DIR}/config.json`;
}

/** What prove's judges need to know here: the runtime, and the host's own kernel and pid 1. */
function judgeContext(runtime: string): JudgeContext {
  const stat = readFileSync("/proc/1/stat", "utf8");
  return {
    target: { kind: "box", runtime, rlimits: [] },
    root: process.getuid?.() === 0,
    evidence: {
      landed: {},
      workdirWrite: undefined,
      udpReceived: 0,
      outside: undefined,
      hostInit: {
        comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
        start: stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "",
      },
      hostKernel: readFileSync("/proc/version", "utf8").trim().slice(0, 100),
      gate: { name: "", requests: [], precious: undefined, historyChanged: [] },
    },
  };
}

/**
 * prove's verdict on each probe the box ran: undefined when every one is PASS, the HOLE's
 * observation otherwise. A probe that did not report, or one prove could not judge (FAIL, SKIP),
 * is neither: it throws, so neither the whole box nor the broken one can pass on it.
 */
export function proveHole(r: Result, ids: string[], runtime: string): string | undefined {
  const reports = new Map<string, ProbeReport>();
  for (const line of r.stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    const report = JSON.parse(line) as ProbeReport | { done: true };
    if ("id" in report) reports.set(report.id, report);
  }
  const holes: string[] = [];
  for (const id of ids) {
    const report = reports.get(id);
    const spec = PROBES.find((p) => p.id === id);
    if (!spec) throw new Error(`prove has no probe ${id}`);
    if (!report || !("data" in report))
      throw new Error(`probe ${id} gave no report: ${JSON.stringify(report)}\n${r.stdout}\n${r.stderr}`);
    const verdict = spec.judge(report.data, judgeContext(runtime));
    if (verdict.status === "HOLE") holes.push(`${id}: ${verdict.observed}`);
    else if (verdict.status !== "PASS") throw new Error(`${id}: ${verdict.status} ${verdict.observed}`);
  }
  return holes.length > 0 ? holes.join("; ") : undefined;
}
