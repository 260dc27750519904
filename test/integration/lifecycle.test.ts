/**
 * The box's life: exit status, signals, terminals, a broken policy, a fork bomb, and what is left
 * after fourwall is killed with SIGKILL (nothing). Both launch modes.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  checkSigtermForwarded,
  fourwallArgv,
  MODES,
  makeFixture,
  runDirs,
  runInBox,
  sh,
  startInBox,
  waitFor,
} from "../helpers/box.js";

const pgrep = (pattern: string) => spawnSync("pgrep", ["-f", pattern], { encoding: "utf8" }).stdout.trim();

for (const mode of MODES) {
  describe(`box lifecycle (${mode})`, () => {
    it("returns the command's own exit status", async () => {
      const fx = makeFixture(mode);
      assert.equal((await sh(fx, "exit 7")).code, 7);
      assert.equal((await sh(fx, "true")).code, 0);
      // a program the box cannot find is named before launch: exit 125, nothing run
      const missing = await runInBox(fx, ["/no/such/program"]);
      assert.equal(missing.code, 125);
      assert.match(missing.stderr, /\/no\/such\/program not found in the box/);
    });

    it("passes stdin and stdout through", async () => {
      const fx = makeFixture(mode);
      const [program, ...args] = fourwallArgv(mode, ["run", "--", "tr", "a-z", "A-Z"]);
      const r = spawnSync(program!, args, {
        cwd: fx.workdir,
        env: fx.env,
        input: "hello box\n",
        encoding: "utf8",
      });
      assert.equal(r.stdout, "HELLO BOX\n", r.stderr);
    });

    it("gives the box the terminal when there is one", () => {
      const fx = makeFixture(mode);
      const inner = fourwallArgv(mode, [
        "run",
        "--",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo IS-A-TTY; stty size",
      ]);
      const r = spawnSync("script", ["-qec", inner.map((a) => `'${a}'`).join(" "), "/dev/null"], {
        cwd: fx.workdir,
        env: { ...fx.env, TERM: "xterm" },
        encoding: "utf8",
        timeout: 20_000,
      });
      assert.match(r.stdout, /IS-A-TTY/, r.stdout + r.stderr);
    });

    it("forwards SIGTERM to the command and reports its status", async () => {
      await checkSigtermForwarded(makeFixture(mode), [], 10_000);
    });

    it("leaves nothing behind after fourwall is killed with SIGKILL", async () => {
      const fx = makeFixture(mode);
      const marker = String(3000 + Math.floor(Math.random() * 5000));
      const [program, ...args] = fourwallArgv(mode, ["run", "--", "sleep", marker]);
      const child = spawn(program!, args, { cwd: fx.workdir, env: fx.env, stdio: "ignore" });
      assert.ok(await waitFor(() => pgrep(`^sleep ${marker}$`) !== "", 10_000), "box started");
      // placeholders stand in the gate's layer, never on the host (issue 12)
      assert.ok(
        !existsSync(path.join(fx.workdir, ".mcp.json")),
        "no placeholder on the host while the box runs",
      );
      // this box's reaper (other boxes may run on the machine): its lock names the workdir, and its
      // arguments name the box's run dir
      const lockKey = createHash("sha256").update(fx.workdir).digest("hex").slice(0, 32);
      const reaperArgs = spawnSync("pgrep", ["-af", `fourwall-reaper .*${lockKey}`], {
        encoding: "utf8",
      }).stdout;
      const runDir = reaperArgs
        .split(/\s+/)
        .find((a) => path.basename(a).startsWith("fourwall-") && runDirs().includes(path.basename(a)));
      assert.ok(runDir, `the box's run dir among the reaper's arguments: ${reaperArgs}`);
      child.kill("SIGKILL");
      assert.ok(
        await waitFor(() => pgrep(`^sleep ${marker}$`) === "", 5_000),
        "the box's processes are gone",
      );
      assert.ok(
        await waitFor(() => !existsSync(path.join(fx.workdir, ".mcp.json")), 5_000),
        "placeholders are gone",
      );
      assert.ok(await waitFor(() => !existsSync(runDir), 5_000), "the run dir is gone");
      assert.ok(
        await waitFor(() => pgrep(`fourwall-reaper .*${lockKey}`) === "", 5_000),
        "the reaper has finished",
      );
      // nor the workdir's lock file in fourwall's state (the last box on a workdir removes it)
      const locks = [
        `/run/fourwall/locks/${lockKey}.lock`,
        `${fx.home}/.local/state/fourwall/locks/${lockKey}.lock`,
      ];
      assert.deepEqual(
        locks.filter((p) => existsSync(p)),
        [],
      );
    });

    it("refuses a broken policy with file:line: field: reason and exit 125, running nothing", async () => {
      const fx = makeFixture(mode);
      writeFileSync(path.join(fx.workdir, "bad.yaml"), "filesystem:\n  hide: []\n  writeable: [/etc]\n");
      const r = await runInBox(fx, ["touch", "ran"], { flags: ["--policy", "bad.yaml"] });
      assert.equal(r.code, 125);
      assert.match(r.stderr, /bad\.yaml:3: filesystem\.writeable: unknown key "writeable"/);
      assert.equal(existsSync(path.join(fx.workdir, "ran")), false);
    });

    it("a symlink where a protected path is mounted: exit 125 naming the filesystem wall and the fix, not bwrap's raw exit 1", async () => {
      const fx = makeFixture(mode);
      // .git/hooks is mounted read-only (persistence): a dangling symlink there cannot be mounted
      const hooks = path.join(fx.workdir, ".git", "hooks");
      rmSync(hooks, { recursive: true, force: true });
      symlinkSync(path.join(fx.base, "no-such-dir"), hooks);
      const r = await runInBox(fx, ["touch", "ran"]);
      assert.equal(r.code, 125, r.stderr);
      assert.match(
        r.stderr,
        /the filesystem wall could not be built: bubblewrap could not build the box's filesystem: bwrap: Can't/,
      );
      assert.match(r.stderr, new RegExp(`fix: check ${hooks.replaceAll(".", "\\.")} on the host: .*symlink`));
      assert.equal(existsSync(path.join(fx.workdir, "ran")), false);
    });

    it("warns at exit about git repositories the box created, anywhere in the workdir, with their hooks (gate open)", async () => {
      const fx = makeFixture(mode);
      rmSync(path.join(fx.workdir, ".git"), { recursive: true, force: true });
      // The gate holds new repositories (gate.test.ts); with its rules all open they land, and then
      // fourwall names them at exit.
      writeFileSync(
        path.join(fx.workdir, "fourwall.yaml"),
        "gate:\n  fs:\n    default: allow\n    rules: []\n",
      );
      const r = await sh(
        fx,
        "git init -q . && echo 'echo evil' > .git/hooks/pre-commit && git init -q deep/er && echo x > deep/er/.git/hooks/post-checkout",
      );
      assert.match(r.stderr, /created git repositories/);
      assert.match(r.stderr, /\.git\/hooks\/pre-commit/);
      assert.match(r.stderr, /deep\/er\/\.git\/hooks\/post-checkout/);
    });

    it("refuses a missing workdir with exit 125 naming the wall", async () => {
      const fx = makeFixture(mode);
      const r = await runInBox(fx, ["true"], { flags: ["-w", "/no/such/dir"] });
      assert.equal(r.code, 125);
      assert.match(r.stderr, /filesystem wall/);
    });

    it("contains a real fork bomb; the host stays responsive and nothing remains", async () => {
      const fx = makeFixture(mode);
      writeFileSync(path.join(fx.workdir, "fourwall.yaml"), "isolation:\n  limits:\n    pids: 128\n");
      // The bomb runs in a subshell; the box's own shell then waits with builtins only (no fork: the
      // pids are all taken) and reports that it is still alive.
      const bomb = sh(
        fx,
        "(bomb() { bomb | bomb & }; bomb) 2>/dev/null; i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo survived",
        { timeoutMs: 60_000 },
      );
      // measure the host while the bomb rages (the box's shell is still counting)
      await sleep(400);
      const times: number[] = [];
      let done = false;
      void bomb.then(() => (done = true));
      for (let i = 0; i < 5 && !done; i++) {
        const t0 = performance.now();
        spawnSync("true");
        times.push(performance.now() - t0);
        await sleep(100);
      }
      const r = await bomb;
      assert.ok(times.length > 0, "measured the host while the bomb ran");
      assert.ok(
        Math.max(...times) < 1000,
        `host spawn took ${Math.max(...times).toFixed(0)} ms during the bomb`,
      );
      assert.match(r.stdout, /survived/, r.stderr.slice(0, 500));
      assert.equal(pgrep(fx.workdir), "", "no process of the box remains");
    });
  });
}

/** Every live descendant of a process (from /proc's parent links). */
function descendants(root: number): number[] {
  const parents = new Map<number, number>();
  for (const line of spawnSync("ps", ["-eo", "pid=,ppid="], { encoding: "utf8" }).stdout.trim().split("\n")) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    parents.set(pid!, ppid!);
  }
  const found: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parents) {
      if (parent !== p) continue;
      found.push(child);
      walk(child);
    }
  };
  walk(root);
  return found;
}
const alive = (pid: number) => existsSync(`/proc/${pid}`);

