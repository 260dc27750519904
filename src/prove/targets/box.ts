/**
 * The probe program in a fourwall box, built exactly as `fourwall run` builds one: the same
 * planFromOptions (policy file, presets, flags, planBox), superviseBox and runtime. The only
 * additions are the canary rules, passed the way `run -a/--resolve` passes them, and a throwaway
 * HOME and environment in place of the caller's.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { AuditLog } from "../../audit/log.js";
import { runSocket } from "../../box/daemon.js";
import { boxesRoot, writeEnterFiles } from "../../box/persistent.js";
import { superviseBox } from "../../box/supervisor.js";
import { WallError } from "../../core/errors.js";
import { exitStatus } from "../../core/exit.js";
import { enterHelperPath, packageRoot, runClientPath } from "../../core/paths.js";
import { shellQuote } from "../../core/shell.js";
import { planFromOptions, type RunOptions } from "../../plan/from-options.js";
import type { BoxPlan } from "../../plan/plan.js";
import { runFlagsFor } from "../../plan/run-flags.js";
import { PolicyError } from "../../policy/errors.js";
import { runtimeFor } from "../../runtimes/index.js";
import type { Rlimit } from "../../walls/isolation/index.js";
import type { Canaries } from "../canaries/index.js";
import { CREDENTIAL_ENV, CREDENTIAL_HOST } from "../canaries/names.js";
import type { ProveLayout } from "../layout.js";
import { handHomeToBox, proveRuntime } from "./docker.js";

/**
 * Tests only: the box is built without the canary's --secret while prove still counts it as bound,
 * as a path that dropped the flag would (prove.test.ts shows prove then fails). It can only make
 * prove fail, never pass. Not FOURWALL_*: a daemon started with it would differ from its callers.
 */
const UNBOUND_VAR = "FWPROVE_UNSAFE_UNBOUND";

export interface BoxChoice {
  policy?: string | undefined;
  presets: string[];
  runtime?: string | undefined;
  /** Where `run` would look for ./fourwall.yaml: the user's current directory. */
  cwd: string;
  /** Run the probe the way `fourwall exec` runs a command in a persistent box, not as its first process. */
  exec?: boolean;
}

export type BoxOutcome =
  | {
      built: true;
      exitCode: number;
      runtime: string;
      rlimits: Rlimit[];
      policySource: string;
      /** What the box was given for probes to use (the credential canary): those probes must run. */
      bound: string[];
    }
  | { built: false; why: string };

/** The egress rules that make the canaries what they are: listed (allowed, pinned), unlisted (pinned only), guard (allowed only). */
export function canaryRules(canaries: Canaries): { allow: string[]; resolve: string[] } {
  const { origins, names } = canaries;
  if (!origins) return { allow: [], resolve: [] };
  const allow = [`${names.listed}:${origins.httpPort}`];
  if (typeof names.guard === "string") allow.push(`${names.guard}:${origins.loopbackPort}`);
  if (origins.httpsPort !== undefined) allow.push(`${names.listed}:${origins.httpsPort}`);
  // the credential canary's bound host: allowed and pinned, never contacted by the probes
  allow.push(`${CREDENTIAL_HOST}:${origins.httpPort}`);
  return {
    allow,
    resolve: [`${names.listed}=127.0.0.1`, `${names.unlisted}=127.0.0.1`, `${CREDENTIAL_HOST}=127.0.0.1`],
  };
}

/**
 * The exec path (`fourwall up` + `fourwall exec`): the box's first process only waits, and the
 * probe enters it through native/fourwall-enter, exactly as `fourwall exec` does. Returns the
 * probe's exit status; the box is then stopped.
 */
