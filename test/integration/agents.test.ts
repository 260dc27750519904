import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { before, describe, it } from "node:test";
import { PRESETS, type PresetName } from "../../src/policy/presets.js";
import { AGENT_PACKAGES, installAgents, node24Bin } from "../helpers/agents.js";
import {
  chownToMode,
  MODES,
  type Mode,
  makeFixture,
  readAudit,
  runInBox,
  SECRET,
  USER_UID,
} from "../helpers/box.js";
import { type ModelApi, startAnthropicApi, startOpenAiApi } from "../helpers/model-apis.js";

// The real agents, from npm, each in a box with its preset, one real turn against a local stand-in
// of its model API. The stand-in's host name (model.test) is pinned to 127.0.0.1 at the proxy
// (--resolve), so the agent reaches it only through the egress wall. The scripted reply asks the
// agent's shell tool to write a file, read secrets and reach a blocked host.

const HOST_PATH = "/usr/local/bin:/usr/bin:/bin";
const COMMAND = [
  "echo agent-was-here > landed.txt",
  "cat ~/.ssh/id_ed25519 ~/.aws/credentials .env 2>&1",
  "curl -s -m 5 -o /dev/null -w 'blocked=%{http_code}\\n' http://blocked.test/",
  "env | grep _API_KEY=",
].join("; ");

let cli: string;
before(() => {
  // first run downloads (~300 MB); later runs reuse the cache
  cli = installAgents("cli", { timeoutMs: 900_000 });
});

interface Turn {
  code: number | null;
  stderr: string;
  api: ModelApi;
  audit: string;
  fx: ReturnType<typeof makeFixture>;
  /** New entries in HOME after the run. */
  made: string[];
  /** The API key on the host (the stand-in checks it arrives; the box must not hold it). */
  key: string;
}

/** `codex exec` against one provider (a model whose tools are the classic shell functions, not the JavaScript code mode). */
const codexExec = (provider: string, baseUrl: string) => [
  "codex",
  "exec",
  "--skip-git-repo-check",
  "-m",
  "gpt-4.1",
  "-c",
  `model_provider="${provider}"`,
  "-c",
  `model_providers.${provider}={name="${provider}", base_url="${baseUrl}", env_key="OPENAI_API_KEY", wire_api="responses"}`,
  "write the file",
];

const pinnedToLoopback = (preset: PresetName) =>
  (PRESETS[preset].egress?.allow ?? []).flatMap((host) => ["--resolve", `${host}=127.0.0.1`]);

async function oneTurn(
  mode: Mode,
  o: {
    preset: PresetName;
    argv: (port: number) => string[];
    api: "anthropic" | "openai";
    keyVar: string;
    env?: (port: number) => Record<string, string>;
    /** The directories holding the agent (and its Node), before the host's PATH. */
    bin?: string;
    /** Files the user has in the workdir before the run (the agent's config). */
    setup?: (fx: ReturnType<typeof makeFixture>, port: number) => void;
    timeoutMs?: number;
  },
): Promise<Turn> {
  const fx = makeFixture(mode);
  const key = `sk-fourwall-${randomBytes(6).toString("hex")}`;
  const api = await (o.api === "anthropic" ? startAnthropicApi : startOpenAiApi)({ key, command: COMMAND });
  const audit = path.join(fx.base, "audit.jsonl");
  writeFileSync(audit, "");
  chownToMode(fx, audit);
  o.setup?.(fx, api.port);
  const homeBefore = readdirSync(fx.home);
  try {
    const r = await runInBox(fx, o.argv(api.port), {
      // the gate asks about the shell command (it reaches the network): a human who says yes
      flags: [
        "--preset",
        o.preset,
        "--audit",
        audit,
        "--approver",
        "true",
        "-a",
        `model.test:${api.port}`,
        "--resolve",
        "model.test=127.0.0.1",
        // the preset's real hosts are pinned to loopback (nothing listens on their ports): the test
        // never resolves or reaches a real name, whatever the agent tries
        ...pinnedToLoopback(o.preset),
        // the key stays outside: the box holds the preset's sentinel, swapped at the proxy for the
        // stand-in too (one box variable, one sentinel: docs/credentials.md)
        "--secret",
        `${o.keyVar}@model.test`,
      ],
      env: {
        PATH: `${o.bin ?? path.join(cli, "node_modules", ".bin")}:${HOST_PATH}`,
        [o.keyVar]: key,
        ...o.env?.(api.port),
      },
      timeoutMs: o.timeoutMs ?? 120_000,
    });
    // nothing new in HOME but the preset's state (no residue files, no placeholders left)
    const made = readdirSync(fx.home).filter((n) => !homeBefore.includes(n) && !fourwallsOwn(fx.home, n));
    return { code: r.code, stderr: r.stderr, api, audit, fx, made, key };
  } finally {
    await api.close();
  }
}