// The microVM box's life: the same contract through virtio-serial ports and a guest init. Boots
// take seconds under TCG emulation, so each test is one boot.
for (const mode of MODES) {
  describe(`microVM box lifecycle (${mode})`, { timeout: 600_000 }, () => {
    it("passes stdin through to the command and returns its exit status", () => {
      const fx = makeFixture(mode);
      const [program, ...args] = fourwallArgv(mode, [
        "run",
        "-r",
        "vm",
        "--",
        "sh",
        "-c",
        "tr a-z A-Z; exit 7",
      ]);
      const r = spawnSync(program!, args, {
        cwd: fx.workdir,
        env: fx.env,
        input: "hello vm\n",
        encoding: "utf8",
        timeout: 240_000,
      });
      assert.equal(r.stdout, "HELLO VM\n", r.stderr);
      assert.equal(r.status, 7, r.stderr);
    });

    it("forwards SIGTERM to the command; after a SIGKILL of fourwall nothing is left (QEMU, its box, the run dir)", async () => {
      const fx = makeFixture(mode);
      await checkSigtermForwarded(fx, ["-r", "vm"], 240_000);

      const killed = startInBox(fx, ["-r", "vm"], "echo ready; sleep 300");
      assert.ok(await waitFor(() => killed.out().includes("ready"), 240_000), "box started");
      const tree = descendants(killed.child.pid!);
      assert.ok(tree.length >= 3, "QEMU and its box run under fourwall");
      // this box's run dir (other boxes may run on the machine): an argument of its reaper, in the tree
      const mine = tree.flatMap((pid) => {
        const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
        return argv.includes("fourwall-reaper")
          ? argv.filter((a) => runDirs().includes(path.basename(a)))
          : [];
      });
      assert.equal(mine.length, 1, "the box's run dir among its reaper's arguments");
      killed.child.kill("SIGKILL");
      assert.ok(
        await waitFor(() => tree.every((p) => !alive(p)), 10_000),
        `still alive: ${tree.filter(alive)}`,
      );
      assert.ok(
        await waitFor(() => runDirs().every((d) => !mine.includes(d)), 10_000),
        "the run dir is gone",
      );
    });
  });
}
