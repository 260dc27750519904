/**
 * `fourwall mcp wrap`: the SDK's own client speaks MCP to the reference filesystem server through
 * the box (tools listed, a file of its directory read, ~/.ssh unreadable even though the server
 * itself was told it may read HOME), stdout carries nothing but JSON-RPC, and SIGTERM ends a
 * server that ignores it within the grace period, leaving nothing behind. Both launch modes; the
 * secret check also against a box whose secrets are not covered, to show it can fail.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  asMode,
  chownToMode,
  type Fixture,
  fourwallArgv,
  MODES,
  makeFixture,
  ROOT,
  SECRET,
  waitFor,
  weakBoxBundle,
} from "../helpers/box.js";

const SERVER = path.join(ROOT, "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");

/** The server is told it may read the workdir and all of HOME: only the box keeps ~/.ssh from it. */
const serverArgv = (fx: Fixture) => [process.execPath, SERVER, fx.workdir, fx.home];

async function connect(fx: Fixture, argv: string[]) {
  const [command, ...args] = argv;
  const transport = new StdioClientTransport({
    command: command!,
    args,
    env: fx.env,
    cwd: fx.workdir,
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (d) => (stderr += d));
  const client = new Client({ name: "fourwall-test", version: "1" });
  await client.connect(transport);
  return { client, stderr: () => stderr };
}

/** The text of a tool call's answer (errors included: the server reports them as text). */
async function readFile(client: Client, file: string): Promise<string> {
  const r = await client.callTool({ name: "read_text_file", arguments: { path: file } });
  return (r.content as Array<{ type: string; text?: string }>).map((c) => c.text ?? "").join("\n");
}

for (const mode of MODES) {
  describe(`fourwall mcp wrap (${mode})`, () => {
    it("speaks MCP to the filesystem server: tools listed, its file read, ~/.ssh unreadable", async () => {
      const fx = makeFixture(mode);
      writeFileSync(path.join(fx.workdir, "hello.txt"), "hello from the workdir\n");
      chownToMode(fx, path.join(fx.workdir, "hello.txt"));
      // fourwall's run dir goes to a temp dir of this test's own: other files' boxes come and go in /tmp
      const tmp = path.join(fx.base, "tmp");
      mkdirSync(tmp, { mode: 0o1777 });
      chmodSync(tmp, 0o1777);
      fx.env.TMPDIR = tmp;
      const runDirsHere = () => readdirSync(tmp).filter((n) => n.startsWith("fourwall-"));
      const { client, stderr } = await connect(
        fx,
        fourwallArgv(mode, ["mcp", "wrap", "--workdir", fx.workdir, "--", ...serverArgv(fx)]),
      );
      try {
        const tools = (await client.listTools()).tools.map((t) => t.name);
        assert.ok(tools.includes("read_text_file"), tools.join(" "));
        assert.match(await readFile(client, path.join(fx.workdir, "hello.txt")), /hello from the workdir/);
        const ssh = await readFile(client, path.join(fx.home, ".ssh", "id_ed25519"));
        assert.doesNotMatch(ssh, new RegExp(SECRET), stderr());
        assert.doesNotMatch(
          await readFile(client, path.join(fx.home, ".aws", "credentials")),
          new RegExp(SECRET),
        );
      } finally {
        await client.close();
      }
      assert.ok(
        await waitFor(() => runDirsHere().length === 0, 5000),
        `the run dir is gone: ${runDirsHere()}`,
      );
    });

    it("the same check sees ~/.ssh in a box whose secrets are not covered (it can fail)", async () => {
      const fx = makeFixture(mode);
      const weak = asMode(mode, [
        process.execPath,
        weakBoxBundle(),
        "--weaken",
        "secrets",
        "-w",
        fx.workdir,
        "--",
        ...serverArgv(fx),
      ]);
      const { client } = await connect(fx, weak);
      try {
        assert.match(await readFile(client, path.join(fx.home, ".ssh", "id_ed25519")), new RegExp(SECRET));
      } finally {
        await client.close();
      }
    });

    it("keeps stdout to the server's JSON-RPC; fourwall and the server speak on stderr", () => {
      const fx = makeFixture(mode);
      const [program, ...args] = fourwallArgv(mode, ["mcp", "wrap", "--", ...serverArgv(fx)]);
      const initialize = {
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
      };
      const r = spawnSync(program!, args, {
        cwd: fx.workdir,
        env: fx.env,
        input: `${JSON.stringify(initialize)}\n`,
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.split("\n").filter(Boolean);
      assert.equal(lines.length, 1, r.stdout);
      assert.equal(JSON.parse(lines[0]!).id, 1);
      assert.match(r.stderr, /Secure MCP Filesystem Server running on stdio/);
    });

    it("--env NAME passes a server's own variable into the box; others stay out", () => {
      const fx = makeFixture(mode);
      const [program, ...args] = fourwallArgv(mode, [
        "mcp",
        "wrap",
        "--env",
        "SERVER_TOKEN",
        "--",
        "sh",
        "-c",
        'echo "token=$SERVER_TOKEN other=$OTHER_TOKEN"',
      ]);
      const r = spawnSync(program!, args, {
        cwd: fx.workdir,
        env: { ...fx.env, SERVER_TOKEN: "for-the-server", OTHER_TOKEN: "not-for-it" },
        input: "",
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.equal(r.stdout, "token=for-the-server other=\n", r.stderr);
    });

    it("started in / with no directory: a workdir of its own in HOME, kept between runs", () => {
      const fx = makeFixture(mode);
      const [program, ...args] = fourwallArgv(mode, [
        "mcp",
        "wrap",
        "--",
        "sh",
        "-c",
        "pwd; touch made && echo ok",
      ]);
      const r = spawnSync(program!, args, {
        cwd: "/",
        env: fx.env,
        input: "",
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.equal(r.status, 0, r.stderr);
      const [dir, ok] = r.stdout.trim().split("\n");
      assert.ok(dir!.startsWith(path.join(fx.home, ".local", "share", "fourwall", "mcp")), dir);
      assert.equal(ok, "ok");
      assert.ok(existsSync(path.join(dir!, "made")));
    });

    it("SIGTERM: a server that ignores it is ended after the grace period; nothing is left", async () => {
      const fx = makeFixture(mode);
      const marker = `mcp-grace-${process.pid}-${mode}`;
      const [program, ...args] = fourwallArgv(mode, [
        "mcp",
        "wrap",
        "--grace",
        "1",
        "--",
        "sh",
        "-c",
        `trap '' TERM; echo ready >&2; exec sleep 600 # ${marker}`,
      ]);
      const child = spawn(program!, args, { cwd: fx.workdir, env: fx.env, stdio: ["pipe", "pipe", "pipe"] });
      let err = "";
      child.stderr.on("data", (d) => (err += d));
      const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
      try {
        assert.ok(await waitFor(() => err.includes("ready"), 20_000), err);
        const sent = Date.now();
        child.kill("SIGTERM");
        const code = await closed;
        const took = Date.now() - sent;
        assert.ok(took >= 900 && took < 8000, `ended ${took} ms after SIGTERM`);
        assert.notEqual(code, 0);
        const left = spawnSync("pgrep", ["-f", marker], { encoding: "utf8" }).stdout.trim();
        assert.equal(left, "", "no process of the box is left");
      } finally {
        child.kill("SIGKILL");
      }
    });
  });
}

/** One sample config of each client, as a user would have them, in a fixture's HOME and project. */
function sampleConfigs(fx: Fixture): Record<string, string> {
  return {
    [path.join(fx.workdir, ".mcp.json")]: `{
  "mcpServers": {
    "notes": { "command": "node", "args": ["${SERVER}"] }
  }
}
`,
    [path.join(fx.home, ".claude.json")]: `{
  "numStartups": 2,
  "mcpServers": {
    "fs": { "type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "${fx.workdir}"], "env": { "LOG": "1" } },
    "docs": { "type": "http", "url": "https://mcp.example.com/mcp" }
  },
  "projects": { "${fx.workdir}": { "mcpServers": { "git": { "command": "uvx", "args": ["mcp-server-git"] } } } }
}
`,
    [path.join(fx.home, ".config", "Claude", "claude_desktop_config.json")]: `{
\t"mcpServers": {
\t\t"fs": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "${fx.workdir}"] }
\t}
}
`,
    [path.join(fx.home, ".codex", "config.toml")]: `# codex
model = "o4-mini"

[mcp_servers.fs]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "${fx.workdir}"]
env = { "LOG" = "1" }
`,
  };
}

for (const mode of MODES) {
  describe(`fourwall mcp install / uninstall (${mode})`, () => {
    it("shows each client's rewrite as a diff, installs once, and uninstall restores every file byte for byte", () => {
      const fx = makeFixture(mode);
      const files = sampleConfigs(fx);
      for (const [file, text] of Object.entries(files)) {
        mkdirSync(path.dirname(file), { recursive: true });
        writeFileSync(file, text, { mode: 0o600 });
      }
      spawnSync("chown", ["-R", mode === "root" ? "0:0" : "65534:65534", fx.home]);
      const fourwall = (args: string[]) => {
        const [program, ...rest] = fourwallArgv(mode, ["mcp", ...args]);
        return spawnSync(program!, rest, { cwd: fx.workdir, env: fx.env, encoding: "utf8", timeout: 30_000 });
      };
      const dry = fourwall(["install", "--dry-run"]);
      assert.equal(dry.status, 0, dry.stderr);
      for (const file of Object.keys(files)) {
        assert.ok(dry.stdout.includes(`--- ${file}`), `the diff shows ${file}:\n${dry.stdout}`);
        assert.equal(readFileSync(file, "utf8"), files[file], "a dry run changes nothing");
      }
      assert.match(dry.stdout, /\+.*"mcp",\s*"wrap"/);
      assert.match(dry.stdout, /skipped\s+docs: remote server/);
      assert.match(dry.stdout, /wrapped git \(projects\[/);

      const installed = fourwall(["install"]);
      assert.equal(installed.status, 0, installed.stderr);
      for (const file of Object.keys(files)) {
        assert.match(readFileSync(file, "utf8"), /"mcp",\s*"wrap"/, file);
        assert.equal(readFileSync(`${file}.fourwall-backup`, "utf8"), files[file]);
        assert.equal(statSync(file).mode & 0o777, 0o600, "the file keeps its mode");
      }
      const claude = JSON.parse(readFileSync(path.join(fx.home, ".claude.json"), "utf8"));
      assert.deepEqual(claude.mcpServers.fs.args.slice(0, 7), [
        "mcp",
        "wrap",
        "--workdir",
        fx.workdir,
        "--env",
        "LOG",
        "--",
      ]);
      const again = fourwall(["install"]);
      assert.equal(again.status, 0, again.stderr);
      assert.doesNotMatch(again.stdout, /^ {2}wrapped /m, "never wraps twice");
      assert.match(again.stdout, /already wrapped/);

      const removed = fourwall(["uninstall"]);
      assert.equal(removed.status, 0, removed.stderr);
      for (const [file, text] of Object.entries(files)) {
        assert.equal(readFileSync(file, "utf8"), text, `${file} is back byte for byte`);
        assert.ok(!existsSync(`${file}.fourwall-backup`), "the backup is gone");
      }
    });
  });
}