/** fourwall's own state in HOME (its policy cache, user mode's locks and layers), not the agent's. */
function fourwallsOwn(home: string, name: string): boolean {
  const only = (dir: string, entry: string) => {
    const list = readdirSync(path.join(home, dir));
    return list.length === 1 && list[0] === entry;
  };
  if (name === ".cache") return only(".cache", "fourwall");
  if (name === ".local") return only(".local", "state") && only(".local/state", "fourwall");
  return false;
}

/** What every agent's turn must show: the key checked, the file landed, a blocked host, no secret. */
function checkTurn(t: Turn): void {
  assert.equal(t.code, 0, t.stderr.slice(-3000));
  assert.ok(
    t.api.requests.length > 0 && t.api.requests.every((r) => r.keyOk),
    "the stand-in saw the right key",
  );
  assert.equal(t.api.toolResults.length, 1, "one tool result came back");
  const out = t.api.toolResults[0]!;
  assert.doesNotMatch(out, new RegExp(SECRET), "no secret reached the agent");
  assert.doesNotMatch(out, new RegExp(t.key), "the API key is not in the box: only its sentinel");
  assert.match(out, /blocked=403/);
  assert.equal(readFileSync(path.join(t.fx.workdir, "landed.txt"), "utf8"), "agent-was-here\n");
  const denied = readAudit(t.audit)
    .filter((e) => e.decision === "deny")
    .map((e) => e.host);
  assert.ok(denied.includes("blocked.test"), `blocked.test in the audit (denied: ${denied.join(", ")})`);
}

const owner = (mode: Mode) => (mode === "root" ? 0 : USER_UID);

