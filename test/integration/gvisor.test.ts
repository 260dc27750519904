/**
 * `--runtime gvisor`, attacked from inside a real gVisor box, for both ways fourwall is launched:
 * the isolation, filesystem and egress walls of walls.test.ts and egress-box.test.ts, what gVisor
 * itself adds (its own kernel), and the box's life (exit status, stdio, terminal, signals,
 * nothing left after SIGKILL). Skipped, with the reason, where runsc is not installed.
 * A few checks also run against a deliberately broken gVisor box (the same bundle with one
 * protection removed) to show they see the hole under this runtime too.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { which } from "../../src/core/paths.js";
import {
  checkSigtermForwarded,
  type Fixture,
  fourwallArgv,
  MODES,
  type Mode,
  makeFixture,
  type Result,
  ROOT,
  runDirs,
  runInBox,
  SECRET,
  sh,
  USER_UID,
  userArgs,
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
// --- a deliberately broken gVisor box: the same plan and bundle, one protection removed

const TSX_LOADER = pathToFileURL(path.join(ROOT, "node_modules", "tsx", "dist", "loader.mjs")).href;
const WEAK_GVISOR = `
import os from "node:os";
import { planBox } from ${JSON.stringify(pathToFileURL(path.join(ROOT, "src/plan/plan.ts")).href)};
import { superviseBox } from ${JSON.stringify(pathToFileURL(path.join(ROOT, "src/box/supervisor.ts")).href)};
import { loadPolicy } from ${JSON.stringify(pathToFileURL(path.join(ROOT, "src/policy/load.ts")).href)};
import { AuditLog } from ${JSON.stringify(pathToFileURL(path.join(ROOT, "src/audit/log.ts")).href)};
import { GvisorRuntime } from ${JSON.stringify(pathToFileURL(path.join(ROOT, "src/runtimes/gvisor.ts")).href)};
import { realHost } from ${JSON.stringify(pathToFileURL(path.join(ROOT, "src/walls/filesystem/host.ts")).href)};
const [weaken, ...command] = process.argv.slice(1);
const { policy, egress } = loadPolicy({ cwd: process.cwd() });
const plan = planBox(policy, { command, workdir: process.cwd(), home: os.homedir(), hostUid: process.getuid(), hostGid: process.getgid(),
  hostEnv: process.env, host: realHost, egress });
const ALL = ["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_NET_ADMIN", "CAP_SYS_PTRACE"];
const runtime = new GvisorRuntime({ transformSpec: (spec) => {
  if (weaken === "seccomp") spec.linux.seccomp.syscalls = [];
  if (weaken === "secrets") spec.mounts = spec.mounts.filter((m) => !(m.source.endsWith("/empty") || (m.type === "tmpfs" && m.options.includes("ro"))));
  if (weaken === "caps") spec.process.capabilities = { bounding: ALL, effective: ALL, inheritable: ALL, permitted: ALL, ambient: ALL };
  return spec;
} });
process.exitCode = await superviseBox(plan, runtime, { audit: new AuditLog(undefined) });
`;

function weakGvisor(fx: Fixture, weaken: string, script: string): Promise<Result> {
  const argv = [
    ...userArgs(fx.mode),
    process.execPath,
    "--import",
    TSX_LOADER,
    "--input-type=module",
    "-e",
    WEAK_GVISOR,
    "--",
    weaken,
    "/bin/sh",
    "-c",
    script,
  ];
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: fx.workdir,
      env: { ...fx.env, NODE_PATH: path.join(ROOT, "node_modules") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 40_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// --- host-side canaries the box must not reach

let canaries: HostCanaries;
let loopbackPort = 0;
let originPort = 0;
let socketPaths: string[] = [];
before(async () => {
  if (skip) return;
  canaries = await startHostCanaries("gv");
  ({ loopbackPort, originPort, socketPaths } = canaries);
});
after(() => canaries?.close());

interface Check {
  name: string;
  script: (fx: Fixture) => string;
  hole: (r: Result, fx: Fixture) => string | undefined;
  prepare?: (fx: Fixture) => void;
  /** The broken gVisor box the check must catch (see WEAK_GVISOR), where there is one. */
  weaken?: "seccomp" | "secrets" | "caps";
  onlyIn?: { mode: Mode; why: string };
}

