/**
 * `fourwall run` through the box daemon (native/fourwall-run.c → src/box/daemon-run.ts): the same
 * box as the Node path (walls, exit status, stdio, env, cwd, signals), a fresh plan every run (a
 * `.env` made after the first run is still hidden), a killed daemon leaves nothing behind and the
 * next run works, another user cannot use the socket, and what the daemon does not take falls back.
 * Both launch modes. The client is run with a stub in place of the Node CLI, so a fallback shows.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { buildKey } from "../../src/core/build-key.js";
import {
  type Fixture,
  FOURWALL,
  MODES,
  makeFixture,
  ROOT,
  SECRET,
  USER_UID,
  userArgs,
} from "../helpers/box.js";

const CLIENT = path.join(ROOT, "native", "build", "fourwall-run");
const SHIM = path.join(ROOT, "bin", "fourwall");

/**
 * Each fixture's own state dir (FOURWALL_STATE_DIR: 0700, the mode's user's): its daemon is the
 * test's, never the machine's (nor another build's). The client is given its boxes dir.
 */
function isolate(fx: Fixture): void {
  const dir = path.join(fx.base, "state");
  mkdirSync(dir, { mode: 0o700 });
  if (fx.mode === "user") spawnSync("chown", [`${USER_UID}:${USER_UID}`, dir]);
  fx.env.FOURWALL_STATE_DIR = dir;
}
const stateDir = (fx: Fixture) => path.join(fx.env.FOURWALL_STATE_DIR!, "boxes");
const runSock = (fx: Fixture, root = ROOT) => path.join(stateDir(fx), `run-${buildKey(root)}.sock`);
const sockets = (fx: Fixture) => readdirSync(stateDir(fx)).filter((n) => n.endsWith(".sock"));

/** In place of the Node CLI: a fallback says so and exits 99. */
function stub(fx: Fixture): string {
  const file = path.join(fx.base, "fallback.sh");
  writeFileSync(file, 'echo FELL-BACK "$@" >&2; exit 99\n', { mode: 0o755 });
  return file;
}

