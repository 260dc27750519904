/**
 * Built-in presets: data, reviewed like code. A preset lists what one agent needs to work and
 * nothing more; the user's policy is merged over it (lists add up, scalars override).
 */
import type { CredentialPolicyInput } from "../walls/egress/index.js";

export const PRESET_NAMES = ["claude-code", "codex", "openclaw", "node-dev", "python-dev"] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

type PresetData = {
  egress?: { allow?: string[]; credentials?: CredentialPolicyInput[] };
  filesystem?: {
    writable?: string[];
    state?: string[];
    scratch?: string[];
    readOnly?: string[];
    homeVisible?: string[];
  };
  env?: { pass?: string[]; set?: Record<string, string> };
};

export const PRESETS: Record<PresetName, PresetData> = {
  "claude-code": {
    // Measured (Claude Code 2.1.197, `claude -p`, API key): only api.anthropic.com. The login
    // (OAuth) pages moved to platform.claude.com; raw.githubusercontent.com (release notes) is left out.
    egress: {
      allow: [
        "api.anthropic.com",
        "statsig.anthropic.com",
        "claude.ai",
        "console.anthropic.com",
        "platform.claude.com",
      ],
      // the API key stays outside: the box holds a sentinel the proxy swaps (docs/credentials.md)
      credentials: [
        { name: "anthropic", fromEnv: "ANTHROPIC_API_KEY", hosts: ["api.anthropic.com"], optional: true },
      ],
    },
    // Claude Code keeps its sessions and login here; it needs to write them. Made on first use
    // (a first-time user has neither), so they persist.
    filesystem: {
      state: ["~/.claude/", "~/.claude.json"],
      // ...but not its settings: they hold the hooks, and a hook the model could rewrite is no gate.
      readOnly: ["~/.claude/settings.json", "~/.claude/settings.local.json"],
      scratch: ["~/.cache", "~/.npm"],
    },
    env: { pass: ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CLAUDE_CODE_*", "COLORTERM"] },
  },
  // Measured (Codex 0.171, `codex exec`): api.openai.com and chatgpt.com (its backend); the
  // github.com / api.github.com (plugin lists) and ab.chatgpt.com (experiments) it also tries are
  // left out: it works without them. Its own sandbox cannot nest here: the box sees a config.toml
  // with it off and bounded connection retries (walls/gate/plan.ts, renderCodexConfig).
  codex: {
    egress: {
      allow: ["api.openai.com", "chatgpt.com", "auth.openai.com"],
      credentials: [{ name: "openai", fromEnv: "OPENAI_API_KEY", hosts: ["api.openai.com"], optional: true }],
    },
    filesystem: { state: ["~/.codex/"], readOnly: ["~/.codex/config.toml"], scratch: ["~/.cache"] },
    env: { pass: ["OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_*", "COLORTERM"] },
  },
  // OpenClaw (Node >= 24.16): its config, sessions and workspace live in ~/.openclaw. The model
  // provider's host is the user's choice (-a); the two common ones are here. Measured (2026.9.6,
  // `agent exec`, a custom OpenAI-compatible provider): only the provider's host, through the box's
  // HTTP_PROXY; memory search embeds at api.openai.com by default (memory.search.enabled: false stops it).
  openclaw: {
    egress: {
      allow: ["api.anthropic.com", "api.openai.com"],
      credentials: [
        { name: "anthropic", fromEnv: "ANTHROPIC_API_KEY", hosts: ["api.anthropic.com"], optional: true },
        { name: "openai", fromEnv: "OPENAI_API_KEY", hosts: ["api.openai.com"], optional: true },
      ],
    },
    filesystem: { state: ["~/.openclaw/"], scratch: ["~/.cache", "~/.npm"] },
    env: { pass: ["OPENCLAW_*", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "COLORTERM"] },
  },
  "node-dev": {
    egress: { allow: ["registry.npmjs.org", "registry.yarnpkg.com"] },
    // HOME is an allowlist: toolchains (nvm, volta, fnm) are built in; these are version pins
    filesystem: {
      scratch: ["~/.npm", "~/.cache", "~/.yarn", "~/.local/share/pnpm"],
      homeVisible: [".nvmrc", ".node-version"],
    },
    env: { pass: ["NODE_ENV", "NODE_OPTIONS"] },
  },
  "python-dev": {
    egress: { allow: ["pypi.org", "files.pythonhosted.org"] },
    // pyenv is built in; pip.conf is not shown (index URLs carry credentials)
    filesystem: { scratch: ["~/.cache", "~/.local"], homeVisible: [".python-version"] },
    env: { pass: ["VIRTUAL_ENV", "PYTHONPATH"], set: { PIP_DISABLE_PIP_VERSION_CHECK: "1" } },
  },
};