for (const mode of MODES) {
  describe(`real agents in the box (${mode})`, { timeout: 900_000 }, () => {
    it(`Claude Code ${AGENT_PACKAGES.cli[0].split("@")[2]}: one turn through claude -p; ~/.claude made on first use and kept`, async () => {
      const t = await oneTurn(mode, {
        preset: "claude-code",
        api: "anthropic",
        keyVar: "ANTHROPIC_API_KEY",
        argv: () => ["claude", "-p", "write the file", "--allowedTools", "Bash"],
        env: (port) => ({ ANTHROPIC_BASE_URL: `http://model.test:${port}` }),
      });
      checkTurn(t);
      assert.deepEqual(t.made.sort(), [".claude", ".claude.json"]);
      // a first-time user's state dirs were made on the host, owned by the user, and kept
      for (const p of [".claude", ".claude.json"]) {
        const st = statSync(path.join(t.fx.home, p));
        assert.equal(st.uid, owner(mode), `${p} owned by the user`);
      }
      assert.ok(
        readFileSync(path.join(t.fx.home, ".claude.json"), "utf8").length > 3,
        "Claude Code wrote its state",
      );
      // the gate's settings file and the placeholders are gone
      assert.ok(!existsSync(path.join(t.fx.home, ".claude", "settings.json")), "no residue settings.json");
    });

    it(`Codex ${AGENT_PACKAGES.cli[1].split("@")[2]}: one turn through codex exec; no hooks.json left behind`, async () => {
      const t = await oneTurn(mode, {
        preset: "codex",
        api: "openai",
        keyVar: "OPENAI_API_KEY",
        // no --sandbox: the preset's box-only config.toml turns Codex's own sandbox off (it cannot
        // nest), so the shell tool works on the first try
        argv: (port) => codexExec("standin", `http://model.test:${port}/v1`),
      });
      checkTurn(t);
      assert.deepEqual(t.made, [".codex"]);
      const codex = path.join(t.fx.home, ".codex");
      assert.equal(statSync(codex).uid, owner(mode), "~/.codex owned by the user");
      assert.ok(!existsSync(path.join(codex, "hooks.json")), "no empty hooks.json left on the host");
      assert.ok(!existsSync(path.join(codex, "config.toml")), "no placeholder config.toml left on the host");
    });

    it("Codex: a turn whose model host is refused ends (bounded retries), the host in the audit", async () => {
      const fx = makeFixture(mode);
      const audit = path.join(fx.base, "audit.jsonl");
      writeFileSync(audit, "");
      chownToMode(fx, audit);
      // an HTTPS provider the policy does not allow: the proxy refuses the CONNECT, which Codex
      // counts as a lost network; without the preset's config it would wait "for network" for ever
      const r = await runInBox(fx, codexExec("refused", "https://refused.test/v1"), {
        flags: ["--preset", "codex", "--audit", audit],
        env: {
          PATH: `${path.join(cli, "node_modules", ".bin")}:${HOST_PATH}`,
          OPENAI_API_KEY: "sk-unused-0123456789",
        },
        timeoutMs: 480_000,
      });
      assert.notEqual(r.code, null, "Codex ended by itself");
      assert.equal(r.code, 1, r.stderr.slice(-2000));
      assert.match(r.stderr, /Connection failed/);
      const denied = readAudit(audit)
        .filter((e) => e.decision === "deny")
        .map((e) => e.host);
      assert.ok(denied.includes("refused.test"), `refused.test in the audit (denied: ${denied.join(", ")})`);
    });
  });
}

for (const mode of MODES) {
  describe(`an agent installed outside the box's view (${mode})`, () => {
    it("is named before launch (exit 125), and runs once --ro shows it", async () => {
      const fx = makeFixture(mode);
      // an agent "installed" under /tmp: private in the box
      const bin = mkdtempSync(path.join(os.tmpdir(), "fourwall-agent-bin-"));
      chmodSync(bin, 0o755);
      writeFileSync(path.join(bin, "agent"), "#!/bin/sh\necho agent-ran\n", { mode: 0o755 });
      try {
        const env = { PATH: `${bin}:${HOST_PATH}` };
        const hidden = await runInBox(fx, ["agent"], { env });
        assert.equal(hidden.code, 125);
        assert.match(hidden.stderr, /agent is not visible in the box: \/tmp is private/);
        assert.match(hidden.stderr, /--ro /);
        const missing = await runInBox(fx, ["no-such-agent"], { env });
        assert.equal(missing.code, 125);
        assert.match(missing.stderr, /no-such-agent not found in the box/);
        const shown = await runInBox(fx, ["agent"], { env, flags: ["--ro", bin] });
        assert.equal(shown.code, 0, shown.stderr);
        assert.equal(shown.stdout, "agent-ran\n");
      } finally {
        rmSync(bin, { recursive: true, force: true });
      }
    });
  });
}

/** OpenClaw's config for a custom OpenAI-compatible provider at the stand-in (Chat Completions). */
const openClawConfig = (port: number) => ({
  // memory search embeds through OpenAI's API by default (api.openai.com): not in this test
  memory: { search: { enabled: false } },
  models: {
    providers: {
      standin: {
        baseUrl: `http://model.test:${port}/v1`,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: OpenClaw's own env reference, read by OpenClaw
        apiKey: "${OPENAI_API_KEY}",
        api: "openai-completions",
        models: [
          {
            id: "stand-in",
            name: "stand-in",
            reasoning: false,
            input: ["text"],
            contextWindow: 128000,
            maxTokens: 4096,
          },
        ],
      },
    },
  },
});

