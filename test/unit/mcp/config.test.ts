import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ConfigFile, installText, sameDocument, uninstallText } from "../../../src/mcp/config.js";
import { isWrapped, serverDirectory, unwrapEntry, wrapEntry } from "../../../src/mcp/entry.js";

const DIRS = new Set(["/home/me/proj", "/home/me/notes", "/home/me/repo"]);
const ctx = { fourwall: "/opt/fourwall/bin/fourwall", isDir: (p: string) => DIRS.has(p) };

const claudeJson = `{
  "numStartups": 3,
  "mcpServers": {
    "fs": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/notes"],
      "env": { "DEBUG": "1" }
    },
    "remote": { "type": "http", "url": "https://mcp.example.com/mcp" }
  },
  "projects": {
    "/home/me/proj": { "mcpServers": { "git": { "command": "uvx", "args": ["mcp-server-git"] } } }
  }
}
`;

const codexToml = `# my codex config
model = "o4-mini"

[mcp_servers.fs]
command = "npx"
args = [
  "-y",
  "@modelcontextprotocol/server-filesystem",
  "/home/me/repo",
]
env = { "API_TOKEN" = "x" }   # kept

[mcp_servers."fetch-it"]
command = "uvx" # a comment
`;

describe("mcp entries", () => {
  it("finds the directory a server is given, never /", () => {
    assert.equal(serverDirectory(["npx", "-y", "pkg", "/home/me/proj/"], ctx.isDir), "/home/me/proj");
    assert.equal(serverDirectory(["git-mcp", "--repository=/home/me/repo"], ctx.isDir), "/home/me/repo");
    assert.equal(serverDirectory(["x", "/", "/etc/passwd"], ctx.isDir), undefined);
  });

  it("wraps command and args in place, passes env names, and unwraps to the original", () => {
    const entry = { command: "npx", args: ["-y", "pkg", "/home/me/proj"], env: { TOKEN: "t" }, extra: 1 };
    const out = wrapEntry(entry, { ...ctx, policy: "/p.yaml" });
    assert.equal(out.action, "wrap");
    if (out.action !== "wrap") return;
    assert.deepEqual(Object.keys(out.entry), ["command", "args", "env", "extra"]);
    assert.deepEqual(out.entry.args, [
      "mcp",
      "wrap",
      "--workdir",
      "/home/me/proj",
      "--policy",
      "/p.yaml",
      "--env",
      "TOKEN",
      "--",
      "npx",
      "-y",
      "pkg",
      "/home/me/proj",
    ]);
    assert.ok(isWrapped(out.entry));
    assert.deepEqual(unwrapEntry(out.entry), entry);
    assert.deepEqual(wrapEntry(out.entry, ctx), { action: "skip", why: "already wrapped" });
    // no args before: none after
    const bare = wrapEntry({ command: "srv" }, ctx);
    assert.ok(bare.action === "wrap" && !("args" in unwrapEntry(bare.entry)!));
  });

  it("leaves remote (url) servers alone, labelled", () => {
    const out = wrapEntry({ type: "sse", url: "https://x.example/sse" }, ctx);
    assert.equal(out.action, "skip");
    assert.match(out.action === "skip" ? out.why : "", /remote/);
  });
});

describe("mcp config files", () => {
  const claude: ConfigFile = { client: "claude-code", path: "/home/me/.claude.json", format: "json" };
  const project: ConfigFile = { client: "claude-code", path: "/home/me/proj/.mcp.json", format: "json" };
  const codex: ConfigFile = { client: "codex", path: "/home/me/.codex/config.toml", format: "toml" };

  it("~/.claude.json: user and per-project servers wrapped, url servers skipped, idempotent", () => {
    const r = installText(claude, claudeJson, ctx);
    assert.deepEqual(
      r.changes.map((c) => `${c.action} ${c.server} ${c.workdir ?? "-"}`),
      ["wrapped fs /home/me/notes", "skipped remote -", "wrapped git /home/me/proj"],
    );
    const doc = JSON.parse(r.text);
    assert.equal(doc.numStartups, 3);
    assert.equal(doc.mcpServers.fs.type, "stdio");
    assert.deepEqual(doc.mcpServers.remote, { type: "http", url: "https://mcp.example.com/mcp" });
    assert.equal(installText(claude, r.text, ctx).text, r.text, "a second install changes nothing");
    const back = uninstallText(claude, r.text);
    assert.ok(sameDocument(claude, back.text, claudeJson));
  });

  it(".mcp.json: a server given no directory works on the project's", () => {
    const text = `{\n    "mcpServers": {\n        "s": { "command": "srv" }\n    }\n}\n`;
    const r = installText(project, text, ctx);
    assert.equal(r.changes[0]!.workdir, "/home/me/proj");
    assert.match(r.text, /^\{\n {4}"mcpServers"/, "keeps the file's indentation");
  });

  it("codex config.toml: only command and args lines change; comments and layout stay", () => {
    const r = installText(codex, codexToml, ctx);
    assert.deepEqual(
      r.changes.map((c) => `${c.action} ${c.server}`),
      ["wrapped fs", "wrapped fetch-it"],
    );
    assert.match(r.text, /^# my codex config\nmodel = "o4-mini"\n/);
    assert.match(r.text, /env = \{ "API_TOKEN" = "x" \} {3}# kept/);
    assert.match(
      r.text,
      /command = "\/opt\/fourwall\/bin\/fourwall"\nargs = \["mcp", "wrap", "--workdir", "\/home\/me\/repo", "--env", "API_TOKEN", "--", "npx"/,
    );
    assert.equal(installText(codex, r.text, ctx).text, r.text);
    const back = uninstallText(codex, r.text);
    assert.ok(sameDocument(codex, back.text, codexToml));
  });

  it("a file that is not JSON is an error naming the file", () => {
    assert.throws(() => installText(claude, "{ nope", ctx), /\.claude\.json: not valid JSON/);
  });
});
