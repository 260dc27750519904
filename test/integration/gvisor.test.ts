/**
 * `--runtime gvisor` beyond the wall catalogue (whose isolation and filesystem checks, gVisor's own
 * kernel and seccomp leftovers included, run on gVisor in walls.test.ts's matrix): the egress wall
 * through runsc's --network=none, and the box's life under runsc (exit status, stdio, terminal,
 * signals, runsc's processes and what is left after SIGKILL), for both ways fourwall is launched.
 * Skipped, with the reason, where runsc is not installed.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { which } from "../../src/core/paths.js";
import {
  checkSigtermForwarded,
  fourwallArgv,
  MODES,
  makeFixture,
  runDirs,
  runInBox,
  sh,
  USER_UID,
  waitFor,
} from "../helpers/box.js";
import { type HostCanaries, startHostCanaries } from "../helpers/host-canaries.js";

const RUNSC = which("runsc", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
const skip = RUNSC ? false : "runsc is not installed (apt-get install runsc, or npm run setup)";
const G = { flags: ["-r", "gvisor"], timeoutMs: 40_000 };

/** Host processes whose command line mentions `needle`, with their uid. */
function processesWith(needle: string): { pid: number; uid: number; cmd: string }[] {
  const out: { pid: number; uid: number; cmd: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ");
      if (!cmd.includes(needle) || cmd.includes("node:test")) continue;
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${name}/status`, "utf8"))?.[1]);
      out.push({ pid: Number(name), uid, cmd });
    } catch {}
  }
  return out;
}

// --- the allowlisted origin of the egress checks, on the host's loopback

let canaries: HostCanaries;
let originPort = 0;
before(async () => {
  if (skip) return;
  canaries = await startHostCanaries("gv");
  ({ originPort } = canaries);
});
after(() => canaries?.close());

for (const mode of MODES) {
  describe(`gvisor: egress wall (${mode})`, { skip, concurrency: 2 }, () => {
    const flags = () => [
      ...G.flags,
      "-a",
      `allowed.test:${originPort}`,
      "--resolve",
      "allowed.test=127.0.0.1",
      "--resolve",
      "other.test=127.0.0.1",
    ];

    it("lets an allowlisted origin through the proxy (curl, python), body checked", async () => {
      const fx = makeFixture(mode);
      const r = await sh(
        fx,
        `curl -s -m 5 http://allowed.test:${originPort}/curl; echo; ` +
          `/usr/bin/python3 -c 'import urllib.request; print(urllib.request.urlopen("http://allowed.test:${originPort}/py", timeout=5).read().decode())'`,
        { ...G, flags: flags() },
      );
      assert.match(r.stdout, /origin-body \/curl/, r.stderr);
      assert.match(r.stdout, /origin-body \/py/, r.stderr);
    });

    it("keeps the bridge to the proxy through a Ctrl-C sent to the command's process group", async () => {
      const fx = makeFixture(mode);
      const r = await sh(
        fx,
        // the command ignores it (it is the box's pid 1 here); the old relay, in its group, died of it
        `trap '' INT; kill -INT 0; sleep 0.2; curl -s -m 5 http://allowed.test:${originPort}/after-int`,
        { ...G, flags: flags() },
      );
      assert.match(r.stdout, /origin-body \/after-int/, r.stderr);
    });

    it("refuses an unlisted host with a 403 and the reason, and says so at exit", async () => {
      const fx = makeFixture(mode);
      const r = await sh(fx, `curl -s -m 5 -o /dev/null -D - http://other.test:${originPort}/`, {
        ...G,
        flags: flags(),
      });
      assert.match(r.stdout, /403/);
      assert.match(r.stdout, /X-Fourwall-Denied: not-allowed/i);
      assert.match(r.stderr, /egress blocked 1 request/);
    });

    it("has no way out but the proxy: no direct connection, no interface but lo, no resolver, no tampering", async () => {
      const fx = makeFixture(mode);
      const r = await sh(
        fx,
        `curl -s -m 3 --noproxy '*' http://127.0.0.1:${originPort}/direct; echo; ` +
          `python3 -c 'import socket; s=socket.socket(); s.settimeout(2); s.connect(("127.0.0.1", ${originPort})); print("CONNECTED")' 2>/dev/null; ` +
          "echo links=$(ip -o link | grep -vc ' lo:'); getent hosts example.com >/dev/null && echo RESOLVED; " +
          "ip link add fw0 type dummy 2>/dev/null && echo TAMPERED; ip route add 10.99.0.0/16 dev lo 2>/dev/null && echo TAMPERED; true",
        { ...G, flags: flags() },
      );
      assert.doesNotMatch(r.stdout, /origin-body|CONNECTED|RESOLVED|TAMPERED/, r.stdout + r.stderr);
      assert.match(r.stdout, /links=0/, r.stdout + r.stderr);
    });
  });

  describe(`gvisor: the box's life (${mode})`, { skip }, () => {
    it("holds deletes and overwrites of pre-existing files for the approval gate (a denying approver keeps them)", async () => {
      const fx = makeFixture(mode);
      const r = await sh(
        fx,
        "rm -f README.md; echo changed > .bashrc-in-work; echo overwritten > README.md.bak 2>/dev/null; echo new > fresh.txt",
        {
          ...G,
          flags: [...G.flags, "--approver", "false"],
        },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        readFileSync(path.join(fx.workdir, "README.md"), "utf8"),
        "# project\n",
        "the delete was applied without a yes",
      );
      assert.equal(readFileSync(path.join(fx.workdir, "fresh.txt"), "utf8"), "new\n", "new files land");
      assert.match(r.stderr, /kept the originals/);
    });

    it("returns the command's own exit status; 125 (named before launch) for a missing program", async () => {
      const fx = makeFixture(mode);
      assert.equal((await sh(fx, "exit 7", G)).code, 7);
      assert.equal((await runInBox(fx, ["/no/such/program"], G)).code, 125);
    });

    it("passes stdin and stdout through pipes, and appends to a regular file instead of overwriting it", () => {
      const fx = makeFixture(mode);
      const [program, ...args] = fourwallArgv(mode, ["run", "-r", "gvisor", "--", "tr", "a-z", "A-Z"]);
      const r = spawnSync(program!, args, {
        cwd: fx.workdir,
        env: fx.env,
        input: "hello box\n",
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.equal(r.stdout, "HELLO BOX\n", r.stderr);
      const out = path.join(fx.workdir, "log.txt");
      writeFileSync(out, "written before\n");
      const shell = `${fourwallArgv(mode, [
        "run",
        "-r",
        "gvisor",
        "--",
        "sh",
        "-c",
        "echo from-box; echo err-box >&2",
      ])
        .map((a) => `'${a}'`)
        .join(" ")} >> log.txt 2>&1`;
      spawnSync("/bin/sh", ["-c", shell], { cwd: fx.workdir, env: fx.env, timeout: 30_000 });
      const lines = readFileSync(out, "utf8")
        .split("\n")
        .filter((l) => !l.startsWith("fourwall")); // fourwall's own notes
      assert.equal(lines.sort().join("\n"), ["", "err-box", "from-box", "written before"].join("\n"));
    });

    it("gives the box the terminal when there is one, and Ctrl-C reaches the command", async () => {
      const fx = makeFixture(mode);
      writeFileSync(
        path.join(fx.workdir, "tty.sh"),
        "test -t 0 && test -t 1 && echo IS-A-TTY; stty size; trap 'echo got-int; exit 4' INT; echo ready; while :; do sleep 0.1; done\n",
      );
      const inner = fourwallArgv(mode, ["run", "-r", "gvisor", "--", "sh", "tty.sh"]);
      // after the box: is the terminal still blocking? (gVisor leaves O_NONBLOCK on what it is given)
      const after = `python3 -c 'import fcntl, os; print("nonblock", fcntl.fcntl(0, fcntl.F_GETFL) & os.O_NONBLOCK)'`;
      // The shell around fourwall must outlive the Ctrl-C, as an interactive shell would.
      const child = spawn(
        "script",
        [
          "-qec",
          `trap : INT; stty rows 33 cols 91; ${inner.join(" ")}; echo status=$?; ${after}`,
          "/dev/null",
        ],
        {
          cwd: fx.workdir,
          env: { ...fx.env, TERM: "xterm" },
          stdio: ["pipe", "pipe", "pipe"],
        },
      );
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      const closed = new Promise((r) => child.on("close", r));
      try {
        assert.ok(await waitFor(() => out.includes("ready"), 20_000), `box started: ${out}`);
        child.stdin.write("\x03");
        await closed;
      } finally {
        child.kill("SIGKILL");
      }
      assert.match(out, /IS-A-TTY/, out);
      assert.match(out, /33 91/, out);
      // Ctrl-C reaches the box through its own pty. The command's trap runs (status 4), or — root
      // mode, where runsc sits in the pty's foreground group too — the interrupt ends the box
      // first (a known limit: docs/THREAT-MODEL.md, the caller's terminal).
      assert.match(
        out,
        mode === "user" ? /got-int[\s\S]*status=4/ : /got-int[\s\S]*status=4|status=(130|255)/,
        out,
      );
      assert.match(out, /nonblock 0/, out);
    });

    it("forwards SIGTERM to the command and reports its status", async () => {
      await checkSigtermForwarded(makeFixture(mode), ["-r", "gvisor"], 20_000);
    });

    it(`runs every runsc process as ${mode === "root" ? "the box uid, never host root" : "the launching user"}; leaves nothing behind after SIGKILL`, async (t) => {
      const fx = makeFixture(mode);
      const audit = path.join(fx.home, "audit.jsonl");
      const [program, ...args] = fourwallArgv(mode, [
        "run",
        "-r",
        "gvisor",
        "--audit",
        audit,
        "--",
        "sh",
        "-c",
        "echo ready; sleep 30",
      ]);
      const child = spawn(program!, args, {
        cwd: fx.workdir,
        env: fx.env,
        stdio: ["ignore", "pipe", "ignore"],
      });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      t.after(() => child.kill("SIGKILL")); // a failed assertion must not leave the box running
      assert.ok(await waitFor(() => out.includes("ready"), 20_000), "box started");
      // this box's id, from its audit log (other boxes may be running on this host)
      const boxId = JSON.parse(readFileSync(audit, "utf8").split("\n")[0]!).box as string;
      const runDir = runDirs().find((d) => d.startsWith(`fourwall-${boxId}-`));
      assert.ok(runDir, "a run dir");
      const needle = path.join(os.tmpdir(), runDir, "gvisor");
      const procs = processesWith(needle);
      assert.ok(procs.length >= 3, `runsc, its gofer and sandbox: ${JSON.stringify(procs)}`);
      // as root, the box's own uid (70000-70999: another box on the host may hold 70000)
      const boxUid = procs[0]!.uid;
      if (mode === "root") assert.ok(boxUid >= 70000 && boxUid < 71000, `${boxUid} is a box uid`);
      for (const p of procs) assert.equal(p.uid, mode === "root" ? boxUid : USER_UID, p.cmd);
      child.kill("SIGKILL");
      assert.ok(
        await waitFor(() => processesWith(needle).length === 0, 10_000),
        `runsc processes left: ${JSON.stringify(processesWith(needle))}`,
      );
      assert.ok(
        await waitFor(() => !existsSync(path.join(os.tmpdir(), runDir)), 5_000),
        "the run dir (bundle, runsc state) is gone",
      );
      assert.ok(
        await waitFor(() => !existsSync(path.join(fx.workdir, ".mcp.json")), 5_000),
        "placeholders are gone",
      );
      const cgroups = spawnSync("find", ["/sys/fs/cgroup", "-maxdepth", "4", "-name", `fourwall-${boxId}`], {
        encoding: "utf8",
      }).stdout.trim();
      assert.ok(
        await waitFor(
          () =>
            spawnSync("find", ["/sys/fs/cgroup", "-maxdepth", "4", "-name", `fourwall-${boxId}`], {
              encoding: "utf8",
            }).stdout.trim() === "",
          5_000,
        ),
        `cgroups left: ${cgroups}`,
      );
    });

    it("a box runsc cannot build is exit 125, and nothing runs", async () => {
      const fx = makeFixture(mode);
      const r = await runInBox(fx, ["touch", "ran"], { ...G, env: { FOURWALL_RUNSC_LOG: "/no/such/dir" } });
      assert.equal(r.code, 125, r.stderr);
      assert.match(r.stderr, /isolation wall could not be built: runsc could not build the box/);
      assert.equal(existsSync(path.join(fx.workdir, "ran")), false);
    });
  });
}
