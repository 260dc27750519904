/**
 * No trace on the host (issue 12), launched as root and as uid 65534: the read-only placeholders
 * for persistence files that do not exist yet (.mcp.json, .envrc, .vscode/, .gitmodules, .git/hooks
 * pieces) stand in the gate's layer only. The box sees them and cannot write them; its `git add -A`
 * does not stage them; the host's workdir never has them (its `git status` stays clean while the
 * box runs) and is unchanged after. A box without the persistence guard (weak-box.ts) writes
 * .mcp.json through to the host: the same check sees it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { MODES, makeFixture, runInBox, startInBox, waitFor } from "../helpers/box.js";

const PLACEHOLDERS = [".mcp.json", ".envrc", ".vscode", ".gitmodules", ".claude", ".pre-commit-config.yaml"];
const BOX_SCRIPT = String.raw`
echo "mcp: $(cat .mcp.json)"
echo evil > .mcp.json 2>/dev/null && echo WROTE-MCP
git add -A && echo "staged: $(git diff --cached --name-only | tr '\n' ' ')"
echo ready
sleep 4
`;

const gitStatus = (dir: string) =>
  spawnSync(
    "git",
    ["-c", "safe.directory=*", "status", "--porcelain", "--ignored", "--untracked-files=all"],
    {
      cwd: dir,
      encoding: "utf8",
    },
  ).stdout;

for (const mode of MODES) {
  describe(`placeholders leave no trace on the host (${mode})`, () => {
    it("they stand in the box's layer only: read-only there, unseen by its git, never on the host", async () => {
      const fx = makeFixture(mode);
      const w = fx.workdir;
      const hostBefore = readdirSync(w).sort();
      const excludeBefore = readFileSync(path.join(w, ".git", "info", "exclude"), "utf8");
      const box = startInBox(fx, ["--approver", "exit 0"], BOX_SCRIPT);
      try {
        assert.ok(await waitFor(() => box.out().includes("ready"), 30_000), box.out());
        assert.deepEqual(
          readdirSync(w).sort(),
          hostBefore,
          "nothing new in the host's workdir while the box runs",
        );
        const status = gitStatus(w);
        for (const name of PLACEHOLDERS)
          assert.ok(!status.includes(name), `host git status shows ${name}: ${status}`);
      } finally {
        await box.closed;
      }
      assert.match(box.out(), /mcp: \{\}/, "the box sees the placeholder");
      assert.doesNotMatch(box.out(), /WROTE-MCP/, "and cannot write it");
      const staged = /staged: (.*)/.exec(box.out())?.[1] ?? "";
      assert.match(staged, /README\.md/, box.out());
      for (const name of PLACEHOLDERS)
        assert.ok(!staged.includes(name), `the box's git add -A staged ${name}`);
      for (const name of PLACEHOLDERS) assert.ok(!existsSync(path.join(w, name)), `${name} left on the host`);
      assert.equal(readFileSync(path.join(w, ".git", "info", "exclude"), "utf8"), excludeBefore);
      assert.ok(!existsSync(path.join(w, ".git", "commondir")), ".git/commondir left on the host");
    });

    it("a box without the persistence guard writes .mcp.json through to the host (the check sees it)", async () => {
      const fx = makeFixture(mode);
      const r = await runInBox(fx, ["/bin/sh", "-c", "echo evil > .mcp.json && echo WROTE-MCP"], {
        weaken: ["persistence"],
        timeoutMs: 60_000,
      });
      assert.match(r.stdout, /WROTE-MCP/, r.stderr);
      assert.equal(readFileSync(path.join(fx.workdir, ".mcp.json"), "utf8"), "evil\n");
    });
  });
}