const leaks = (r: Result) => (r.stdout.includes(SECRET) ? "a planted secret was read" : undefined);

const checks: Check[] = [
  {
    name: "runs on gVisor's kernel, not the host's (uname, /proc/version; dmesg is refused like on the host)",
    script: () => "uname -a; cat /proc/version; dmesg 2>&1 | head -3",
    hole: (r) => {
      if (r.stdout.includes(os.release())) return `sees the host kernel ${os.release()}`;
      // gVisor's fixed kernel identity; syslog(2) is denied by fourwall's seccomp rules
      if (!r.stdout.includes("Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016"))
        return "not gVisor's /proc/version";
      return /Operation not permitted/.test(r.stdout) ? undefined : "dmesg was readable";
    },
  },
  {
    name: "cannot write to ~/.ssh",
    script: () => "echo pwn > ~/.ssh/pwn; mkdir -p ~/.ssh; echo pwn > ~/.ssh/authorized_keys",
    hole: (_r, fx) =>
      existsSync(path.join(fx.home, ".ssh/pwn")) || existsSync(path.join(fx.home, ".ssh/authorized_keys"))
        ? "a file appeared in the host's ~/.ssh"
        : undefined,
  },
  {
    name: "cannot read planted secrets (~/.ssh, ~/.aws, ~/.config/gcloud, ~/.netrc, .env)",
    script: () =>
      "cat ~/.ssh/id_* ~/.aws/credentials ~/.config/gcloud/credentials.db ~/.netrc .env 2>&1; echo ~/.* ~/.ssh/*",
    hole: leaks,
    weaken: "secrets",
  },
  {
    name: "gets no secret variables from the host environment",
    script: () => "env",
    hole: (r) =>
      r.stdout.includes(SECRET) || r.stdout.includes("SSH_AUTH_SOCK")
        ? "a host secret variable passed"
        : undefined,
  },
  {
    name: "cannot change or delete files outside the workdir",
    script: (fx) =>
      `echo changed > ${fx.outside}; rm -f ${fx.outside} ~/.bashrc; echo x > /etc/fourwall-gv-pwn; echo x > /usr/fourwall-gv-pwn`,
    hole: (_r, fx) =>
      !existsSync(fx.outside) ||
      readFileSync(fx.outside, "utf8") !== "outside the workdir\n" ||
      existsSync("/etc/fourwall-gv-pwn") ||
      existsSync("/usr/fourwall-gv-pwn")
        ? "a host file outside the workdir changed"
        : undefined,
  },
  {
    name: "cannot write through a symlink leading out of the workdir",
    script: () => "ln -sf ~/.bashrc link && echo evil >> link; ln -sf ~/.ssh/id_ed25519 key && cat key",
    hole: (r, fx) =>
      leaks(r) ??
      (readFileSync(path.join(fx.home, ".bashrc"), "utf8").includes("evil")
        ? "wrote ~/.bashrc through a symlink"
        : undefined),
  },
  {
    name: "cannot reach the host through /proc/<pid>/root or cwd",
    script: (fx) =>
      `for p in /proc/*/root /proc/*/cwd; do cat $p${fx.home}/.ssh/id_ed25519 2>/dev/null; done; cat /proc/1/root${fx.home}/.ssh/id_ed25519 2>&1`,
    hole: leaks,
  },
  {
    name: "cannot plant git hooks, git config, MCP servers or editor tasks",
    script: () =>
      "mkdir -p .git/hooks; echo evil > .git/hooks/pre-commit; echo '[core] hooksPath=/tmp' >> .git/config; " +
      `echo '{"mcpServers":{"x":{"command":"sh"}}}' > .mcp.json; mkdir -p .vscode; echo '{}' > .vscode/tasks.json; echo evil > .envrc`,
    hole: (_r, fx) => {
      const w = (p: string) => path.join(fx.workdir, p);
      if (existsSync(w(".git/hooks/pre-commit"))) return "created .git/hooks/pre-commit";
      if (readFileSync(w(".git/config"), "utf8").includes("hooksPath")) return "changed .git/config";
      if (existsSync(w(".mcp.json")) || existsSync(w(".vscode")) || existsSync(w(".envrc")))
        return "created a persistence file";
      return undefined;
    },
  },
  {
    name: "has no capabilities, no_new_privs and a seccomp filter",
    // gVisor's /proc/self/status has no NoNewPrivs line: ask prctl(PR_GET_NO_NEW_PRIVS).
    script: () =>
      "grep -E '^(CapEff|Seccomp):' /proc/self/status; python3 -c 'import ctypes; print(\"NoNewPrivs:\", ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))'",
    hole: (r) => {
      if (!/CapEff:\s*0+\n/.test(r.stdout)) return "capabilities held";
      if (!/NoNewPrivs:\s*1/.test(r.stdout)) return "no_new_privs off";
      if (!/Seccomp:\s*2/.test(r.stdout)) return "no seccomp filter";
      return undefined;
    },
    weaken: "caps",
  },
  {
    name: "root-only host files stay unreadable",
    script: () => "head -c 64 /etc/shadow && echo READ-SHADOW",
    hole: (r) => (r.stdout.includes("READ-SHADOW") ? "read /etc/shadow" : undefined),
  },
  {
    name: "cannot see host processes",
    script: () => "cat /proc/1/comm; echo /proc/[0-9]* | wc -w",
    hole: (r) => {
      const [comm, count] = r.stdout.trim().split("\n");
      return Number(count) > 10 || comm === "systemd" || comm === "init"
        ? `sees host processes (pid 1 is ${comm}, ${count} pids)`
        : undefined;
    },
  },
  {
    name: "cannot make new namespaces (unshare, user namespaces)",
    script: () => "unshare -U true && echo UNSHARED; unshare -r -n true && echo UNSHARED",
    hole: (r) => (r.stdout.includes("UNSHARED") ? "created a namespace" : undefined),
    weaken: "seccomp",
  },
  {
    name: "the seccomp rules left to gVisor's kernel hold (clone3, personality, x32), threads still work",
    script: () => `/usr/bin/python3 -c '
import ctypes, os, socket, threading
libc = ctypes.CDLL(None, use_errno=True); libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(nr, *[ctypes.c_long(x) for x in a]); return 0 if r >= 0 else ctypes.get_errno()
print("clone3", sc(435, 0, 0))
print("personality", sc(135, 0x40000), sc(135, 0x400000))
print("x32", sc(0x40000000 | 39))
try:
    socket.socket(16, 3, 15); print("uevent allowed")
except OSError as e: print("uevent", e.errno)
t = threading.Thread(target=lambda: print("thread ran")); t.start(); t.join()
'`,
    hole: (r) => {
      if (!/clone3 38\b/.test(r.stdout)) return "clone3 did not fail with ENOSYS";
      if (!/personality [1-9]\d* [1-9]\d*/.test(r.stdout)) return "a persona was set";
      if (!/x32 38\b/.test(r.stdout)) return "x32 syscalls served";
      if (!/uevent 1\b/.test(r.stdout))
        return "the OCI profile is not in force (netlink uevent socket allowed)";
      if (!r.stdout.includes("thread ran")) return "threads broken";
      return undefined;
    },
  },
  {
    name: "cannot reach host unix sockets (/run, /tmp)",
    script: () => `/usr/bin/python3 -c '
import socket
for p in ${JSON.stringify(socketPaths)}:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(p); print("CONNECTED", p)
    except OSError as e:
        print("refused", p, e.errno)
'`,
    hole: (r) =>
      r.stdout.includes("CONNECTED")
        ? "connected to a host socket"
        : r.stdout.includes("refused")
          ? undefined
          : `no answer: ${r.stderr}`,
  },
  {
    name: "cannot reach the host's loopback services",
    script: () =>
      `curl -s -m 3 --noproxy '*' http://127.0.0.1:${loopbackPort}/ ; echo; ip -o link | grep -vc ' lo:'`,
    hole: (r) => (r.stdout.includes("loopback-canary") ? "reached a host loopback service" : undefined),
  },
  {
    name: "a fork bomb is bounded by the box's pids limit",
    prepare: (fx) =>
      writeFileSync(path.join(fx.workdir, "fourwall.yaml"), "isolation:\n  limits:\n    pids: 64\n"),
    script: () => `/usr/bin/python3 -c '
import os, time
n = 0
for i in range(300):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(2); os._exit(0)
    n += 1
print("forked", n)
'`,
    hole: (r) => {
      const n = Number(/forked (\d+)/.exec(r.stdout)?.[1] ?? "NaN");
      return !(n < 100) ? `forked ${n} processes past a limit of 64\n${r.stderr}` : undefined;
    },
  },
  {
    name: "memory across many processes, tmpfs included, is capped for the whole box (cgroup)",
    onlyIn: {
      mode: "root",
      why: "an unprivileged launcher gets no cgroup on this host (no delegation), and this runsc ignores tmpfs size=",
    },
    prepare: (fx) =>
      writeFileSync(path.join(fx.workdir, "fourwall.yaml"), "isolation:\n  limits:\n    memory: 300MiB\n"),
    script: () =>
      'head -c 200000000 /dev/zero > /tmp/fill && echo filled-tmp; for i in 1 2; do /usr/bin/python3 -c \'import time; b = b"x" * (200 << 20); time.sleep(1.5); print("held")\' & done; wait',
    hole: (r) => {
      const held = (r.stdout.match(/held/g) ?? []).length;
      return r.stdout.includes("filled-tmp") && held === 2 ? "600 MB held under a 300 MiB cap" : undefined;
    },
  },
];

