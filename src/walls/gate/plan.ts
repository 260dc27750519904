import path from "node:path";
import { parse, stringify } from "smol-toml";
import { shellWord } from "../../core/shell.js";
import type { GatePolicy } from "./schema.js";

/** Where the gate socket appears inside the box (next to the proxy's, in the same bound dir). */
export const BOX_GATE_SOCKET = "/run/fourwall/gate.sock";

/** An agent settings file fourwall writes for the box and binds read-only over `target`. */
export interface AgentSettingsFile {
  agent: "claude-code" | "codex";
  /** What it holds: the agent's hooks (JSON), or Codex's config.toml with its own sandbox off. */
  kind: "hooks" | "codex-config";
  /** Where the agent reads it, inside the box. */
  target: string;
  /** The host file whose settings are kept (the hooks are added to them), if it exists. */
  base: string;
  /** The command the agent's hook runs (this fourwall, found at the same path inside the box). */
  hookCommand: string;
}

export interface GatePlan {
  policy: GatePolicy;
  /**
   * A copy-on-write layer over the workdir: it holds changes to pre-existing workdir files until
   * a human decides (`holds`), and it carries the box's placeholders (placeholders.ts: no trace on
   * the host). Off only when there is neither anything to hold nor a placeholder in the workdir.
   */
  overlay: boolean;
  /**
   * The policy can refuse a change (an fs decision other than allow). False with a layer: it only
   * carries the placeholders; nothing is asked (no pause, no history), new files flow live and
   * changes to older files are applied at exit, as the policy allows.
   */
  holds: boolean;
  /**
   * Judge the workdir's git refs and reflogs as history, with git (history.ts). On whenever the
   * layer holds; a deliberately weakened test box turns it off to show the tests see the hole.
   */
  gitHistory: boolean;
  socketInBox: string;
  settings: AgentSettingsFile[];
}

export interface GateContext {
  home: string;
  /** The presets in force (policy.preset). */
  presets: readonly string[];
  /** How the box runs fourwall: [node, /path/to/bin/fourwall.js]. */
  fourwall: readonly string[];
  /** Placeholders stand inside the workdir (filesystem plan): the layer carries them, asked or not. */
  workdirPlaceholders?: boolean;
}

/** The gate's part of the box plan (pure). */
export function planGate(policy: GatePolicy, ctx: GateContext): GatePlan {
  const holds = policy.fs.default !== "allow" || policy.fs.rules.some((r) => r.decision !== "allow");
  const overlay = holds || ctx.workdirPlaceholders === true;
  const run = (sub: string) => [...ctx.fourwall, "gate", sub].map(shellWord).join(" ");
  const settings: AgentSettingsFile[] = [];
  if (ctx.presets.includes("claude-code")) {
    const file = path.join(ctx.home, ".claude", "settings.json");
    settings.push({
      agent: "claude-code",
      kind: "hooks",
      target: file,
      base: file,
      hookCommand: run("claude-hook"),
    });
  }
  if (ctx.presets.includes("codex")) {
    const hooks = path.join(ctx.home, ".codex", "hooks.json");
    const config = path.join(ctx.home, ".codex", "config.toml");
    const hookCommand = run("codex-hook");
    settings.push({ agent: "codex", kind: "hooks", target: hooks, base: hooks, hookCommand });
    settings.push({ agent: "codex", kind: "codex-config", target: config, base: config, hookCommand });
  }
  return { policy, overlay, holds, gitHistory: holds, socketInBox: BOX_GATE_SOCKET, settings };
}

type Json = Record<string, unknown>;

/**
 * The settings an agent reads in the box: the user's own (kept) plus fourwall's PreToolUse hook
 * on every tool that can run a command. Claude Code and Codex both read `hooks.PreToolUse` as a
 * list of `{ matcher, hooks: [{ type: "command", command }] }`. The file is bound read-only, and
 * the workdir's own settings files are read-only too (persistence list), so the model cannot
 * switch the hook off.
 */
export function renderAgentSettings(file: AgentSettingsFile, baseText: string | undefined): string {
  if (file.kind === "codex-config") return renderCodexConfig(baseText ?? "");
  let base: Json = {};
  if (baseText !== undefined) {
    try {
      const parsed = JSON.parse(baseText);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) base = parsed as Json;
    } catch {
      // an unreadable settings file: start from nothing rather than fail the box
    }
  }
  const hooks = (base.hooks && typeof base.hooks === "object" ? { ...(base.hooks as Json) } : {}) as Json;
  const pre = Array.isArray(hooks.PreToolUse) ? [...hooks.PreToolUse] : [];
  const matcher = file.agent === "claude-code" ? "Bash" : "Bash|shell|exec_command|local_shell";
  pre.unshift({ matcher, hooks: [{ type: "command", command: file.hookCommand, timeout: 600 }] });
  hooks.PreToolUse = pre;
  const out: Json = { ...base, hooks };
  // A user-level "disableAllHooks" would switch fourwall's hook off with the rest.
  if (file.agent === "claude-code") delete out.disableAllHooks;
  // Claude Code's own sandbox (bwrap) cannot start in the box (no user namespaces there), and
  // fourwall is the sandbox: switched off, as Claude Code documents for running inside one.
  if (file.agent === "claude-code") {
    const own = out.sandbox && typeof out.sandbox === "object" ? (out.sandbox as Json) : {};
    out.sandbox = { ...own, enabled: false };
  }
  return `${JSON.stringify(out, null, 2)}\n`;
}

/**
 * Codex's config.toml as the box sees it: the user's own settings, plus two that running inside an
 * outer sandbox needs (Codex documents both):
 * - `sandbox_mode = "danger-full-access"`: Codex's own sandbox (bwrap, or Landlock) cannot start
 *   inside fourwall's box (no user namespaces there), so every shell call would fail; this mode is
 *   Codex's for an environment that is itself the sandbox. A top-level `sandbox_mode` of the user's
 *   is replaced; a profile's, or a `--sandbox` flag, still wins, as the user chose.
 * - `features.unbounded_connection_retries = false` (unless the user set it): a host the proxy
 *   refuses is a failed connection to Codex (the CONNECT is answered 403), and with the feature
 *   on it waits "for network" for ever; off, its retries are counted and the turn ends.
 * The box gets a re-serialised copy (comments dropped); a file that does not parse is left as it
 * is, so Codex reports the user's own error.
 */
export function renderCodexConfig(baseText: string): string {
  let config: Record<string, unknown>;
  try {
    config = parse(baseText) as Record<string, unknown>;
  } catch {
    return baseText;
  }
  const features = isTable(config.features) ? { ...config.features } : {};
  if (typeof features.unbounded_connection_retries !== "boolean")
    features.unbounded_connection_retries = false;
  const out = { sandbox_mode: "danger-full-access", ...config, features };
  out.sandbox_mode = "danger-full-access";
  return `# fourwall: the box is the sandbox (Codex's own cannot start inside it)\n${stringify(out)}\n`;
}

const isTable = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
