/**
 * The generated seccomp filter inside REAL bubblewrap boxes.
 *
 * A Python probe (ctypes syscall()) calls every filtered syscall with harmless arguments, each in a
 * forked child so nothing it changes (personality, namespaces, tracing) leaks into the next probe,
 * and reports errno. Each box layout runs twice, with and without the filter: the run without it
 * must show the holes, so every "denied" assertion here is able to fail.
 *
 * Arguments are chosen so that, unfiltered, the kernel answers with something other than EPERM
 * (EFAULT on a NULL pointer, EBADF on fd -1, EINVAL on bad flags...) wherever its argument checks
 * come before its capability checks. A few calls check host capabilities first and answer EPERM
 * themselves (KERNEL_GATED); for those only the unit test's number cross-check proves the rule.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import type { Writable } from "node:stream";
import { describe, type TestContext, test } from "node:test";
import {
  buildSeccompFilter,
  hostSeccompArch,
  type SyscallRule,
  seccompRules,
} from "../../src/walls/isolation/seccomp/index.js";
import { type SyscallName, syscallNumber } from "../../src/walls/isolation/seccomp/syscalls.js";

const arch = hostSeccompArch();
const filter = buildSeccompFilter({ arch });

const EPERM = 1;
const ENOTTY = 25;
const ENOSYS = 38;

// --- environment

const isRoot = process.getuid?.() === 0;
const haveBwrap = spawnSync("bwrap", ["--version"]).status === 0;
const haveSetpriv = spawnSync("setpriv", ["--version"]).status === 0;

const BOX = [
  "--unshare-all",
  "--die-with-parent",
  "--ro-bind",
  "/",
  "/",
  "--proc",
  "/proc",
  "--dev",
  "/dev",
  "--tmpfs",
  "/tmp",
  "--clearenv",
  "--setenv",
  "PATH",
  "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
  "--setenv",
  "HOME",
  "/tmp",
];

type ConfigName = "unprivileged" | "root, caps dropped" | "root, caps kept in userns";
interface BoxConfig {
  name: ConfigName;
  /** argv up to and including bwrap's own options; null with a reason when it cannot run here. */
  argv: string[] | null;
  skip?: string;
}

const CONFIGS: BoxConfig[] = [
  isRoot
    ? haveSetpriv
      ? {
          name: "unprivileged",
          argv: ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "bwrap", ...BOX],
        }
      : { name: "unprivileged", argv: null, skip: "setpriv not installed" }
    : { name: "unprivileged", argv: ["bwrap", ...BOX] }, // we already are an unprivileged uid
  isRoot
    ? {
        name: "root, caps dropped",
        argv: ["bwrap", ...BOX, "--unshare-user", "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL"],
      }
    : { name: "root, caps dropped", argv: null, skip: "needs root" },
  // Not a layout fourwall uses: a box holding every capability of its own user namespace, to show
  // what the filter stops even then (mount API, packet sockets, namespaced reboot).
  isRoot
    ? {
        name: "root, caps kept in userns",
        argv: ["bwrap", ...BOX, "--unshare-user", "--uid", "0", "--gid", "0"],
      }
    : { name: "root, caps kept in userns", argv: null, skip: "needs root" },
];

function skipReason(config: BoxConfig): string | null {
  if (!haveBwrap) return "bwrap not installed";
  return config.argv ? null : (config.skip ?? "cannot run here");
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `command` in a box; the filter, if any, goes in on fd 3 (`bwrap --seccomp 3`). bwrap 0.8
 * fails to build a box when a host mount vanishes while it remounts `/` read-only (other test
 * files add and remove network namespaces under /run/netns): nothing ran then, so try again.
 */
async function runBox(config: BoxConfig, withFilter: boolean, command: string[]): Promise<Run> {
  for (let attempt = 1; ; attempt++) {
    const run = await runBoxOnce(config, withFilter, command);
    const raced =
      run.code === 1 && /^bwrap: Can't bind mount .*Unable to apply mount flags/m.test(run.stderr);
    if (!raced || attempt === 3) return run;
  }
}

function runBoxOnce(config: BoxConfig, withFilter: boolean, command: string[]): Promise<Run> {
  const argv = [...config.argv!, ...(withFilter ? ["--seccomp", "3"] : []), ...command];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe", "pipe"],
      timeout: 60_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d));
    child.stderr!.on("data", (d: Buffer) => (stderr += d));
    const fd3 = child.stdio[3] as Writable;
    fd3.on("error", () => {}); // bwrap failing early closes the pipe; the exit code tells
    fd3.end(withFilter ? filter : undefined);
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

