import { statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { WallError } from "../core/errors.js";
import { packageRoot } from "../core/paths.js";
import { loadPolicyCached } from "../policy/cached.js";
import { realHost } from "../walls/filesystem/index.js";
import { type BoxPlan, planBox } from "./plan.js";

// What `run`, `up` and `prove` share: the caller's flags and policy, turned into one BoxPlan.

export interface RunOptions {
  workdir?: string;
  policy?: string;
  preset: string[];
  allow: string[];
  resolve: string[];
  runtime?: string;
  /** With the docker runtime: the image to run (--image). */
  image?: string;
  audit?: string;
  /** The egress backend: builtin | squid (--proxy). */
  proxy?: string;
  /** Approval gate: --approver CMD, --inbox [PORT]. */
  approver?: string;
  inbox?: true | string;
  /** run --strict-gate: exit 123 when changes were kept, not applied. */
  strictGate?: boolean;
  dryRun?: true;
  json?: true;
  verbose?: true;
}

/** Policy + flags → a plan for `command`, as `run` and `up` build it. Throws PolicyError/WallError. */
export async function planFromOptions(
  command: string[],
  options: RunOptions,
  caller: { cwd: string; env: NodeJS.ProcessEnv } = { cwd: process.cwd(), env: process.env },
): Promise<{ plan: BoxPlan; source: string }> {
  const cwd = caller.cwd;
  const workdir = path.resolve(cwd, options.workdir ?? ".");
  if (!statSync(workdir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new WallError(
      "filesystem",
      `workdir ${workdir} is not an existing directory`,
      "create it, or pass -w DIR",
    );
  }
  const flags: Record<string, unknown> = {};
  if (options.runtime) flags.isolation = { runtime: options.runtime };
  if (options.allow.length > 0 || options.resolve.length > 0)
    flags.egress = { allow: options.allow, resolve: options.resolve };
  if (options.proxy) flags.egress = { ...(flags.egress as object | undefined), proxy: options.proxy };
  const { policy, source, egress } = await loadPolicyCached({
    file: options.policy,
    cwd,
    flags,
    presets: options.preset,
  });
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
