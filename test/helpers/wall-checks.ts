/**
 * The isolation and filesystem walls' attacks, written once for every runtime: the catalogue that
 * test/integration/walls.test.ts runs as a matrix (runtime × launch mode × whole or broken box).
 * Each check names what the deliberately broken box (test/helpers/weak-box.ts) lacks in each
 * runtime and mode, so that the check is seen to catch the hole there, and where it does not apply
 * with the reason. Where `fourwall prove` makes the same attack, the check runs prove's probe and
 * prove's judge (test/helpers/prove-probe.ts) instead of a second copy.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Fixture, Mode, Result } from "./box.js";
import { SECRET } from "./box.js";
import type { HostCanaries } from "./host-canaries.js";
import { placeProbe, proveHole } from "./prove-probe.js";

export type WallRuntime = "namespaces" | "gvisor" | "docker";
/** One column of the matrix: where the box runs and who launches fourwall. */
export interface Cell {
  runtime: WallRuntime;
  mode: Mode;
}

export interface WallCheck {
  name: string;
  /** What the broken box lacks, per runtime and mode; absent: no broken variant there (a comment says why). */
  weaken: Partial<Record<WallRuntime, Partial<Record<Mode, string[]>>>>;
  /** Where the wall does not apply (a runtime, a mode, or both), with the reason. */
  notIn?: { runtime?: WallRuntime; mode?: Mode; why: string }[];
  /** Sets up the fixture before the box starts; returns the script to run in the box. */
  script: (fx: Fixture, cell: Cell, host: HostCanaries) => string;
  /** Given the box's result and the host afterwards: undefined when the wall held, else the hole. */
  hole: (r: Result, fx: Fixture, cell: Cell) => string | undefined;
  /**
   * Checks with the same key share one box (per cell and weakening): their scripts run one after
   * the other in it (identical scripts once), each check judging its own part of the output. Only
   * checks whose attacks cannot spoil each other's share a key (see the two groups below).
   */
  sharedRun?: string;
}

const both = (w: string[]) => ({ root: w, user: w });
/** Docker runs as root only (its daemon is root): its broken box is a root-mode one. */
const dockerRoot = (w: string[]) => ({ root: w });
/**
 * The two shared boxes of a cell: "observe" attacks read and try and leave the host as it was;
 * "write" attacks try to change the host, in an order where none hides another's hole (the write
 * outside the workdir removes ~/.bashrc before the symlink attack appends to it).
 */
const OBSERVE = "observe";
const WRITE = "write";
const leaks = (r: Result) => (r.stdout.includes(SECRET) ? "a planted secret was read" : undefined);
const policy = (fx: Fixture, yaml: string) => writeFileSync(path.join(fx.workdir, "fourwall.yaml"), yaml);

/** prove's probes the catalogue uses: attacks that read and try, and leave the host as it was. */
const PROVE_IDS = [
  ...["filesystem.read-secrets", "filesystem.read-dotenv", "filesystem.environment", "filesystem.proc-root"],
  ...["isolation.capabilities", "isolation.no-new-privs", "isolation.seccomp", "isolation.uid"],
  "isolation.new-namespaces",
];

/**
 * A check made of prove's own probes: the same attack and the same judge as `fourwall prove`.
 * The probe program runs them all in one box; each check judges its own.
 */
function proveCheck(ids: string[]): Pick<WallCheck, "script" | "hole" | "sharedRun"> {
  return {
    script: (fx) => placeProbe(fx, PROVE_IDS),
    hole: (r, _fx, cell) => proveHole(r, ids, cell.runtime),
    sharedRun: OBSERVE,
  };
}

/** The host's pid 1, as the box would show it if it saw the host's processes. */
const hostInit = () => readFileSync("/proc/1/comm", "utf8").trim();