// --- the probe

const PROBE = String.raw`
import ctypes, json, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
BUF = ctypes.create_string_buffer(4096)  # zeroed scratch memory for pointer arguments
DEVNULL = 100
os.dup2(os.open("/dev/null", os.O_RDWR), DEVNULL)
probes, clone_nr = json.loads(sys.argv[1]), int(sys.argv[2])

def value(a):
    return {"SELF": os.getpid, "DEVNULL": lambda: DEVNULL, "BUF": lambda: ctypes.addressof(BUF)}.get(a, lambda: int(a, 0))()

def int80(nr):
    # i386 syscall from a 64-bit process: mov eax, nr; int 0x80; ret  (the kernel returns -errno in eax)
    code = bytes([0xb8]) + nr.to_bytes(4, "little") + bytes([0xcd, 0x80, 0xc3])
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    ret = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()
    return ret, (-ret if ret < 0 else 0)

def attempt(nr, args, via):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        if via == "int80":
            ret, err = int80(nr)
        else:
            ctypes.set_errno(0)
            ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(value(a) % 2**64) for a in args])
            err = ctypes.get_errno()
        if nr == clone_nr and ret == 0:
            os._exit(0)  # child of a raw clone(): leave at once
        if nr == clone_nr and ret > 0:
            os.waitpid(ret, 0)
        os.write(w, json.dumps({"ok": ret >= 0, "errno": 0 if ret >= 0 else err}).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data) if data else {"ok": False, "errno": -1}

status = dict(line.rstrip("\n").split(":\t", 1) for line in open("/proc/self/status") if ":\t" in line)
print(json.dumps({
    "seccomp": status.get("Seccomp"),
    "filters": status.get("Seccomp_filters"),
    "results": {p["id"]: attempt(p["nr"], p["args"], p["via"]) for p in probes},
}))
`;

/** What a probe must see under the filter. */
type Expect = "EPERM" | "ENOSYS" | "ENOTTY" | "ok";
/**
 * What it must see WITHOUT the filter: "open" = not EPERM in every layout; "open with caps" =
 * not EPERM where the box holds its user namespace's capabilities; "gated" = the kernel itself
 * answers EPERM (it checks host capabilities first), so no layout can tell.
 */
type Unfiltered = "open" | "open with caps" | "gated" | "same";

interface Probe {
  id: string;
  /** The rule this probe exercises; null for the architecture guards. */
  syscall: SyscallName | null;
  nr: number | null;
  args: (number | string)[];
  expect: Expect;
  unfiltered: Unfiltered;
  /** "int80": make an i386 syscall from the 64-bit probe (x86_64 only). */
  via?: "syscall" | "int80";
}

const NEWUSER = 0x10000000;
const NEWNET = 0x40000000;
const SIGCHLD = 17;

const p = (
  id: string,
  syscall: SyscallName,
  args: (number | string)[],
  expect: Expect,
  unfiltered: Unfiltered,
): Probe => ({
  id,
  syscall,
  nr: syscallNumber(syscall, arch),
  args,
  expect,
  unfiltered,
});

/** Guards on seccomp_data.arch and the x32 bit, exercised for real on x86_64. */
const ARCH_PROBES: Probe[] =
  arch === "x64"
    ? [
        // i386 getpid (20) through int 0x80: unfiltered it returns our pid (IA32 emulation on)
        // or ENOSYS, never EPERM
        {
          id: "i386 getpid via int 0x80",
          syscall: null,
          nr: 20,
          args: [],
          expect: "EPERM",
          unfiltered: "open",
          via: "int80",
        },
        // x32 getpid: unfiltered ENOSYS on kernels without x32, or our pid
        {
          id: "x32 getpid (nr | 0x40000000)",
          syscall: null,
          nr: 0x40000000 | 39,
          args: [],
          expect: "EPERM",
          unfiltered: "open",
        },
      ]
    : [];