const WORKERS = (n: number) =>
  `const { Worker } = require("node:worker_threads"); let done = 0; for (let i = 0; i < ${n}; i++) new Worker("setTimeout(() => {}, 300)", { eval: true }).on("exit", () => { if (++done === ${n}) console.log("workers-ok"); });`;

for (const mode of MODES) {
  describe(`OpenClaw and Node 24 from npm (${mode})`, { timeout: 900_000 }, () => {
    let node24: string;
    let openclaw: string;
    before(() => {
      node24 = node24Bin(installAgents("node24"));
      openclaw = installAgents("openclaw", { nodeBin: node24, timeoutMs: 900_000 });
    });

    it("OpenClaw starts in the box with its preset; ~/.openclaw made on first use", async () => {
      const fx = makeFixture(mode);
      const r = await runInBox(fx, ["openclaw", "--version"], {
        flags: ["--preset", "openclaw"],
        env: { PATH: `${path.join(openclaw, "node_modules", ".bin")}:${node24}:${HOST_PATH}` },
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /OpenClaw \d+\.\d+/);
      const st = statSync(path.join(fx.home, ".openclaw"));
      assert.ok(
        st.isDirectory() && st.uid === owner(mode),
        "~/.openclaw made on first use, owned by the user",
      );
    });

    it(`OpenClaw ${AGENT_PACKAGES.openclaw[0].split("@")[1]}: one turn through openclaw agent exec against an OpenAI-compatible provider`, async () => {
      const t = await oneTurn(mode, {
        preset: "openclaw",
        api: "openai",
        keyVar: "OPENAI_API_KEY",
        bin: `${path.join(openclaw, "node_modules", ".bin")}:${node24}`,
        // a custom provider, as OpenClaw documents it (models.providers): the key by reference, so
        // the config holds no secret and the box's sentinel is what OpenClaw sends
        setup: (fx, port) => {
          const config = path.join(fx.workdir, "openclaw.json");
          writeFileSync(config, JSON.stringify(openClawConfig(port), null, 2));
          chownToMode(fx, config);
        },
        argv: () => [
          "openclaw",
          "agent",
          "exec",
          "--config",
          "openclaw.json",
          "--model",
          "standin/stand-in",
          "write the file",
        ],
        // OpenClaw prepares for ~20 s (its SQLite state, tools, prompt) before the first request
        timeoutMs: 300_000,
      });
      checkTurn(t);
      assert.deepEqual(t.made, [".openclaw"]);
      assert.equal(
        statSync(path.join(t.fx.home, ".openclaw")).uid,
        owner(mode),
        "~/.openclaw owned by the user",
      );
    });

    it("the default memory limits do not break V8 (Node 24, 8 worker threads); a tight one is named", async () => {
      const fx = makeFixture(mode);
      const env = { PATH: `${node24}:${HOST_PATH}` };
      const ok = await runInBox(fx, ["node", "-e", WORKERS(8)], { env, timeoutMs: 60_000 });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, "workers-ok\n");
      if (mode === "root") return; // a cgroup caps memory there: no RLIMIT_DATA to hit
      const policy = path.join(fx.base, "tight.yaml");
      writeFileSync(policy, "isolation:\n  limits:\n    memory: 256MiB\n");
      const tight = await runInBox(fx, ["node", "-e", WORKERS(8)], {
        env,
        flags: ["-p", policy],
        timeoutMs: 60_000,
      });
      assert.equal(tight.code, 133);
      assert.match(tight.stderr, /exit 133.*RLIMIT_DATA.*raise isolation\.limits\.memory/);
    });
  });
}