export const WALL_CHECKS: WallCheck[] = [
  {
    name: "cannot write to ~/.ssh",
    weaken: {
      namespaces: both(["home-writable"]),
      gvisor: both(["home-writable"]),
      docker: dockerRoot(["home-writable"]),
    },
    sharedRun: WRITE,
    script: () => "echo pwn > ~/.ssh/pwn; mkdir -p ~/.ssh; echo pwn > ~/.ssh/authorized_keys",
    hole: (_r, fx) =>
      existsSync(path.join(fx.home, ".ssh/pwn")) || existsSync(path.join(fx.home, ".ssh/authorized_keys"))
        ? "a file appeared in the host's ~/.ssh"
        : undefined,
  },
  {
    name: "cannot read planted secrets (~/.ssh, ~/.aws, ~/.config/gcloud, ~/.netrc)",
    weaken: { namespaces: both(["secrets"]), gvisor: both(["secrets"]), docker: dockerRoot(["secrets"]) },
    ...proveCheck(["filesystem.read-secrets"]),
  },
  {
    name: "cannot read .env in the workdir",
    weaken: { namespaces: both(["secrets"]), gvisor: both(["secrets"]), docker: dockerRoot(["secrets"]) },
    ...proveCheck(["filesystem.read-dotenv"]),
  },
  {
    name: "gets no secret variables from the host environment",
    weaken: { namespaces: both(["env"]), gvisor: both(["env"]), docker: dockerRoot(["env"]) },
    ...proveCheck(["filesystem.environment"]),
  },
  {
    name: "cannot change or delete files outside the workdir",
    weaken: {
      namespaces: both(["home-writable"]),
      gvisor: both(["home-writable"]),
      docker: dockerRoot(["home-writable"]),
    },
    sharedRun: WRITE,
    script: (fx) =>
      `echo changed > ${fx.outside}; rm -f ${fx.outside} ~/.bashrc; echo x > /etc/fourwall-pwn; echo x > /usr/fourwall-pwn`,
    hole: (_r, fx) =>
      !existsSync(fx.outside) ||
      readFileSync(fx.outside, "utf8") !== "outside the workdir\n" ||
      existsSync("/etc/fourwall-pwn") ||
      existsSync("/usr/fourwall-pwn")
        ? "a host file outside the workdir changed"
        : undefined,
  },
  {
    name: "cannot write through a symlink leading out of the workdir",
    weaken: {
      namespaces: both(["home-writable"]),
      gvisor: both(["home-writable"]),
      docker: dockerRoot(["home-writable"]),
    },
    sharedRun: WRITE,
    script: () => "ln -sf ~/.bashrc link && echo evil >> link; ln -sf ~/.ssh/id_ed25519 key && cat key",
    hole: (r, fx) =>
      leaks(r) ??
      (readFileSync(path.join(fx.home, ".bashrc"), "utf8").includes("evil")
        ? "wrote ~/.bashrc through a symlink"
        : undefined),
  },
  {
    name: "cannot reach the host through /proc/<pid>/root or cwd",
    // gVisor (docker's too) serves its own /proc whatever its bundle says: no broken gVisor variant
    weaken: { namespaces: both(["secrets", "proc"]) },
    ...proveCheck(["filesystem.proc-root"]),
  },
  {
    name: "cannot plant git hooks, git config, MCP servers, editor tasks or tool config",
    weaken: {
      namespaces: both(["persistence"]),
      gvisor: both(["persistence"]),
      docker: dockerRoot(["persistence"]),
    },
    sharedRun: WRITE,
    script: () =>
      "mkdir -p .git/hooks; echo evil > .git/hooks/pre-commit; echo '[core] hooksPath=/tmp' >> .git/config; " +
      `echo '{"mcpServers":{"x":{"command":"sh"}}}' > .mcp.json; mkdir -p .vscode; echo '{}' > .vscode/tasks.json; echo evil > .envrc; ` +
      "echo script-shell=/bin/evil > .npmrc; mkdir -p .cargo; echo '[build]' > .cargo/config.toml",
    hole: (_r, fx) => {
      const w = (p: string) => path.join(fx.workdir, p);
      if (existsSync(w(".git/hooks/pre-commit"))) return "created .git/hooks/pre-commit";
      if (readFileSync(w(".git/config"), "utf8").includes("hooksPath")) return "changed .git/config";
      if (existsSync(w(".mcp.json")) || existsSync(w(".vscode")) || existsSync(w(".envrc")))
        return "created a persistence file";
      if (existsSync(w(".npmrc")) || existsSync(w(".cargo"))) return "created tool config (.npmrc, .cargo)";
      return undefined;
    },
  },
  {
    name: "has no capabilities, no_new_privs and a seccomp filter",
    // gVisor's box is uid 0 of its own kernel: only the spec's capabilities say what it holds;
    // docker's broken box runs as root with Docker's default capabilities
    weaken: {
      namespaces: { root: ["caps", "seccomp"], user: ["seccomp"] },
      gvisor: both(["caps"]),
      docker: dockerRoot(["caps"]),
    },
    ...proveCheck(["isolation.capabilities", "isolation.no-new-privs", "isolation.seccomp"]),
  },
  {
    name: "runs as an unprivileged uid: root-only host files stay unreadable",
    // docker's box has no other identity than --user: its broken box is root, with capabilities
    weaken: {
      namespaces: { root: ["identity"] },
      gvisor: { root: ["identity"] },
      docker: dockerRoot(["caps"]),
    },
    ...proveCheck(["isolation.uid"]),
  },
  {
    name: "cannot see host processes",
    weaken: { namespaces: both(["proc"]) }, // gVisor's /proc (docker's too) is always its own
    sharedRun: OBSERVE,
    script: () => "cat /proc/1/comm; echo /proc/[0-9]* | wc -w",
    hole: (r) => {
      const [comm, count] = r.stdout.trim().split("\n");
      return Number(count) > 10 || comm === hostInit()
        ? `sees host processes (pid 1 is ${comm}, ${count} pids)`
        : undefined;
    },
  },
  {
    name: "cannot make new namespaces (unshare, user namespaces)",
    weaken: {
      namespaces: both(["seccomp", "userns"]),
      gvisor: both(["seccomp"]),
      docker: dockerRoot(["seccomp"]),
    },
    ...proveCheck(["isolation.new-namespaces"]),
  },
  {
    name: "cannot reach host unix sockets (/run, /tmp)",
    weaken: { namespaces: both(["sockets"]), gvisor: both(["sockets"]), docker: dockerRoot(["sockets"]) },
    sharedRun: OBSERVE,
    script: (_fx, _cell, host) => `/usr/bin/python3 -c '
import socket
for p in ${JSON.stringify(host.socketPaths)}:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(p); print("CONNECTED", p)
    except OSError as e:
        print("refused", p, e.errno)
'`,
    hole: (r) => {
      if (r.stdout.includes("CONNECTED")) return "connected to a host socket";
      if (r.stdout.includes("refused")) return undefined;
      throw new Error(`the probe gave no answer: ${r.stderr}`); // neither held nor open: nothing shown
    },
  },
  {
    name: "cannot reach the host's loopback services",
    // gVisor's network is runsc's --network=none, a flag outside the spec: no broken gVisor variant;
    // docker's broken box runs under runc on the host's network
    weaken: { namespaces: both(["net"]), docker: dockerRoot(["net"]) },
    sharedRun: OBSERVE,
    script: (_fx, _cell, host) =>
      `curl -s -m 3 --noproxy '*' http://127.0.0.1:${host.loopbackPort}/ ; echo; ip -o link | grep -vc ' lo:'`,
    hole: (r) => (r.stdout.includes("loopback-canary") ? "reached a host loopback service" : undefined),
  },
  {
    name: "a fork bomb is bounded by the box's pids limit",
    // as root the box's cgroup caps pids too: the broken box lacks both layers
    weaken: {
      namespaces: { root: ["rlimits", "cgroup"], user: ["rlimits"] },
      gvisor: { root: ["rlimits", "cgroup"], user: ["rlimits"] },
      docker: dockerRoot(["rlimits", "cgroup"]),
    },
    script: (fx) => {
      policy(fx, "isolation:\n  limits:\n    pids: 64\n");
      return `/usr/bin/python3 -c '
import os, time
n = 0
for i in range(150):  # past the threshold below, and no further: 150 processes are slow enough under ptrace
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(2); os._exit(0)
    n += 1
print("forked", n)
'`;
    },
    hole: (r) => {
      const n = Number(/forked (\d+)/.exec(r.stdout)?.[1] ?? "NaN");
      if (Number.isNaN(n)) throw new Error(`the fork bomb did not report: ${r.stderr}`);
      return n >= 100 ? `forked ${n} processes past a limit of 64` : undefined;
    },
  },
  {
    name: "memory across many processes, tmpfs included, is capped for the whole box (cgroup)",
    weaken: {
      namespaces: { root: ["cgroup"] },
      gvisor: { root: ["cgroup"] },
      docker: dockerRoot(["cgroup"]),
    },
    notIn: [
      {
        mode: "user",
        why: "an unprivileged launcher gets no cgroup on this host (no delegation): rlimits only, and this runsc ignores tmpfs size=",
      },
    ],
    script: (fx) => {
      policy(fx, "isolation:\n  limits:\n    memory: 200MiB\n");
      return 'head -c 120000000 /dev/zero > /tmp/fill && echo filled-tmp; for i in 1 2; do /usr/bin/python3 -c \'import time; b = b"x" * (120 << 20); time.sleep(1.5); print("held")\' & done; wait';
    },
    hole: (r) => {
      const held = (r.stdout.match(/held/g) ?? []).length;
      return r.stdout.includes("filled-tmp") && held === 2 ? "370 MB held under a 200 MiB cap" : undefined;
    },
  },
  {
    name: "runs on gVisor's kernel, not the host's (uname, /proc/version; dmesg is refused like on the host)",
    weaken: {}, // no box of this runtime runs on the host's kernel
    sharedRun: OBSERVE,
    notIn: [{ runtime: "namespaces", why: "the namespaces runtime shares the host's kernel by design" }],
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
    name: "the seccomp rules left to gVisor's kernel hold (clone3, personality, x32, uevent), threads still work",
    weaken: { gvisor: both(["seccomp"]), docker: dockerRoot(["seccomp"]) },
    sharedRun: OBSERVE,
    notIn: [
      {
        runtime: "namespaces",
        why: "the host kernel runs the namespaces box's filter: seccomp.test.ts attacks it call by call",
      },
    ],
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
      if (!r.stdout.includes("clone3")) throw new Error(`the probe did not run: ${r.stderr}`);
      if (!/clone3 38\b/.test(r.stdout)) return "clone3 did not fail with ENOSYS";
      if (!/personality [1-9]\d* [1-9]\d*/.test(r.stdout)) return "a persona was set";
      if (!/x32 38\b/.test(r.stdout)) return "x32 syscalls served";
      if (!/uevent 1\b/.test(r.stdout))
        return "the OCI profile is not in force (netlink uevent socket allowed)";
      if (!r.stdout.includes("thread ran")) return "threads broken";
      return undefined;
    },
  },
];

/** Why `check` does not apply in `cell`, or undefined when it does. */
export function notApplicable(check: WallCheck, cell: Cell): string | undefined {
  return check.notIn?.find(
    (n) => (n.runtime ?? cell.runtime) === cell.runtime && (n.mode ?? cell.mode) === cell.mode,
  )?.why;
}