const PROBES: Probe[] = [
  // reaching into other processes
  p("ptrace(TRACEME)", "ptrace", [0, 0, 0, 0], "EPERM", "open"),
  p("process_vm_readv(self, 0 iovecs)", "process_vm_readv", ["SELF", 0, 0, 0, 0, 0], "EPERM", "open"),
  p("process_vm_writev(self, 0 iovecs)", "process_vm_writev", ["SELF", 0, 0, 0, 0, 0], "EPERM", "open"),
  p("pidfd_getfd(-1)", "pidfd_getfd", [-1, 0, 0], "EPERM", "open"),
  p("process_madvise(-1)", "process_madvise", [-1, 0, 0, 0, 0], "EPERM", "open"),
  // kernel code and objects (ENOSYS unfiltered where the kernel is built without them)
  p("kexec_load(0 segments)", "kexec_load", [0, 0, 0, 0], "EPERM", "open"),
  p("kexec_file_load(-1)", "kexec_file_load", [-1, -1, 0, 0, 0], "EPERM", "open"),
  p("init_module(NULL)", "init_module", [0, 0, 0], "EPERM", "open"),
  p("finit_module(-1)", "finit_module", [-1, 0, 0], "EPERM", "open"),
  p("delete_module(NULL)", "delete_module", [0, 0], "EPERM", "open"),
  p("bpf(bad cmd)", "bpf", [-1, 0, 0], "EPERM", "open"),
  p("perf_event_open(NULL)", "perf_event_open", [0, 0, -1, -1, 0], "EPERM", "open"),
  p("keyctl(bad op)", "keyctl", [0xffff, 0, 0, 0, 0], "EPERM", "open"),
  p("add_key(NULL)", "add_key", [0, 0, 0, 0, 0], "EPERM", "open"),
  p("request_key(NULL)", "request_key", [0, 0, 0, 0], "EPERM", "open"),
  // mounts and namespaces
  p("mount(NULL)", "mount", [0, 0, 0, 0, 0], "EPERM", "open"),
  p("umount2(NULL, bad flags)", "umount2", [0, 0xffffffff], "EPERM", "open"),
  p("pivot_root(NULL, NULL)", "pivot_root", [0, 0], "EPERM", "open with caps"),
  p("move_mount(-1, bad flags)", "move_mount", [-1, 0, -1, 0, 0xffffffff], "EPERM", "open with caps"),
  p("open_tree(-1, bad flags)", "open_tree", [-1, 0, 0xffffffff], "EPERM", "open"),
  p("open_tree_attr(-1, bad flags)", "open_tree_attr", [-1, 0, 0xffffffff, 0, 0], "EPERM", "open"),
  p("fsopen(NULL, bad flags)", "fsopen", [0, 0xffffffff], "EPERM", "open with caps"),
  p("fsconfig(-1)", "fsconfig", [-1, 0xffff, 0, 0, 0], "EPERM", "open"),
  p("fsmount(-1, bad flags)", "fsmount", [-1, 0xffffffff, 0], "EPERM", "open with caps"),
  p("fspick(-1, bad flags)", "fspick", [-1, 0, 0xffffffff], "EPERM", "open with caps"),
  p("mount_setattr(-1, bad flags)", "mount_setattr", [-1, 0, 0xffffffff, 0, 0], "EPERM", "open"),
  p("chroot(NULL)", "chroot", [0], "EPERM", "open"),
  p("unshare(CLONE_NEWUSER)", "unshare", [NEWUSER], "EPERM", "open"),
  p("setns(-1)", "setns", [-1, 0], "EPERM", "open"),
  // attack surface
  p("io_uring_setup(1)", "io_uring_setup", [1, "BUF"], "EPERM", "open"),
  p("io_uring_enter(-1)", "io_uring_enter", [-1, 0, 0, 0, 0, 0], "EPERM", "open"),
  p("io_uring_register(-1)", "io_uring_register", [-1, 0, 0, 0], "EPERM", "open"),
  p("userfaultfd(USER_MODE_ONLY)", "userfaultfd", [0x80001], "EPERM", "open"),
  // host administration
  p("acct(NULL)", "acct", [0], "EPERM", "gated"),
  p("swapon(NULL)", "swapon", [0, 0], "EPERM", "gated"),
  p("swapoff(NULL)", "swapoff", [0], "EPERM", "gated"),
  p("reboot(bad magic)", "reboot", [0, 0, 0, 0], "EPERM", "open with caps"),
  p("syslog(SIZE_BUFFER)", "syslog", [10, 0, 0], "EPERM", "gated"),
  p("quotactl(NULL)", "quotactl", [0, 0, 0, 0], "EPERM", "open"),
  p("quotactl_fd(-1)", "quotactl_fd", [-1, 0, 0, 0], "EPERM", "open"),
  p("settimeofday(bad pointer)", "settimeofday", [1, 0], "EPERM", "open"),
  p("clock_settime(bad clock)", "clock_settime", [0x7fffffff, 0], "EPERM", "open"),
  p("vhangup()", "vhangup", [], "EPERM", "gated"),
  // file handles
  p("name_to_handle_at(bad flags)", "name_to_handle_at", [-1, 0, 0, 0, 0xffffffff], "EPERM", "open"),
  p("open_by_handle_at(NULL)", "open_by_handle_at", [-1, 0, 0], "EPERM", "open"),
  // obsolete
  p("lookup_dcookie()", "lookup_dcookie", [0, 0, 0], "EPERM", "open"),
  p("uselib(NULL)", "uselib", [0], "EPERM", "open"),
  // x86 only
  p("modify_ldt(read)", "modify_ldt", [0, "BUF", 16], "EPERM", "open"),
  p("iopl(0)", "iopl", [0], "EPERM", "open"),
  p("ioperm(0, 0, 0)", "ioperm", [0, 0, 0], "EPERM", "open"),

  // clone / clone3
  p("clone3(NULL)", "clone3", [0, 0], "ENOSYS", "open"),
  p("clone(CLONE_NEWUSER)", "clone", [NEWUSER | SIGCHLD, 0, 0, 0, 0], "EPERM", "open"),
  // the kernel ignores the upper half of clone's flags, so must the filter
  p(
    "clone(CLONE_NEWUSER | 1<<32)",
    "clone",
    [`0x1${(NEWUSER | SIGCHLD).toString(16).padStart(8, "0")}`, 0, 0, 0, 0],
    "EPERM",
    "open",
  ),
  p("clone(CLONE_NEWNET)", "clone", [NEWNET | SIGCHLD, 0, 0, 0, 0], "EPERM", "open with caps"),
  p("clone(SIGCHLD) (fork)", "clone", [SIGCHLD, 0, 0, 0, 0], "ok", "same"),

  // socket / socketpair
  p("socket(AF_INET, SOCK_STREAM)", "socket", [2, 1, 0], "ok", "same"),
  p("socket(AF_INET6, SOCK_DGRAM)", "socket", [10, 2, 0], "ok", "same"),
  p("socket(AF_UNIX, SOCK_STREAM)", "socket", [1, 1, 0], "ok", "same"),
  p("socket(AF_NETLINK, SOCK_RAW|CLOEXEC, ROUTE)", "socket", [16, 0x80003, 0], "ok", "same"),
  p("socket(AF_NETLINK, SOCK_RAW, KOBJECT_UEVENT)", "socket", [16, 3, 15], "EPERM", "open"),
  p("socket(AF_NETLINK, SOCK_RAW, AUDIT)", "socket", [16, 3, 9], "EPERM", "open"),
  p("socket(AF_NETLINK, SOCK_RAW, SOCK_DIAG)", "socket", [16, 3, 4], "EPERM", "open"),
  p("socket(AF_PACKET, SOCK_RAW)", "socket", [17, 3, 0], "EPERM", "open with caps"),
  p("socket(AF_INET, SOCK_RAW, ICMP)", "socket", [2, 3, 1], "EPERM", "open with caps"),
  p("socket(AF_INET, SOCK_PACKET)", "socket", [2, 10, 0], "EPERM", "open with caps"),
  p("socket(AF_UNIX, SOCK_RAW)", "socket", [1, 3, 0], "EPERM", "open"),
  p("socket(AF_ALG, SOCK_SEQPACKET)", "socket", [38, 5, 0], "EPERM", "open"),
  p("socket(AF_VSOCK, SOCK_STREAM)", "socket", [40, 1, 0], "EPERM", "open"),
  p("socketpair(AF_UNIX)", "socketpair", [1, 1, 0, "BUF"], "ok", "same"),
  p("socketpair(AF_INET)", "socketpair", [2, 1, 0, "BUF"], "EPERM", "open"),

  // ioctl on /dev/null: the kernel says ENOTTY, the filter EPERM; no terminal is touched
  p("ioctl(TIOCSTI)", "ioctl", ["DEVNULL", 0x5412, "BUF"], "EPERM", "open"),
  p("ioctl(TIOCSTI | 1<<32)", "ioctl", ["DEVNULL", "0x100005412", "BUF"], "EPERM", "open"),
  p("ioctl(TIOCLINUX)", "ioctl", ["DEVNULL", 0x541c, "BUF"], "EPERM", "open"),
  p("ioctl(TCGETS)", "ioctl", ["DEVNULL", 0x5401, "BUF"], "ENOTTY", "same"),

  // personality
  p("personality(query)", "personality", [0xffffffff], "ok", "same"),
  p("personality(PER_LINUX)", "personality", [0], "ok", "same"),
  p("personality(ADDR_NO_RANDOMIZE)", "personality", [0x0040000], "EPERM", "open"),
  ...ARCH_PROBES,
].filter((probe) => probe.nr !== null);

