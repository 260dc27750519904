/**
 * Persistent boxes: `fourwall up`, `exec`, `down`, `ls`. A command entered with `exec` gets the
 * same walls as the box's own first process; boxes are private to their maker; a box whose
 * supervisor dies, dies; `down` leaves nothing behind. Both launch modes.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type Fixture, MODES, makeFixture, ROOT, SECRET, userArgs } from "../helpers/box.js";

const SHIM = path.join(ROOT, "bin", "fourwall");

function fw(fx: Fixture, args: string[], options: { input?: string; uid?: number } = {}) {
  const argv = [...userArgs(fx.mode, options.uid), SHIM, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), {
    cwd: fx.workdir,
    env: fx.env,
    input: options.input ?? "",
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const readFileSafe = (p: string) => (existsSync(p) ? readFileSync(p, "utf8") : undefined);
const pgrepIdle = () => spawnSync("pgrep", ["-f", "^sleep infinity$"], { encoding: "utf8" }).stdout.trim();

for (const mode of MODES) {
  describe(`persistent box (${mode})`, () => {
    it("exec gets the box's walls, its exit status and stdin; down leaves nothing", async () => {
      const fx = makeFixture(mode);
      const name = `t-${mode}-${process.pid}`;
      const before = pgrepIdle();
      assert.equal(fw(fx, ["up", "--name", name]).code, 0);
      try {
        assert.match(fw(fx, ["ls"]).stdout, new RegExp(name));
        const walls = fw(fx, [
          "exec",
          name,
          "--",
          "sh",
          "-c",
          "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/1/comm; cat ~/.ssh/id_ed25519 .env 2>&1; env; unshare -U true && echo UNSHARED; curl -s -m 3 -o /dev/null -w 'http=%{http_code}\\n' http://unlisted.test/",
        ]);
        assert.match(walls.stdout, /CapEff:\s*0+\n/);
        assert.match(walls.stdout, /NoNewPrivs:\s*1/);
        assert.match(walls.stdout, /Seccomp:\s*2/);
        assert.match(walls.stdout, /^bwrap$/m, "joined the box's pid namespace");
        assert.match(walls.stdout, /http=403/, "egress goes through the box's proxy");
        assert.doesNotMatch(walls.stdout, new RegExp(SECRET));
        assert.doesNotMatch(walls.stdout, /UNSHARED/);
        assert.equal(fw(fx, ["exec", name, "--", "sh", "-c", "exit 5"]).code, 5);
        assert.equal(
          fw(fx, ["exec", name, "--", "tr", "a-z", "A-Z"], { input: "piped\n" }).stdout,
          "PIPED\n",
        );
        // the approval gate's layer: the box sees its writes at once; the host at `down`, where the
        // delete of a file that existed before needs a yes (nobody to ask here: it stays)
        fw(fx, ["exec", name, "--", "sh", "-c", "echo from-exec > made.txt; rm README.md"]);
        assert.equal(fw(fx, ["exec", name, "--", "cat", "made.txt"]).stdout, "from-exec\n");
      } finally {
        assert.equal(fw(fx, ["down", name]).code, 0);
      }
      assert.equal(
        readFileSafe(path.join(fx.workdir, "made.txt")),
        "from-exec\n",
        "new files land on the host at down",
      );
      assert.equal(
        readFileSafe(path.join(fx.workdir, "README.md")),
        "# project\n",
        "the delete waited for a yes that never came",
      );
      assert.doesNotMatch(fw(fx, ["ls"]).stdout, new RegExp(name));
      assert.equal(pgrepIdle(), before, "the box's processes are gone");
      assert.ok(!existsSync(path.join(fx.workdir, ".mcp.json")), "placeholders are gone");
    });

    it("boxes sharing a workdir keep their read-only placeholders until the last one ends", async () => {
      const fx = makeFixture(mode);
      const [a, b] = [`a-${mode}-${process.pid}`, `b-${mode}-${process.pid}`];
      const ups = await Promise.all([a, b].map((n) => Promise.resolve(fw(fx, ["up", "--name", n]))));
      assert.deepEqual(
        ups.map((u) => u.code),
        [0, 0],
        ups.map((u) => u.stderr).join(""),
      );
      assert.equal(fw(fx, ["down", a]).code, 0);
      const attempt = fw(fx, [
        "exec",
        b,
        "--",
        "sh",
        "-c",
        "echo '{\"mcpServers\":{}}' > .mcp.json; mkdir -p .git/hooks; echo evil > .git/hooks/pre-commit; true",
      ]);
      assert.equal(attempt.code, 0);
      assert.notEqual(
        readFileSafe(path.join(fx.workdir, ".mcp.json")),
        '{"mcpServers":{}}\n',
        "the second box could write .mcp.json after the first ended",
      );
      assert.ok(!existsSync(path.join(fx.workdir, ".git/hooks/pre-commit")));
      assert.equal(fw(fx, ["down", b]).code, 0);
      for (const name of [".mcp.json", ".vscode", ".envrc", ".claude"])
        assert.ok(!existsSync(path.join(fx.workdir, name)), `${name} left behind`);
    });

    it("is private to the user who made it", async () => {
      const fx = makeFixture(mode);
      const name = `p-${mode}-${process.pid}`;
      assert.equal(fw(fx, ["up", "--name", name]).code, 0);
      try {
        // another unprivileged uid tries to enter it, with the maker's HOME and runtime dir
        const other = spawnSync(
          "setpriv",
          ["--reuid=65533", "--regid=65533", "--clear-groups", SHIM, "exec", name, "--", "id"],
          {
            cwd: "/",
            env: fx.env,
            encoding: "utf8",
          },
        );
        assert.notEqual(other.status, 0, other.stdout);
        assert.doesNotMatch(other.stdout, /uid=/);
      } finally {
        fw(fx, ["down", name]);
      }
    });

    it("dies with its supervisor (SIGKILL), and ls forgets it", async () => {
      const fx = makeFixture(mode);
      const name = `k-${mode}-${process.pid}`;
      const before = pgrepIdle();
      assert.equal(fw(fx, ["up", "--name", name]).code, 0);
      const info = JSON.parse(fw(fx, ["ls", "--json"]).stdout).find((b: { name: string }) => b.name === name);
      process.kill(info.supervisorPid, "SIGKILL");
      for (let i = 0; i < 60 && pgrepIdle() !== before; i++) await sleep(50);
      assert.equal(pgrepIdle(), before, "the box died with its supervisor");
      assert.doesNotMatch(fw(fx, ["ls"]).stdout, new RegExp(name));
      assert.notEqual(fw(fx, ["exec", name, "--", "true"]).code, 0);
      const placeholdersLeft = () =>
        [".mcp.json", ".vscode", ".envrc", ".claude"].filter((n) => existsSync(path.join(fx.workdir, n)));
      for (let i = 0; i < 60 && placeholdersLeft().length > 0; i++) await sleep(50);
      assert.deepEqual(placeholdersLeft(), [], "the reaper removed the placeholders");
    });
  });
}

describe("persistent boxes on other runtimes", () => {
  it("up -r gvisor / vm is refused before anything starts (exec joins namespaces: only the namespaces runtime has them)", () => {
    const fx = makeFixture("root");
    for (const runtime of ["gvisor", "vm"]) {
      const r = fw(fx, ["up", "--name", `t-${runtime}-${process.pid}`, "-r", runtime]);
      assert.equal(r.code, 125, r.stderr);
      assert.match(r.stderr, new RegExp(`fourwall exec cannot enter a ${runtime} box`));
      assert.doesNotMatch(fw(fx, ["ls"]).stdout, new RegExp(`t-${runtime}-`));
    }
  });
});
