import { spawn } from "node:child_process";
import pc from "picocolors";
import { AuditLog } from "../audit/log.js";
import { EXIT_BOX_FAILED, WallError } from "../core/errors.js";
import { planFromOptions, type RunOptions } from "../plan/from-options.js";
import type { BoxPlan } from "../plan/plan.js";
import { daemonTakesOptions } from "../plan/run-flags.js";

export type { RunOptions } from "../plan/from-options.js";

import { NO_DAEMON_VAR } from "../box/run-request.js";
import { superviseBox } from "../box/supervisor.js";
import { PolicyError } from "../policy/errors.js";
import { runtimeFor } from "../runtimes/index.js";

const fail = (message: string) => {
  process.stderr.write(`${pc.red(message)}\n`);
  return EXIT_BOX_FAILED;
};

export function openAudit(file: string | undefined): AuditLog {
  try {
    return new AuditLog(file);
  } catch (error) {
    throw new WallError(
      "policy",
      `cannot open the audit log ${file}: ${(error as Error).message}`,
      "pass a writable --audit path",
    );
  }
}

/** PolicyError/WallError → the one clear message and exit 125; anything else is a bug: rethrown. */
export function failClosed(error: unknown): number {
  if (error instanceof PolicyError)
    return fail(`${error.message}\nfourwall: the policy is not valid: nothing was run`);
  if (error instanceof WallError) return fail(error.describe());
  throw error;
}

/**
 * native/fourwall-run.c found no box daemon: start one in the background for the next `run` (this
 * one goes on without it). Its environment is this one's: it serves only callers whose own
 * variables match (box/run-request.ts).
 */
function startDaemonForNextRun(o: RunOptions): void {
  if (process.env[NO_DAEMON_VAR] === undefined) return;
  delete process.env[NO_DAEMON_VAR];
  // only for the runs the daemon takes (the one flag table: plan/run-flags.ts)
  if (!daemonTakesOptions(o)) return;
  try {
    spawn(process.execPath, [process.argv[1]!, "box-daemon", "--for-run"], {
      detached: true,
      stdio: "ignore",
      cwd: "/",
    }).unref();
  } catch {
    // no daemon: the next run takes this path again
  }
}

/** `fourwall run`: the command's own exit status, or 125 when the box could not be built. */
export async function runCommand(command: string[], options: RunOptions): Promise<number> {
  let audit: AuditLog | undefined;
  startDaemonForNextRun(options);
  try {
    const { plan, source } = await planFromOptions(command, options);
    if (options.dryRun) {
      const shown = { ...plan, seccomp: `${plan.seccomp.length / 8} BPF instructions`, policySource: source };
      process.stdout.write(options.json ? `${JSON.stringify(shown, null, 2)}\n` : describePlan(plan, source));
      return 0;
    }
    if (options.verbose) process.stderr.write(describePlan(plan, source));
    audit = openAudit(options.audit);
    return await superviseBox(plan, runtimeFor(plan.runtime, { image: options.image }), {
      audit,
      gate: { approver: options.approver, inbox: options.inbox },
      strictGate: options.strictGate === true,
    });
  } catch (error) {
    return failClosed(error);
  } finally {
    audit?.close();
  }
}

function describePlan(plan: BoxPlan, source: string): string {
  const fs = plan.filesystem;
  const hidden = fs.mounts.filter(
    (m) => m.type !== "bind" && m.type !== "symlink" && "why" in m && m.why === "secret hidden",
  );
  return [
    `${pc.bold("fourwall")} box ${plan.id} · runtime ${plan.runtime} · policy ${source}`,
    `  isolation  ${plan.identity.mode === "root" ? `root mode: box runs as uid ${plan.identity.uid}` : `uid ${plan.identity.uid}`}, no capabilities, seccomp (${plan.seccomp.length / 8} BPF instructions), limits ${plan.rlimits.map((r) => `${r.name}=${r.value}`).join(" ")}`,
    `  filesystem writable: ${fs.writable.join(", ")}; ${hidden.length} secrets covered; ${fs.placeholders.length} placeholders; ${fs.mounts.length} mounts`,
    `  egress     no network interface but loopback`,
    ...fs.notes.map((n) => `  note       ${n}`),
    "",
  ].join("\n");
}