interface ProbeReport {
  seccomp: string;
  filters: string;
  results: Record<string, { ok: boolean; errno: number }>;
}

const reports = new Map<string, Promise<ProbeReport>>();

/** Runs the probe once per (layout, filter) and shares the report between tests. */
function probeReport(config: BoxConfig, withFilter: boolean): Promise<ProbeReport> {
  const key = `${config.name}/${withFilter}`;
  let report = reports.get(key);
  if (!report) {
    const spec = PROBES.map((probe) => ({
      id: probe.id,
      nr: probe.nr,
      args: probe.args.map(String),
      via: probe.via ?? "syscall",
    }));
    const clone = String(syscallNumber("clone", arch));
    report = runBox(config, withFilter, ["python3", "-c", PROBE, JSON.stringify(spec), clone]).then((run) => {
      assert.equal(run.code, 0, `probe failed (exit ${run.code}): ${run.stderr}`);
      return JSON.parse(run.stdout) as ProbeReport;
    });
    reports.set(key, report);
  }
  return report;
}

const probeVia = (id: string) => PROBES.find((p) => p.id === id)?.via;

function describeResult(r: { ok: boolean; errno: number } | undefined): string {
  if (!r) return "missing";
  return r.ok ? "ok" : `errno ${r.errno}`;
}

