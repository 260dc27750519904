/**
 * `fourwall prove`, end to end: a throwaway user and canaries on the host, the probe program in a
 * fourwall box (or under another wrapper), the host's own checks, the verdicts. Everything it made
 * is removed before it returns, and by a reaper if it is killed.
 */
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { packageRoot } from "../core/paths.js";
import { shellQuote } from "../core/shell.js";
import { dropKeptUnder } from "../walls/gate/index.js";
import { type Canaries, startCanaries } from "./canaries/index.js";
import { CREDENTIAL_ENV, credentialSecret, FOURWALL_NAMES } from "./canaries/names.js";
import { outsideNames } from "./canaries/outside.js";
import { hostSocketPath } from "./canaries/sockets.js";
import { selectProbes } from "./catalog.js";
import { probeConfig, writeProbeConfig } from "./config.js";
import { evaluate, heldUp, parseProbeOutput, tally } from "./evaluate.js";
import { gatherEvidence } from "./evidence.js";
import { makeLayout, type ProveLayout, plantFakeUser } from "./layout.js";
import { SRT_PLACEHOLDER, srtNames, srtSettings } from "./peers/srt.js";
import { armReaper } from "./reaper.js";
import { probeCommand, runUnderWrapper } from "./targets/against.js";
import { type BoxChoice, runProbeInBox } from "./targets/box.js";
import { Teardown } from "./teardown.js";
import type { ProveReport, ProveTarget, ProveWall } from "./types.js";

export interface ProveOptions extends BoxChoice {
  only: ProveWall[];
  /** Run under this wrapper instead of a fourwall box. */
  against?: string | undefined;
  progress: (message: string) => void;
}

export interface ProveOutcome {
  report: ProveReport;
  /** 0: the walls held; 1: a hole or a failure (or nothing proven); 125: the box could not be built. */
  exitCode: number;
  /**
   * Set when no box could be built (nothing ran, so there is nothing to judge): why, with the fix.
   * The CLI says this once and exits 125 instead of a table of probes that never ran.
   */
  boxFailed?: string;
}

const PYTHON = "/usr/bin/python3";
/** A plain user's PATH: the caller's own may name directories (e.g. under /root) the box cannot search. */
const PLAIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** A wrapper gets this long before prove gives up on it (the probes themselves take about a second). */
const WRAPPER_TIMEOUT_MS = 60_000;

export const probeSource = () => path.join(packageRoot(), "src", "prove", "probe.py");

/** The environment the box (or wrapper) starts from: a plain user's, plus planted secrets. Not prove's own. */
function startingEnvironment(layout: ProveLayout, canaries: Canaries): Record<string, string> {
  const env: Record<string, string> = {
    PATH: PLAIN_PATH,
    HOME: layout.home,
    LANG: process.env.LANG ?? "C.UTF-8",
    USER: os.userInfo().username,
    LOGNAME: os.userInfo().username,
    ...canaries.plantedEnv,
    // bound by --secret in a fourwall box (targets/box.ts): the box must hold only a sentinel
    [CREDENTIAL_ENV]: credentialSecret(layout.token),
  };
  if (process.env.TERM) env.TERM = process.env.TERM;
  return env;
}

/** What the reaper removes if prove dies without cleaning up: names chosen before anything exists. */
function reaperScript(layout: ProveLayout, root: boolean): string {
  const files = [hostSocketPath(layout.token, root), ...layout.systemFiles].map(shellQuote).join(" ");
  return [
    root ? `ip link del ${shellQuote(outsideNames(layout.token).hostIf)} 2>/dev/null` : "",
    root ? `ip netns del ${shellQuote(outsideNames(layout.token).netns)} 2>/dev/null` : "",
    `rm -rf ${shellQuote(layout.base)}`,
    `rm -f ${files}`,
  ].join("\n");
}

/** `{srt-settings}`, `{workdir}`, `{home}` in an --against wrapper. */
async function expandWrapper(
  wrapper: string,
  options: ProveOptions,
  layout: ProveLayout,
  canaries: Canaries,
): Promise<string> {
  let expanded = wrapper
    .replaceAll("{workdir}", shellQuote(layout.workdir))
    .replaceAll("{home}", shellQuote(layout.home));
  if (expanded.includes(SRT_PLACEHOLDER)) {
    const { loadPolicy } = await import("../policy/load.js");
    const { policy } = loadPolicy({ file: options.policy, cwd: options.cwd, presets: options.presets });
    const file = path.join(layout.base, "srt-settings.json");
    writeFileSync(file, `${JSON.stringify(srtSettings(policy, layout, canaries), null, 2)}\n`);
    expanded = expanded.replaceAll(SRT_PLACEHOLDER, shellQuote(file));
  }
  return expanded;
}