for (const mode of MODES) {
  describe(`gvisor: walls hold (${mode === "root" ? "launched as root" : `launched as uid ${USER_UID}`})`, {
    skip,
    concurrency: 2,
  }, () => {
    for (const check of checks) {
      if (check.onlyIn && check.onlyIn.mode !== mode) {
        it(check.name, (t) => t.skip(check.onlyIn!.why));
        continue;
      }
      it(check.name, async () => {
        const fx = makeFixture(mode);
        check.prepare?.(fx);
        const r = await sh(fx, check.script(fx), G);
        assert.equal(r.stderr.includes("fourwall: the"), false, `fourwall failed: ${r.stderr}`);
        assert.equal(check.hole(r, fx), undefined, `${check.name}\n${r.stdout}\n${r.stderr}`);
      });
      if (check.weaken) {
        const weaken = check.weaken;
        it(`${check.name} — the check sees the hole in a gVisor box without ${weaken}`, async () => {
          const fx = makeFixture(mode);
          check.prepare?.(fx);
          const r = await weakGvisor(fx, weaken, check.script(fx));
          assert.notEqual(
            check.hole(r, fx),
            undefined,
            `the broken box was not caught\n${r.stdout}\n${r.stderr}`,
          );
        });
      }
    }

    it("writes in the workdir land on the host, owned by the workdir's owner", async () => {
      const fx = makeFixture(mode);
      const r = await sh(
        fx,
        "echo made-in-box > out.txt && mkdir -p sub && echo y > sub/f && cat out.txt",
        G,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(path.join(fx.workdir, "out.txt"), "utf8"), "made-in-box\n");
      assert.equal(statSync(path.join(fx.workdir, "out.txt")).uid, mode === "root" ? 0 : USER_UID);
      assert.equal(statSync(path.join(fx.workdir, "sub", "f")).uid, mode === "root" ? 0 : USER_UID);
    });
  });

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

    it("returns the command's own exit status; 127 for a missing program", async () => {
      const fx = makeFixture(mode);
      assert.equal((await sh(fx, "exit 7", G)).code, 7);
      assert.equal((await runInBox(fx, ["/no/such/program"], G)).code, 127);
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
      assert.match(out, /got-int/, out);
      assert.match(out, /status=4/, out);
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
      for (const p of procs) assert.equal(p.uid, mode === "root" ? 70000 : USER_UID, p.cmd);
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