function matches(r: { ok: boolean; errno: number } | undefined, expect: Expect): boolean {
  if (!r) return false;
  if (expect === "ok") return r.ok;
  return !r.ok && r.errno === { EPERM, ENOSYS, ENOTTY }[expect];
}

function skipIfNeeded(t: TestContext, config: BoxConfig): boolean {
  const reason = skipReason(config);
  if (reason) t.skip(reason);
  return reason !== null;
}

describe(`seccomp filter in real bwrap boxes (${arch})`, () => {
  test("every syscall rule for this arch has a probe", () => {
    const probed = new Set(PROBES.map((probe) => probe.syscall));
    const missing = seccompRules()
      .filter((r): r is SyscallRule => r.syscall !== "*" && r.arches.includes(arch))
      .map((r) => r.syscall)
      .filter((s) => !probed.has(s));
    assert.deepEqual(missing, []);
  });

  for (const config of CONFIGS) {
    describe(config.name, () => {
      test("with the filter: Seccomp: 2, and every probe gets the filter's answer", async (t) => {
        if (skipIfNeeded(t, config)) return;
        const report = await probeReport(config, true);
        assert.equal(report.seccomp, "2", "/proc/self/status Seccomp");
        assert.equal(report.filters, "1", "/proc/self/status Seccomp_filters");
        // A kernel without IA32 emulation has no int 0x80 door at all: the probe dies before seccomp
        // sees it, with or without the filter. Then the door is shut by the kernel, not by us.
        const unfiltered = await probeReport(config, false);
        const noDoor = (id: string) => probeVia(id) === "int80" && unfiltered.results[id]?.errno === -1;
        const wrong = PROBES.filter(
          (probe) =>
            !matches(report.results[probe.id], probe.expect) &&
            !(noDoor(probe.id) && report.results[probe.id]?.errno === -1),
        ).map(
          (probe) => `${probe.id}: want ${probe.expect}, got ${describeResult(report.results[probe.id])}`,
        );
        assert.deepEqual(wrong, []);
      });

      test("without the filter: the same probe sees the holes", async (t) => {
        if (skipIfNeeded(t, config)) return;
        const report = await probeReport(config, false);
        assert.equal(report.seccomp, "0", "no filter loaded");
        const capsKept = config.name === "root, caps kept in userns";
        const wrong: string[] = [];
        for (const probe of PROBES) {
          const r = report.results[probe.id];
          const open = r !== undefined && (r.ok || r.errno !== EPERM);
          if (probe.unfiltered === "open" && !open)
            wrong.push(`${probe.id}: expected a hole, got ${describeResult(r)}`);
          if (probe.unfiltered === "open with caps" && capsKept && !open) {
            wrong.push(`${probe.id}: expected a hole with caps, got ${describeResult(r)}`);
          }
          if (probe.unfiltered === "same" && !matches(r, probe.expect)) {
            wrong.push(`${probe.id}: want ${probe.expect}, got ${describeResult(r)}`);
          }
        }
        assert.deepEqual(wrong, []);
        // The headline holes, spelled out.
        assert.equal(report.results["unshare(CLONE_NEWUSER)"]?.ok, true, "unshare(CLONE_NEWUSER) succeeds");
        assert.equal(report.results["ptrace(TRACEME)"]?.ok, true, "ptrace available");
        assert.equal(report.results["socket(AF_NETLINK, SOCK_RAW, KOBJECT_UEVENT)"]?.ok, true);
        assert.equal(
          report.results["clone(CLONE_NEWUSER | 1<<32)"]?.ok,
          true,
          "the kernel ignores clone's upper 32 bits",
        );
        if (capsKept)
          assert.equal(report.results["socket(AF_PACKET, SOCK_RAW)"]?.ok, true, "AF_PACKET opens");
      });

      // Normal life under the filter: shells, interpreters (with threads: clone3 -> clone fallback),
      // git, and netlink-route users.
      const life: [string, string[], RegExp][] = [
        ["sh -c", ["sh", "-c", "echo hello from $0; ls / >/dev/null"], /hello from sh/],
        [
          "python3 -c (with a thread)",
          [
            "python3",
            "-c",
            "import threading;t=threading.Thread(target=print,args=('py ok',));t.start();t.join()",
          ],
          /py ok/,
        ],
        [
          "node -e (with a worker thread)",
          [
            "node",
            "-e",
            "const {Worker}=require('worker_threads');new Worker('1',{eval:true}).on('exit',c=>console.log('node ok',c))",
          ],
          /node ok 0/,
        ],
        ["git --version", ["git", "--version"], /git version/],
        ["ip addr (netlink route)", ["ip", "addr"], /\blo\b/],
        ["getent hosts localhost (getaddrinfo)", ["getent", "hosts", "localhost"], /127\.0\.0\.1|::1/],
      ];
      if (config.name !== "root, caps kept in userns") {
        for (const [name, command, want] of life) {
          test(`with the filter: ${name} works`, async (t) => {
            if (skipIfNeeded(t, config)) return;
            const run = await runBox(config, true, command);
            assert.equal(run.code, 0, `exit ${run.code}: ${run.stderr}`);
            assert.match(run.stdout, want);
          });
        }
      }
    });
  }
});
