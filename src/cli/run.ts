import { statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pc from "picocolors";
import { AuditLog } from "../audit/log.js";
import { EXIT_BOX_FAILED, WallError } from "../box/errors.js";
import { type BoxPlan, planBox } from "../box/plan.js";
import { superviseBox } from "../box/supervisor.js";
import { PolicyError } from "../policy/errors.js";
import { loadPolicyCached } from "../policy/cached.js";
import { runtimeFor } from "../runtimes/index.js";
import { realHost } from "../walls/filesystem/host.js";
import { packageRoot } from "../paths.js";

export interface RunOptions {
  workdir?: string;
  policy?: string;
  preset: string[];
  allow: string[];
  resolve: string[];
  runtime?: string;
  audit?: string;
  /** The egress backend: builtin | squid (--proxy). */
  proxy?: string;
  /** Approval gate: --approver CMD, --inbox [PORT]. */
  approver?: string;
  inbox?: true | string;
  dryRun?: true;
  json?: true;
  verbose?: true;
}

const fail = (message: string) => {
  process.stderr.write(`${pc.red(message)}\n`);
  return EXIT_BOX_FAILED;
};

/** Policy + flags → a plan for `command`, as `run` and `up` build it. Throws PolicyError/WallError. */
export async function planFromOptions(
  command: string[],
  options: RunOptions,
  caller: { cwd: string; env: NodeJS.ProcessEnv } = { cwd: process.cwd(), env: process.env },
): Promise<{ plan: BoxPlan; source: string }> {
  const cwd = caller.cwd;
  const workdir = path.resolve(cwd, options.workdir ?? ".");
  if (!statSync(workdir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new WallError("filesystem", `workdir ${workdir} is not an existing directory`, "create it, or pass -w DIR");
  }
  const flags: Record<string, unknown> = {};
  if (options.runtime) flags.isolation = { runtime: options.runtime };
  if (options.allow.length > 0 || options.resolve.length > 0) flags.egress = { allow: options.allow, resolve: options.resolve };
  if (options.proxy) flags.egress = { ...(flags.egress as object | undefined), proxy: options.proxy };
  const { policy, source, egress } = await loadPolicyCached({ file: options.policy, cwd, flags, presets: options.preset });
  const plan = planBox(policy, {
    command,
    workdir,
    home: caller.env.HOME ?? os.homedir(),
    hostUid: process.getuid!(),
    hostGid: process.getgid!(),
    hostEnv: caller.env,
    host: realHost,
    egress,
    fourwallRoot: packageRoot(),
    fourwall: [process.execPath, path.join(packageRoot(), "bin", "fourwall.js")],
  });
  return { plan, source };
}

export function openAudit(file: string | undefined): AuditLog {
  try {
    return new AuditLog(file);
  } catch (error) {
    throw new WallError("policy", `cannot open the audit log ${file}: ${(error as Error).message}`, "pass a writable --audit path");
  }
}

/** PolicyError/WallError → the one clear message and exit 125; anything else is a bug: rethrown. */
export function failClosed(error: unknown): number {
  if (error instanceof PolicyError) return fail(`${error.message}\nfourwall: the policy is not valid: nothing was run`);
  if (error instanceof WallError) return fail(error.describe());
  throw error;
}

/** `fourwall run`: the command's own exit status, or 125 when the box could not be built. */
export async function runCommand(command: string[], options: RunOptions): Promise<number> {
  let audit: AuditLog | undefined;
  try {
    const { plan, source } = await planFromOptions(command, options);
    if (options.dryRun) {
      const shown = { ...plan, seccomp: `${plan.seccomp.length / 8} BPF instructions`, policySource: source };
      process.stdout.write(options.json ? `${JSON.stringify(shown, null, 2)}\n` : describePlan(plan, source));
      return 0;
    }
    if (options.verbose) process.stderr.write(describePlan(plan, source));
    audit = openAudit(options.audit);
    return await superviseBox(plan, runtimeFor(plan.runtime), { audit, gate: { approver: options.approver, inbox: options.inbox } });
  } catch (error) {
    return failClosed(error);
  } finally {
    audit?.close();
  }
}

function describePlan(plan: BoxPlan, source: string): string {
  const fs = plan.filesystem;
  const hidden = fs.mounts.filter((m) => m.type !== "bind" && m.type !== "symlink" && "why" in m && m.why === "secret hidden");
  return [
    `${pc.bold("fourwall")} box ${plan.id} · runtime ${plan.runtime} · policy ${source}`,
    `  isolation  ${plan.identity.mode === "root" ? `root mode: box runs as uid ${plan.identity.uid}` : `uid ${plan.identity.uid}`}, no capabilities, seccomp (${plan.seccomp.length / 8} BPF instructions), limits ${plan.rlimits.map((r) => `${r.name}=${r.value}`).join(" ")}`,
    `  filesystem writable: ${fs.writable.join(", ")}; ${hidden.length} secrets covered; ${fs.placeholders.length} placeholders; ${fs.mounts.length} mounts`,
    `  egress     no network interface but loopback`,
    ...fs.notes.map((n) => `  note       ${n}`),
    "",
  ].join("\n");
}
