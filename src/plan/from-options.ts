import { statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { WallError } from "../core/errors.js";
import { makeOwnedDir } from "../core/owned-dir.js";
import { isUnder, packageRoot } from "../core/paths.js";
import { STATE_DIR_VAR } from "../core/state-dir.js";
import { loadPolicyCached } from "../policy/cached.js";
import { PolicyError } from "../policy/errors.js";
import type { Policy } from "../policy/schema.js";
import { createStatePaths, realHost } from "../walls/filesystem/index.js";
import { cacheEnvironment, cacheKey, cacheRoot } from "./caches.js";
import { checkCommand } from "./command.js";
import { type BoxPlan, planBox } from "./plan.js";

// What `run`, `up` and `prove` share: the caller's flags and policy, turned into one BoxPlan.

export interface RunOptions {
  workdir?: string;
  policy?: string;
  preset: string[];
  allow: string[];
  resolve: string[];
  /** Host variables passed into the box by name (--env NAME: `mcp wrap`, a server's own env). */
  env?: string[];
  /** --ro PATH: host paths shown read-only (filesystem.readOnly). */
  ro?: string[];
  /** --secret VAR@HOST: credentials kept outside the box (egress.credentials shorthand). */
  secret?: string[];
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

/** Variables that hold git hosting tokens: --secret gives them to git too (its config sends the sentinel). */
const GIT_TOKEN = /^(GITHUB_TOKEN|GH_TOKEN|GH_ENTERPRISE_TOKEN|GITLAB_TOKEN|GITEA_TOKEN|GIT_TOKEN)$/;

/** --secret VAR@HOST (repeatable; one VAR may name several hosts) → egress.credentials entries. */
export function secretFlags(values: string[]): Array<Record<string, unknown>> {
  const byVar = new Map<string, string[]>();
  for (const value of values) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)@([^@\s]+)$/.exec(value);
    if (!m)
      throw new PolicyError([
        {
          file: "--secret",
          field: "egress.credentials",
          reason: `"${value}": write VAR@HOST (e.g. GITHUB_TOKEN@github.com)`,
        },
      ]);
    byVar.set(m[1]!, [...(byVar.get(m[1]!) ?? []), m[2]!]);
  }
  return [...byVar].map(([name, hosts]) => ({
    name,
    fromEnv: name,
    hosts,
    ...(GIT_TOKEN.test(name) ? { git: true } : {}),
  }));
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
  // The box must not reach fourwall's own state (its locks, records, gate layers): never in the workdir.
  const stateDir = process.env[STATE_DIR_VAR];
  if (stateDir && (isUnder(path.resolve(stateDir), workdir) || isUnder(workdir, path.resolve(stateDir))))
    throw new WallError(
      "filesystem",
      `${STATE_DIR_VAR}=${stateDir} and the workdir ${workdir} overlap: the box could change fourwall's state`,
      `put ${STATE_DIR_VAR} outside the workdir`,
    );
  const flags: Record<string, unknown> = {};
  if (options.runtime) flags.isolation = { runtime: options.runtime };
  if (options.allow.length > 0 || options.resolve.length > 0)
    flags.egress = { allow: options.allow, resolve: options.resolve };
  if (options.env && options.env.length > 0) flags.env = { pass: options.env };
  if (options.ro && options.ro.length > 0)
    flags.filesystem = { readOnly: options.ro.map((p) => path.resolve(cwd, p)) };
  if (options.proxy) flags.egress = { ...(flags.egress as object | undefined), proxy: options.proxy };
  if (options.secret && options.secret.length > 0)
    flags.egress = { ...(flags.egress as object | undefined), credentials: secretFlags(options.secret) };
  const { policy, source, egress } = await loadPolicyCached({
    file: options.policy,
    cwd,
    flags,
    presets: options.preset,
  });
  // An agent's config and state dirs, made on the host before the box starts, so they persist.
  const home = caller.env.HOME ?? os.homedir();
  if (!options.dryRun) createStatePaths(policy.filesystem, { home, workdir });
  const plan = planBox(policy.filesystem.caches ? withCaches(policy, home, caller.env) : policy, {
    command,
    workdir,
    home,
    hostUid: process.getuid!(),
    hostGid: process.getgid!(),
    hostEnv: caller.env,
    host: realHost,
    egress,
    fourwallRoot: packageRoot(),
    fourwall: [process.execPath, path.join(packageRoot(), "bin", "fourwall.js")],
  });
  // The command as the box's shell will find it (the box's PATH, its view of the host). A docker
  // image or another root has files of its own: the check is for boxes over the host's /.
  if (policy.filesystem.root === "/" && plan.runtime !== "docker")
    checkCommand(plan.command, { filesystem: plan.filesystem, boxPath: plan.env.PATH ?? "", host: realHost });
  return { plan, source };
}

/**
 * The policy plus the box's package manager caches (plan/caches.ts): the directory made (owned by
 * HOME's owner, as root too, so the box writes it through the same idmapped mount as HOME), bound
 * writable, and each tool's variable set (a variable the policy sets itself wins).
 */
function withCaches(policy: Policy, home: string, env: NodeJS.ProcessEnv): Policy {
  const dir = path.join(cacheRoot(home, env), cacheKey(policy.egress.allow));
  const owner = statSync(home, { throwIfNoEntry: false });
  if (!owner?.isDirectory()) return policy;
  try {
    makeOwnedDir(dir, owner);
  } catch (error) {
    throw new WallError(
      "filesystem",
      `cannot make the box's cache directory ${dir}: ${(error as Error).message}`,
      "make it writable, or set filesystem.caches: false",
    );
  }
  return {
    ...policy,
    filesystem: { ...policy.filesystem, writable: [...policy.filesystem.writable, dir] },
    env: { ...policy.env, set: { ...cacheEnvironment(dir), ...policy.env.set } },
  };
}