export async function runProve(options: ProveOptions): Promise<ProveOutcome> {
  const started = Date.now();
  const root = process.getuid?.() === 0;
  const token = randomBytes(6).toString("hex");
  const specs = selectProbes(options.only);
  const walls = [...new Set(specs.map((s) => s.wall))];
  const notes: string[] = [];
  const base = mkdtempSync(path.join(os.tmpdir(), `fourwall-prove-${token}-`));
  chmodSync(base, 0o755); // as root, the box's own uid must be able to reach the workdir inside
  const layout = makeLayout(base, token);
  const teardown = new Teardown();
  const reaper = armReaper(reaperScript(layout, root));
  teardown.add("the throwaway home", () => rmSync(base, { recursive: true, force: true }));
  // the gate probes' refused changes are kept like any box's: they are prove's, not the user's
  teardown.add("the probe box's change-sets", () => {
    for (const dir of new Set([base, realpathSync(base)])) dropKeptUnder(dir);
  });
  // A leaky wrapper running as root writes these for real: they go with the run.
  teardown.add("files a leaky wrapper wrote", () => {
    for (const file of layout.systemFiles) rmSync(file, { force: true });
  });

  let target: ProveReport["target"];
  let judgeTarget: ProveTarget;
  let output = "";
  let missing = "the probe program did not report it";
  let exitCode: number | undefined;
  let boxFailed: string | undefined;
  let canaries: Canaries | undefined;
  let outcome: ProveOutcome | undefined;
  try {
    if (!existsSync(PYTHON))
      throw new Error(`${PYTHON} is missing: the probe program needs it (apt-get install python3)`);
    plantFakeUser(layout, probeSource());
    const srt = options.against?.includes(SRT_PLACEHOLDER) === true;
    canaries = await startCanaries({
      token,
      walls,
      root,
      python: PYTHON,
      layout,
      names: srt ? srtNames(FOURWALL_NAMES, readFileSync("/etc/hosts", "utf8")) : FOURWALL_NAMES,
      teardown,
      progress: options.progress,
    });
    notes.push(...canaries.notes);
    const env = startingEnvironment(layout, canaries);
    const probes = specs.filter((s) => !s.skipAlways).length;

    if (options.against !== undefined) {
      target = { kind: "against", wrapper: options.against };
      judgeTarget = target;
      writeProbeConfig(layout, probeConfig(layout, canaries, specs, null));
      const wrapper = await expandWrapper(options.against, options, layout, canaries);
      options.progress(`running ${probes} probes under \`${options.against}\``);
      const ran = await runUnderWrapper(wrapper, probeCommand(PYTHON, layout.probe, layout.config), {
        cwd: layout.workdir,
        env,
        timeoutMs: WRAPPER_TIMEOUT_MS,
        onStarted: (pgid) => reaper.watchGroup(pgid),
      });
      output = ran.stdout;
      const tail = ran.stderr.trim().split("\n").slice(-3).join(" | ");
      const ended = ran.timedOut
        ? `was stopped after ${WRAPPER_TIMEOUT_MS / 1000} s`
        : `exited ${ran.exitCode}`;
      if (!parseProbeOutput(output).finished) notes.push(`the wrapper ${ended}${tail ? `: ${tail}` : ""}`);
      missing = `no report: the wrapper ${ended} (see the note)`;
    } else {
      // the microVM runs emulated here (TCG): TLS handshakes and process starts take seconds
      const timeScale = options.runtime === "vm" ? 5 : 1;
      writeProbeConfig(layout, probeConfig(layout, canaries, specs, layout.results, timeScale));
      target = {
        kind: "box",
        runtime: options.runtime ?? "namespaces",
        policy: options.policy ?? "(default)",
        presets: options.presets,
      };
      const box = await runProbeInBox(
        options,
        layout,
        canaries,
        env,
        [PYTHON, layout.probe, layout.config],
        (runtime, source) => {
          target = { kind: "box", runtime, policy: source, presets: options.presets };
          options.progress(
            `running ${probes} probes in a ${runtime} box${options.exec ? ", through fourwall exec" : ""} (policy ${source})`,
          );
        },
      );
      if (box.built) {
        judgeTarget = { kind: "box", runtime: box.runtime, rlimits: box.rlimits, bound: box.bound };
        output = existsSync(layout.results) ? readFileSync(layout.results, "utf8") : "";
        missing = `no report: the probe program in the box exited ${box.exitCode}`;
        const parsedBox = parseProbeOutput(output);
        if (!parsedBox.finished)
          notes.push(`the probe program in the box exited ${box.exitCode} before its end`);
        // 125 with not one report: the runtime's own "nothing ran" (e.g. docker run refusing), not a probe.
        if (box.exitCode === 125 && parsedBox.reports.length === 0) {
          boxFailed = `the ${box.runtime} box exited 125 before the probe program reported anything: the box could not be built (run \`fourwall run -r ${box.runtime} -- true\` to see why)`;
          exitCode = 125;
        }
      } else {
        judgeTarget = {
          kind: "box",
          runtime: target.kind === "box" ? target.runtime : "namespaces",
          rlimits: [],
        };
        notes.push(box.why);
        missing = "the box could not be built: nothing ran";
        boxFailed = box.why;
        exitCode = 125;
      }
    }
    const parsed = parseProbeOutput(output);
    // No box, nothing ran: there is nothing to judge (not a FAIL row per probe that never started).
    const results =
      boxFailed === undefined
        ? evaluate(
            specs,
            parsed.reports,
            { target: judgeTarget, evidence: gatherEvidence(layout, canaries), root },
            missing,
          )
        : [];
    const counts = tally(results);
    const ok = heldUp(counts);
    outcome = {
      exitCode: exitCode ?? (ok ? 0 : 1),
      ...(boxFailed === undefined ? {} : { boxFailed }),
      report: {
        version: 1,
        runId: token,
        target,
        launchedAs: root ? "root" : `uid ${process.getuid?.()}`,
        startedAt: new Date(started).toISOString(),
        durationMs: Date.now() - started,
        results,
        tally: counts,
        ok: ok && exitCode === undefined,
        notes,
      },
    };
  } finally {
    const leftovers = await teardown.run();
    reaper.release();
    for (const problem of leftovers) options.progress(`could not remove ${problem}`);
  }
  // The whole run, teardown included: what a user waits for.
  outcome.report.durationMs = Date.now() - started;
  return outcome;
}