async function probeThroughExec(
  plan: BoxPlan,
  command: string[],
  layout: ProveLayout,
  audit: AuditLog,
  gate: { approver: string; terminal: boolean },
): Promise<number> {
  let probeExit = 125;
  let enterErrors = "";
  const idle: BoxPlan = { ...plan, command: ["sleep", "infinity"] };
  await superviseBox(idle, runtimeFor(plan.runtime), {
    audit,
    quiet: true,
    gate,
    onStarted(box, session, started) {
      const dir = path.join(layout.base, "enter");
      writeEnterFiles(dir, started, box, session); // as started: the box's own uid
      const child = spawn(enterHelperPath(), [dir, "--", ...command], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      child.stderr!.on("data", (d) => (enterErrors += d));
      child.on("exit", (code, signal) => {
        probeExit = exitStatus(code, signal);
        box.signal("SIGTERM");
      });
      child.on("error", () => box.signal("SIGTERM"));
    },
  });
  if (probeExit !== 0 && enterErrors) process.stderr.write(enterErrors);
  return probeExit;
}

/**
 * The daemon path, prove's default for the namespaces runtime: the probe runs as `fourwall run`
 * runs it from bin/fourwall (native/fourwall-run → the box daemon, which plans and supervises the
 * box), with the flags of the very options the other paths plan with (runFlagsFor). The client falls back to the Node CLI by itself when the daemon does
 * not take the run; it gets no controlling terminal (its own session), as prove's gate asks none.
 * Returns undefined when the path is off (FOURWALL_NO_DAEMON) or its client is not built.
 */
async function probeThroughDaemon(
  flags: string[],
  command: string[],
  cwd: string,
  env: Record<string, string>,
) {
  if (process.env.FOURWALL_NO_DAEMON || !existsSync(runClientPath())) return undefined;
  const cli = path.join(packageRoot(), "bin", "fourwall.js");
  if (!existsSync(runSocket())) {
    // none yet: start one (it stays for the next runs, and leaves when idle)
    spawn(process.execPath, [cli, "box-daemon", "--for-run"], {
      detached: true,
      stdio: "ignore",
      cwd: "/",
    }).unref();
    for (let i = 0; i < 100 && !existsSync(runSocket()); i++) await new Promise((r) => setTimeout(r, 50));
  }
  const child = spawn(
    runClientPath(),
    [boxesRoot(), process.execPath, cli, "--", ...flags, "--", ...command],
    {
      cwd,
      env,
      detached: true,
      stdio: ["ignore", "inherit", "pipe"],
    },
  );
  // quiet as the direct path (superviseBox's `quiet`): fourwall's summaries of what the probes were
  // refused are expected; said only when the probe program failed
  let said = "";
  child.stderr!.on("data", (d) => (said += d));
  const status = await new Promise<number>((resolve) => {
    child.once("error", () => resolve(125));
    child.once("close", (code, signal) => resolve(exitStatus(code, signal)));
  });
  if (status !== 0 && said) process.stderr.write(said);
  return status;
}

export async function runProbeInBox(
  choice: BoxChoice,
  layout: ProveLayout,
  canaries: Canaries,
  env: Record<string, string>,
  command: string[],
  onPlanned: (runtime: string, policySource: string) => void,
): Promise<BoxOutcome> {
  const rules = canaryRules(canaries);
  const audit = new AuditLog(undefined);
  // The credential canary, kept outside as `--secret` does; not through exec (a persistent box's
  // hand-off carries no secrets) nor in the microVM (not built there): the canary is then simply
  // not passed in, and the probes say so. Where it is bound, its probes must run (evaluate.ts).
  const bindsCredential = !choice.exec && choice.runtime !== "vm" && canaries.origins !== undefined;
  // The gate's approver: prove's own, which writes down every request and answers no.
  const approver = `sh -c 'cat >> "$1"; echo >> "$1"; exit 1' fourwall-prove-approver ${shellQuote(layout.approverLog)}`;
  // One set of options for every path: planned here (direct, exec) and given as flags (daemon).
  const options: RunOptions = {
    workdir: layout.workdir,
    policy: choice.policy,
    preset: choice.presets,
    allow: rules.allow,
    resolve: rules.resolve,
    secret: bindsCredential && !process.env[UNBOUND_VAR] ? [`${CREDENTIAL_ENV}@${CREDENTIAL_HOST}`] : [],
    runtime: choice.runtime,
    approver,
  };
  try {
    const planned = () => planFromOptions(command, options, { cwd: choice.cwd, env });
    let { plan, source } = await planned();
    if (handHomeToBox(plan, layout)) ({ plan, source } = await planned());
    onPlanned(plan.runtime, source);
    const gate = { approver, terminal: false };
    const flags = runFlagsFor(options);
    const daemon =
      !choice.exec && (choice.runtime ?? "namespaces") === "namespaces" && plan.runtime === "namespaces"
        ? await probeThroughDaemon(flags, command, choice.cwd, env)
        : undefined;
    const exitCode =
      daemon ??
      (choice.exec
        ? await probeThroughExec(plan, command, layout, audit, gate)
        : await superviseBox(plan, proveRuntime(plan), { audit, quiet: true, gate }));
    const bound = bindsCredential ? ["credential"] : [];
    return {
      built: true,
      exitCode,
      runtime: plan.runtime,
      rlimits: plan.rlimits,
      policySource: source,
      bound,
    };
  } catch (error) {
    if (error instanceof PolicyError)
      return { built: false, why: `the policy is not valid: ${error.message}` };
    if (error instanceof WallError) return { built: false, why: error.describe() };
    throw error;
  } finally {
    audit.close();
  }
}