function client(
  fx: Fixture,
  args: string[],
  o: { input?: string; uid?: number; dir?: string; client?: string } = {},
) {
  const argv = [
    ...(o.uid === undefined ? userArgs(fx.mode) : userArgs("user", o.uid)),
    o.client ?? CLIENT,
    o.dir ?? stateDir(fx),
    "/bin/sh",
    stub(fx),
    "--",
    ...args,
  ];
  const r = spawnSync(argv[0]!, argv.slice(1), {
    cwd: fx.workdir,
    env: fx.env,
    input: o.input ?? "",
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function startClient(fx: Fixture, args: string[]): ChildProcess {
  const argv = [...userArgs(fx.mode), CLIENT, stateDir(fx), "/bin/sh", stub(fx), "--", ...args];
  return spawn(argv[0]!, argv.slice(1), { cwd: fx.workdir, env: fx.env, stdio: ["ignore", "pipe", "pipe"] });
}

/** The pid listening on the run socket of the build at `root` (ss names it). */
function daemonPid(fx: Fixture, root = ROOT): number | undefined {
  const out = spawnSync("ss", ["-Hxlp"], { encoding: "utf8" }).stdout;
  const line = out.split("\n").find((l) => l.includes(`${runSock(fx, root)} `));
  const m = line && /pid=(\d+)/.exec(line);
  return m ? Number(m[1]) : undefined;
}

/** Starts the mode's daemon with the fixture's environment; false when another one serves (root). */
async function startDaemon(fx: Fixture): Promise<boolean> {
  const argv = [...userArgs(fx.mode), process.execPath, FOURWALL, "box-daemon", "--for-run"];
  spawn(argv[0]!, argv.slice(1), { env: fx.env, detached: true, stdio: "ignore", cwd: "/" }).unref();
  // a killed daemon's socket file may still be there: wait for a listener
  for (let i = 0; i < 200 && daemonPid(fx) === undefined; i++) await sleep(50);
  return daemonPid(fx) !== undefined && client(fx, ["true"]).code === 0;
}

const boxProcesses = (marker: string) =>
  spawnSync("pgrep", ["-f", marker], { encoding: "utf8" }).stdout.trim();
/** The run dir of the box whose command holds `marker` (its bwrap's argv binds files from it). */
const runDirOf = (marker: string) => {
  const ps = spawnSync("ps", ["-eo", "args"], { encoding: "utf8" }).stdout;
  const line = ps.split("\n").find((l) => l.startsWith("bwrap ") && l.includes(marker));
  return line ? /(\/tmp\/fourwall-[0-9a-f]{8}-\w+)\//.exec(line)?.[1] : undefined;
};

for (const mode of MODES) {
  describe(`run through the box daemon (${mode})`, () => {
    let fx: Fixture;
    let ours = false;
    before(async () => {
      fx = makeFixture(mode);
      isolate(fx);
      ours = await startDaemon(fx);
    });
    after(async () => {
      const pid = ours ? daemonPid(fx) : undefined;
      if (pid) process.kill(pid, "SIGTERM");
      for (let i = 0; i < 100 && pid && existsSync(`/proc/${pid}`); i++) await sleep(50);
      // as root, the gate's layers dir is bound onto itself nosuid,nodev (walls/gate/layer.ts)
      spawnSync("umount", [path.join(fx.env.FOURWALL_STATE_DIR!, "layers")], { stdio: "ignore" });
    });

    it("runs the box with its walls: exit status, stdout, stderr, stdin, env, cwd", (t) => {
      if (!ours) return t.skip("another daemon serves this user's runs");
      const r = client(
        fx,
        [
          "--",
          "sh",
          "-c",
          "pwd; id -u; cat .env ~/.ssh/id_ed25519 2>&1; env; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; tr a-z A-Z; echo to-stderr >&2; exit 7",
        ],
        { input: "piped\n" },
      );
      assert.equal(r.code, 7, r.stderr);
      assert.doesNotMatch(r.stderr, /FELL-BACK/);
      assert.match(r.stdout, new RegExp(`^${fx.workdir}$`, "m"));
      // as root, a box uid of its own from 70000-70999 (another box on the machine may hold 70000)
      assert.match(r.stdout, mode === "root" ? /^70\d\d\d$/m : new RegExp(`^${USER_UID}$`, "m"));
      assert.doesNotMatch(r.stdout, new RegExp(SECRET), "no secret: files covered, env scrubbed");
      assert.match(r.stdout, /^HTTPS_PROXY=/m, "the box's proxy variables");
      assert.match(r.stdout, /CapEff:\s*0+\n/);
      assert.match(r.stdout, /NoNewPrivs:\s*1/);
      assert.match(r.stdout, /Seccomp:\s*2/);
      assert.match(r.stdout, /^PIPED$/m);
      assert.equal(r.stderr, "to-stderr\n");
    });

    it("plans afresh: a .env made after a run is hidden in the next one; egress is the box's proxy", (t) => {
      if (!ours) return t.skip("another daemon serves this user's runs");
      assert.equal(client(fx, ["true"]).code, 0);
      mkdirSync(path.join(fx.workdir, "later"), { recursive: true });
      writeFileSync(path.join(fx.workdir, "later", ".env"), `TOKEN=${SECRET}\n`);
      if (mode === "user")
        spawnSync("chown", ["-R", `${USER_UID}:${USER_UID}`, path.join(fx.workdir, "later")]);
      const r = client(fx, [
        "sh",
        "-c",
        "cat later/.env; curl -s -m 5 -o /dev/null -w 'http=%{http_code}\\n' http://unlisted.test/",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, new RegExp(SECRET));
      assert.match(r.stdout, /http=403/);
    });

    it("no descriptor the caller or the daemon holds reaches the box (with and without the gate's layer)", (t) => {
      if (!ours) return t.skip("another daemon serves this user's runs");
      const held = path.join(fx.base, "held-secret");
      writeFileSync(held, `${SECRET} held-fd\n`, { mode: 0o600 });
      const noLayer = path.join(fx.base, "no-layer.yaml");
      writeFileSync(noLayer, "gate:\n  fs:\n    default: allow\n    rules: []\n", { mode: 0o644 });
      const readAll =
        "import os\nfor fd in range(3, 1024):\n    try:\n        print(fd, os.pread(fd, 200, 0))\n    except OSError:\n        pass\nprint('read-all')";
      for (const policy of [[], ["-p", noLayer]]) {
        const argv = [
          ...userArgs(fx.mode),
          CLIENT,
          stateDir(fx),
          "/bin/sh",
          stub(fx),
          "--",
          ...policy,
          "--",
          "python3",
          "-c",
          readAll,
        ];
        // a root shell opens the secret on fds 42 and 200, then becomes the mode's user
        const r = spawnSync(
          "bash",
          ["-c", 'exec 42<"$1" 200<"$1"; shift; exec "$@"', "caller", held, ...argv],
          {
            cwd: fx.workdir,
            env: fx.env,
            encoding: "utf8",
            timeout: 60_000,
          },
        );
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /read-all/);
        assert.doesNotMatch(
          r.stdout,
          new RegExp(SECRET),
          `${policy.join(" ")}: a held descriptor reached the box`,
        );
      }
    });

    it("passes a signal to the command and its exit status back", async (t) => {
      if (!ours) return t.skip("another daemon serves this user's runs");
      const c = startClient(fx, [
        "sh",
        "-c",
        'trap "echo got-TERM; exit 7" TERM; echo ready; while :; do sleep 0.1; done',
      ]);
      let out = "";
      c.stdout!.on("data", (d) => (out += d));
      for (let i = 0; i < 300 && !out.includes("ready"); i++) await sleep(50);
      assert.match(out, /ready/);
      c.kill("SIGTERM");
      const code = await new Promise((r) => c.once("close", r));
      assert.equal(code, 7);
      assert.match(out, /got-TERM/);
    });

    it("a killed daemon leaves nothing behind, and the next run works", async (t) => {
      if (!ours) return t.skip("another daemon serves this user's runs");
      const marker = `fw-daemon-kill-${mode}-${process.pid}`;
      const c = startClient(fx, ["sh", "-c", `echo ready; exec sleep 300 # ${marker}`]);
      let out = "";
      c.stdout!.on("data", (d) => (out += d));
      for (let i = 0; i < 300 && !out.includes("ready"); i++) await sleep(50);
      const pid = daemonPid(fx);
      assert.ok(pid, "the daemon listens");
      const runDir = runDirOf(marker);
      assert.ok(runDir, "the box's run dir (named in bwrap's argv)");
      process.kill(pid, "SIGKILL");
      const code = await new Promise((r) => c.once("close", r));
      assert.equal(code, 125, "the client says the box ended");
      for (let i = 0; i < 100 && (boxProcesses(marker) || existsSync(runDir!)); i++) await sleep(100);
      assert.equal(boxProcesses(marker), "", "the box died with the daemon");
      assert.equal(existsSync(runDir!), false, "the reaper removed the run dir");
      // a stale socket: the client falls back to the Node CLI (here the stub), which starts a new daemon
      assert.match(client(fx, ["true"]).stderr, /FELL-BACK/);
      ours = await startDaemon(fx);
      assert.ok(ours, "a new daemon serves the next run");
      const shim = spawnSync(...shimArgv(fx, ["--", "sh", "-c", "echo again"]));
      assert.equal(shim.stdout, "again\n");
      const key = buildKey(ROOT);
      assert.deepEqual(
        sockets(fx).sort(),
        [`daemon-${key}.sock`, `run-${key}.sock`],
        "only the new daemon's sockets",
      );
    });

    it("a daemon ended by SIGTERM, SIGINT or SIGHUP removes its sockets", async (t) => {
      for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
        if (!ours) return t.skip("another daemon serves this user's runs");
        assert.equal(client(fx, ["true"]).code, 0);
        const pid = daemonPid(fx);
        assert.ok(pid, "the daemon listens");
        process.kill(pid, sig);
        for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(50);
        assert.equal(existsSync(`/proc/${pid}`), false, `the daemon ended on ${sig}`);
        assert.deepEqual(sockets(fx), [], `no socket left after ${sig}`);
        ours = await startDaemon(fx);
      }
    });

    it("two builds do not share a daemon; a daemon whose build changed leaves", async (t) => {
      if (!ours) return t.skip("another daemon serves this user's runs");
      // build B: a copy of this one (its own files: another key), in a dir the mode's user can read
      const copy = path.join(fx.base, "build-b");
      for (const part of ["package.json", "bin", "dist", "native/build"]) {
        mkdirSync(path.dirname(path.join(copy, part)), { recursive: true });
        cpSync(path.join(ROOT, part), path.join(copy, part), { recursive: true });
      }
      symlinkSync(path.join(ROOT, "node_modules"), path.join(copy, "node_modules"));
      assert.notEqual(buildKey(copy), buildKey(ROOT));
      const clientB = path.join(copy, "native", "build", "fourwall-run");
      // A's daemon is up: B's client does not use it (no daemon of B's: the Node path, here the stub)
      const a = daemonPid(fx);
      assert.ok(a, "A's daemon listens");
      const r = client(fx, ["true"], { client: clientB });
      assert.equal(r.code, 99, "B's run went the Node way");
      assert.match(r.stderr, /FELL-BACK/);
      // B's shim: its Node path starts B's daemon beside A's; the next run of B is served by it
      const shimB = path.join(copy, "bin", "fourwall");
      const runB = () => spawnSync(...shimArgv(fx, ["--", "sh", "-c", "echo from-b"], shimB)).stdout;
      assert.equal(runB(), "from-b\n");
      for (let i = 0; i < 200 && daemonPid(fx, copy) === undefined; i++) await sleep(50);
      const b = daemonPid(fx, copy);
      assert.ok(b && b !== a, "B has a daemon of its own");
      assert.equal(client(fx, ["true"], { client: clientB }).code, 0, "B's client uses B's daemon");
      assert.equal(client(fx, ["true"]).code, 0, "A's client still uses A's");
      assert.equal(daemonPid(fx), a);
      // B rebuilt (its bundle rewritten): B's idle daemon leaves, its sockets with it
      const bundle = path.join(copy, "dist", "fourwall.js");
      writeFileSync(bundle, readFileSync(bundle));
      for (let i = 0; i < 200 && existsSync(`/proc/${b}`); i++) await sleep(50);
      assert.equal(existsSync(`/proc/${b}`), false, "the outdated daemon left");
      assert.equal(daemonPid(fx), a, "A's daemon is untouched");
    });

    it("another user cannot use the socket; root's client refuses a daemon that is not root's", (t) => {
      if (!ours) return t.skip("another daemon serves this user's runs");
      const other = client(fx, ["true"], { uid: mode === "root" ? USER_UID : USER_UID - 1 });
      assert.equal(other.code, 99, "the connection is refused: the Node path");
      assert.match(other.stderr, /FELL-BACK/);
      if (mode === "user") {
        const root = spawnSync(CLIENT, [stateDir(fx), "/bin/sh", stub(fx), "--", "true"], {
          encoding: "utf8",
          cwd: "/",
        });
        assert.equal(root.status, 125);
        assert.match(root.stderr, /not this user's/);
      }
    });

    it("falls back for what the daemon does not take", (t) => {
      if (!ours) return t.skip("another daemon serves this user's runs");
      const r = client(fx, ["--dry-run", "--", "true"]);
      assert.equal(r.code, 99);
      assert.match(r.stderr, /FELL-BACK run --dry-run -- true/);
      assert.equal(client(fx, ["-r", "gvisor", "true"]).code, 99);
      assert.equal(client(fx, ["true"], { dir: path.join(fx.base, "none") }).code, 99);
    });

    it("a terminal: the shim's run works on a tty (the gate may ask there: the Node path)", (t) => {
      if (!ours) return t.skip("another daemon serves this user's runs");
      const [cmd, args, opts] = shimArgv(fx, ["--", "sh", "-c", "test -t 0 && echo on-a-tty"]);
      const line = [cmd, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
      const r = spawnSync("script", ["-qec", line, "/dev/null"], { ...opts, input: "" });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /on-a-tty/);
    });
  });
}

function shimArgv(fx: Fixture, args: string[], shim = SHIM) {
  const argv = [...userArgs(fx.mode), shim, "run", ...args];
  return [
    argv[0]!,
    argv.slice(1),
    { cwd: fx.workdir, env: fx.env, encoding: "utf8" as const, timeout: 60_000 },
  ] as const;
}
