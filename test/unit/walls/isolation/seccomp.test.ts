import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  type Arch,
  buildSeccompFilter,
  type SyscallRule,
  seccompRules,
  seccompRulesMarkdown,
} from "../../../../src/walls/isolation/seccomp/index.js";
import {
  SYSCALLS,
  type SyscallName,
  syscallNumber,
} from "../../../../src/walls/isolation/seccomp/syscalls.js";
import { decode, run, validate } from "../../../helpers/bpf.js";

// Constants written out here rather than imported, so the tests do not just echo the generator.
const ALLOW = 0x7fff0000;
const EPERM = 0x00050000 | 1;
const ENOSYS = 0x00050000 | 38;
const ARCH_VALUE: Record<Arch, number> = { x64: 0xc000003e, arm64: 0xc00000b7 };
const AUDIT_ARCH_I386 = 0x40000003;
const AUDIT_ARCH_ARM = 0x40000028;
const HIGH = 1n << 32n; // junk in the upper half of a 64-bit register

const ARCHES: Arch[] = ["x64", "arm64"];
const filters: Record<Arch, Buffer> = {
  x64: buildSeccompFilter({ arch: "x64" }),
  arm64: buildSeccompFilter({ arch: "arm64" }),
};

function nr(name: SyscallName, arch: Arch): number {
  const n = syscallNumber(name, arch);
  assert.notEqual(n, null, `${name} has no number on ${arch}`);
  return n!;
}

function call(arch: Arch, name: SyscallName, ...args: (bigint | number)[]): number {
  return run(filters[arch], { nr: nr(name, arch), arch: ARCH_VALUE[arch], args });
}

/** The brief's deny list: a rule quietly dropped from the table must fail here. */
const ALWAYS_DENIED: SyscallName[] = [
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "pidfd_getfd",
  "process_madvise",
  "kexec_load",
  "kexec_file_load",
  "init_module",
  "finit_module",
  "delete_module",
  "bpf",
  "perf_event_open",
  "keyctl",
  "add_key",
  "request_key",
  "mount",
  "umount2",
  "pivot_root",
  "move_mount",
  "open_tree",
  "fsopen",
  "fsconfig",
  "fsmount",
  "fspick",
  "mount_setattr",
  "chroot",
  "unshare",
  "setns",
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
  "userfaultfd",
  "acct",
  "swapon",
  "swapoff",
  "reboot",
  "syslog",
  "quotactl",
  "quotactl_fd",
  "name_to_handle_at",
  "open_by_handle_at",
  "lookup_dcookie",
  "vhangup",
  // added
  "open_tree_attr",
  "settimeofday",
  "clock_settime",
];
const X86_ONLY_DENIED: SyscallName[] = ["modify_ldt", "iopl", "ioperm", "uselib"];

describe("program format", () => {
  for (const arch of ARCHES) {
    test(`${arch}: whole 8-byte instructions, ends with a return, every jump in range`, () => {
      const prog = filters[arch];
      assert.equal(prog.length % 8, 0);
      const insns = validate(prog); // throws on bad opcodes, load offsets, jumps past the end
      assert.ok(insns.length > 50 && insns.length <= 4096, `${insns.length} instructions`);
      assert.equal(insns.at(-1)!.code, 0x06, "last instruction is RET K");
      assert.equal(insns.at(-1)!.k, ALLOW, "default is allow");
      // Never kill: every return is ALLOW or ERRNO.
      for (const i of insns.filter((x) => x.code === 0x06)) {
        assert.ok(i.k === ALLOW || i.k >>> 16 === 0x0005, `return 0x${i.k.toString(16)}`);
      }
      // First thing: check the arch.
      assert.deepEqual([insns[0]!.code, insns[0]!.k], [0x20, 4]);
      assert.deepEqual([insns[1]!.code, insns[1]!.k], [0x15, ARCH_VALUE[arch]]);
    });
  }

  test("deterministic and distinct per arch", () => {
    assert.deepEqual(buildSeccompFilter({ arch: "x64" }), filters.x64);
    assert.notDeepEqual(filters.x64, filters.arm64);
  });

  test("default arch is the host's", () => {
    const host = process.arch === "arm64" ? "arm64" : "x64";
    assert.deepEqual(buildSeccompFilter(), filters[host]);
  });

  test("the interpreter rejects a broken program (so the checks above can fail)", () => {
    const truncated = filters.x64.subarray(0, filters.x64.length - 8); // loses the final return
    assert.throws(() => validate(truncated));
    assert.throws(() => decode(Buffer.alloc(12)));
  });
});

describe("architecture guards", () => {
  test("x64 filter: i386 (int 0x80) calls are EPERM whatever the number", () => {
    for (const n of [0, 1, 3, 11, 26, 120, 0x40000000]) {
      assert.equal(run(filters.x64, { nr: n, arch: AUDIT_ARCH_I386 }), EPERM, `i386 nr ${n}`);
    }
  });

  test("x64 filter: x32 syscalls (nr | 0x40000000) are EPERM", () => {
    for (const n of [0, 1, 41, 56, 101, 0x200]) {
      assert.equal(run(filters.x64, { nr: 0x40000000 | n, arch: ARCH_VALUE.x64 }), EPERM, `x32 nr ${n}`);
    }
  });

  test("arm64 filter: arm32 (compat) and x86_64 callers are EPERM", () => {
    assert.equal(run(filters.arm64, { nr: 63, arch: AUDIT_ARCH_ARM }), EPERM);
    assert.equal(run(filters.arm64, { nr: 63, arch: ARCH_VALUE.x64 }), EPERM);
    assert.equal(run(filters.arm64, { nr: 63, arch: ARCH_VALUE.arm64 }), ALLOW);
  });

  test("x64 filter rejects an arm64 caller", () => {
    assert.equal(run(filters.x64, { nr: 0, arch: ARCH_VALUE.arm64 }), EPERM);
  });
});

describe("always-denied syscalls", () => {
  for (const arch of ARCHES) {
    test(`${arch}: each is EPERM, whatever the arguments`, () => {
      const names = arch === "x64" ? [...ALWAYS_DENIED, ...X86_ONLY_DENIED] : ALWAYS_DENIED;
      for (const name of names) {
        assert.equal(call(arch, name), EPERM, `${name}()`);
        assert.equal(call(arch, name, -1n, HIGH, 7, 0xffffffff), EPERM, `${name}(junk)`);
      }
    });
  }

  test("clone3 is ENOSYS (so glibc falls back to clone)", () => {
    for (const arch of ARCHES) assert.equal(call(arch, "clone3", 0, 88), ENOSYS);
  });

  test("x86-only syscalls have no number on arm64", () => {
    for (const name of X86_ONLY_DENIED) assert.equal(syscallNumber(name, "arm64"), null);
  });
});

describe("everything else is allowed", () => {
  for (const arch of ARCHES) {
    test(`${arch}: every syscall number without a rule is allowed`, () => {
      const named = new Set(
        seccompRules()
          .filter((r): r is SyscallRule => r.syscall !== "*" && r.arches.includes(arch))
          .map((r) => nr(r.syscall, arch)),
      );
      let allowed = 0;
      for (let n = 0; n < 600; n++) {
        if (named.has(n)) continue;
        assert.equal(
          run(filters[arch], { nr: n, arch: ARCH_VALUE[arch], args: [1, 2, 3] }),
          ALLOW,
          `nr ${n}`,
        );
        allowed++;
      }
      assert.ok(allowed > 500);
    });
  }

  test("common calls by number: read, write, openat, execve, getpid", () => {
    // x86_64 / generic numbers written out independently of syscalls.ts
    const x64 = { read: 0, write: 1, openat: 257, execve: 59, getpid: 39 };
    const arm64 = { read: 63, write: 64, openat: 56, execve: 221, getpid: 172 };
    for (const n of Object.values(x64))
      assert.equal(run(filters.x64, { nr: n, arch: ARCH_VALUE.x64 }), ALLOW);
    for (const n of Object.values(arm64))
      assert.equal(run(filters.arm64, { nr: n, arch: ARCH_VALUE.arm64 }), ALLOW);
  });
});

const CLONE_NEW = {
  NS: 0x00020000,
  CGROUP: 0x02000000,
  UTS: 0x04000000,
  IPC: 0x08000000,
  USER: 0x10000000,
  PID: 0x20000000,
  NET: 0x40000000,
};
const SIGCHLD = 17;
const THREAD_FLAGS = 0x3d0f00; // what glibc's pthread_create passes

describe("clone", () => {
  for (const arch of ARCHES) {
    test(`${arch}: fork- and thread-style clone allowed`, () => {
      assert.equal(call(arch, "clone", SIGCHLD), ALLOW);
      assert.equal(call(arch, "clone", THREAD_FLAGS), ALLOW);
      assert.equal(call(arch, "clone", 0), ALLOW);
    });

    test(`${arch}: each namespace flag is EPERM, alone and with others`, () => {
      for (const [name, flag] of Object.entries(CLONE_NEW)) {
        assert.equal(call(arch, "clone", flag | SIGCHLD), EPERM, `CLONE_NEW${name}`);
        assert.equal(call(arch, "clone", (flag | THREAD_FLAGS) >>> 0), EPERM, `CLONE_NEW${name}|thread`);
      }
    });

    test(`${arch}: flags are arg0; only its low 32 bits count (the kernel uses lower_32_bits)`, () => {
      assert.equal(call(arch, "clone", HIGH | BigInt(CLONE_NEW.USER)), EPERM);
      assert.equal(call(arch, "clone", HIGH | BigInt(SIGCHLD)), ALLOW, "junk upper half alone is harmless");
      // namespace bits in the other arguments (stack, tids, tls) are not flags
      assert.equal(
        call(arch, "clone", SIGCHLD, CLONE_NEW.USER, CLONE_NEW.NET, CLONE_NEW.PID, CLONE_NEW.NS),
        ALLOW,
      );
    });
  }
});

const AF = {
  UNIX: 1,
  INET: 2,
  INET6: 10,
  NETLINK: 16,
  PACKET: 17,
  ALG: 38,
  VSOCK: 40,
  BLUETOOTH: 31,
  KEY: 15,
};
const SOCK = { STREAM: 1, DGRAM: 2, RAW: 3, SEQPACKET: 5, PACKET: 10, NONBLOCK: 0x800, CLOEXEC: 0x80000 };
const NETLINK = { ROUTE: 0, AUDIT: 9, KOBJECT_UEVENT: 15, GENERIC: 16, SOCK_DIAG: 4 };

describe("socket", () => {
  for (const arch of ARCHES) {
    const sock = (d: number | bigint, t: number | bigint, p: number | bigint = 0) =>
      call(arch, "socket", d, t, p);

    test(`${arch}: unix, inet, inet6 stream/dgram allowed (with NONBLOCK/CLOEXEC)`, () => {
      for (const d of [AF.UNIX, AF.INET, AF.INET6]) {
        for (const t of [SOCK.STREAM, SOCK.DGRAM, SOCK.SEQPACKET]) {
          assert.equal(sock(d, t), ALLOW, `socket(${d}, ${t})`);
          assert.equal(sock(d, t | SOCK.NONBLOCK | SOCK.CLOEXEC, 6), ALLOW);
        }
      }
      assert.equal(sock(AF.INET, SOCK.DGRAM, 1 /* IPPROTO_ICMP: ping socket */), ALLOW);
    });

    test(`${arch}: SOCK_RAW and SOCK_PACKET EPERM in every non-netlink domain`, () => {
      for (const d of [AF.UNIX, AF.INET, AF.INET6, AF.PACKET]) {
        for (const t of [SOCK.RAW, SOCK.PACKET]) {
          assert.equal(sock(d, t), EPERM, `socket(${d}, ${t})`);
          assert.equal(sock(d, t | SOCK.CLOEXEC | SOCK.NONBLOCK), EPERM, `socket(${d}, ${t}|flags)`);
          assert.equal(sock(d, HIGH | BigInt(t)), EPERM, `socket(${d}, high|${t})`);
        }
      }
    });

    test(`${arch}: other domains EPERM`, () => {
      for (const d of [0, AF.PACKET, AF.ALG, AF.VSOCK, AF.BLUETOOTH, AF.KEY, 3, 4, 5, 44, 45, 255]) {
        assert.equal(sock(d, SOCK.DGRAM), EPERM, `domain ${d}`);
        assert.equal(sock(d, SOCK.STREAM), EPERM, `domain ${d}`);
      }
      // junk in the upper half must not turn a denied domain into an allowed one or vice versa
      assert.equal(sock(HIGH | BigInt(AF.PACKET), SOCK.DGRAM), EPERM);
      assert.equal(sock(HIGH | BigInt(AF.INET), SOCK.STREAM), ALLOW);
    });

    test(`${arch}: netlink only with NETLINK_ROUTE (raw or dgram, as glibc and ip use it)`, () => {
      assert.equal(sock(AF.NETLINK, SOCK.RAW | SOCK.CLOEXEC, NETLINK.ROUTE), ALLOW);
      assert.equal(sock(AF.NETLINK, SOCK.DGRAM, NETLINK.ROUTE), ALLOW);
      assert.equal(sock(AF.NETLINK, SOCK.RAW, HIGH | BigInt(NETLINK.ROUTE)), ALLOW);
      for (const p of [NETLINK.AUDIT, NETLINK.KOBJECT_UEVENT, NETLINK.GENERIC, NETLINK.SOCK_DIAG, 1, 31]) {
        assert.equal(sock(AF.NETLINK, SOCK.RAW, p), EPERM, `netlink protocol ${p}`);
        assert.equal(sock(AF.NETLINK, SOCK.DGRAM, p), EPERM, `netlink protocol ${p}`);
      }
      assert.equal(sock(AF.NETLINK, SOCK.RAW, HIGH | BigInt(NETLINK.KOBJECT_UEVENT)), EPERM);
    });

    test(`${arch}: socketpair only AF_UNIX`, () => {
      assert.equal(call(arch, "socketpair", AF.UNIX, SOCK.STREAM, 0, 0x1000), ALLOW);
      assert.equal(call(arch, "socketpair", AF.UNIX, SOCK.DGRAM | SOCK.CLOEXEC), ALLOW);
      for (const d of [AF.INET, AF.INET6, AF.NETLINK, AF.PACKET, AF.ALG, 0]) {
        assert.equal(call(arch, "socketpair", d, SOCK.STREAM), EPERM, `socketpair(${d})`);
      }
    });
  }
});

describe("ioctl", () => {
  const TIOCSTI = 0x5412;
  const TIOCLINUX = 0x541c;
  for (const arch of ARCHES) {
    test(`${arch}: TIOCSTI and TIOCLINUX EPERM, also with junk in the upper half`, () => {
      for (const req of [TIOCSTI, TIOCLINUX]) {
        assert.equal(call(arch, "ioctl", 0, req), EPERM);
        assert.equal(call(arch, "ioctl", 2, HIGH | BigInt(req), 0x1234), EPERM, "CVE-2019-10063 style");
        assert.equal(call(arch, "ioctl", 0, 0xffffffff00000000n | BigInt(req)), EPERM);
      }
    });

    test(`${arch}: other requests allowed (TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO)`, () => {
      for (const req of [0x5401, 0x5413, 0x541b, 0x5421, 0x5411, 0x5413]) {
        assert.equal(call(arch, "ioctl", 1, req), ALLOW, `ioctl 0x${req.toString(16)}`);
      }
      assert.equal(
        call(arch, "ioctl", TIOCSTI, 0x5401),
        ALLOW,
        "fd number equal to TIOCSTI is not the request",
      );
    });
  }
});

describe("personality", () => {
  for (const arch of ARCHES) {
    test(`${arch}: only PER_LINUX and the query`, () => {
      assert.equal(call(arch, "personality", 0), ALLOW);
      assert.equal(call(arch, "personality", 0xffffffff), ALLOW);
      assert.equal(call(arch, "personality", -1n), ALLOW, "query passed as a 64-bit -1");
      const ADDR_NO_RANDOMIZE = 0x0040000;
      const READ_IMPLIES_EXEC = 0x0400000;
      const PER_LINUX32 = 0x0008;
      for (const p of [ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, PER_LINUX32, 0x0020000, 1, 0xfffffffe]) {
        assert.equal(call(arch, "personality", p), EPERM, `personality(0x${p.toString(16)})`);
      }
      assert.equal(call(arch, "personality", HIGH | BigInt(ADDR_NO_RANDOMIZE)), EPERM);
    });
  }
});

describe("rule table", () => {
  test("every rule documented; every syscall in the table has a rule; no duplicates", () => {
    const rules = seccompRules();
    for (const r of rules) {
      assert.ok(r.why.length > 3 && r.condition.length > 3, `${r.syscall} documented`);
      assert.ok(r.errno === "EPERM" || r.errno === "ENOSYS");
    }
    const names = rules.filter((r): r is SyscallRule => r.syscall !== "*").map((r) => r.syscall);
    assert.equal(new Set(names).size, names.length);
    assert.deepEqual(new Set(names), new Set(Object.keys(SYSCALLS)));
    assert.deepEqual(
      rules.filter((r) => r.syscall === "*").map((r) => r.match.kind),
      ["foreign-arch", "x32"],
    );
  });

  test("docs/seccomp.md contains the table generated from the rules", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../../../docs/seccomp.md", import.meta.url)), "utf8");
    assert.ok(
      doc.includes(seccompRulesMarkdown()),
      "regenerate the table in docs/seccomp.md from seccompRulesMarkdown()",
    );
  });
});

describe("syscall numbers agree with independent sources", () => {
  /** Newer than Debian 12's uapi headers and libseccomp 2.5.4. */
  const NEWER_THAN_SOURCES = new Set<string>(["open_tree_attr"]);

  function parseHeader(path: string): Map<string, number> {
    const map = new Map<string, number>();
    for (const m of readFileSync(path, "utf8").matchAll(/^#define __NR_(\w+)\s+(\d+)\s*$/gm)) {
      map.set(m[1]!, Number(m[2]));
    }
    return map;
  }

  const headers: Record<Arch, string> = {
    x64: "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
    arm64: "/usr/include/asm-generic/unistd.h",
  };
  for (const arch of ARCHES) {
    test(`${arch}: kernel uapi header ${headers[arch]}`, (t) => {
      if (!existsSync(headers[arch])) return t.skip(`${headers[arch]} not installed`);
      const table = parseHeader(headers[arch]);
      for (const name of Object.keys(SYSCALLS) as SyscallName[]) {
        const ours = syscallNumber(name, arch);
        const theirs = table.get(name);
        if (theirs === undefined && (NEWER_THAN_SOURCES.has(name) || ours === null)) continue;
        assert.equal(ours, theirs ?? null, `${name} on ${arch}`);
      }
    });
  }

  test("libseccomp's tables (via python3 ctypes)", (t) => {
    const script = `
import ctypes, json, sys
try:
    lib = ctypes.CDLL("libseccomp.so.2")
except OSError:
    print("null"); sys.exit(0)
f = lib.seccomp_syscall_resolve_name_arch
f.argtypes = [ctypes.c_uint32, ctypes.c_char_p]; f.restype = ctypes.c_int
names = json.loads(sys.argv[1])
print(json.dumps({n: [f(0xc000003e, n.encode()), f(0xc00000b7, n.encode())] for n in names}))
`;
    const r = spawnSync("python3", ["-c", script, JSON.stringify(Object.keys(SYSCALLS))], {
      encoding: "utf8",
    });
    if (r.error || r.status !== 0) return t.skip("python3 not available");
    const resolved = JSON.parse(r.stdout) as Record<string, [number, number]> | null;
    if (!resolved) return t.skip("libseccomp.so.2 not installed");
    for (const [name, [x64, arm64]] of Object.entries(resolved)) {
      if (NEWER_THAN_SOURCES.has(name) && x64 < 0) continue;
      const s = name as SyscallName;
      // libseccomp answers a negative pseudo-number for syscalls an arch lacks
      assert.equal(syscallNumber(s, "x64"), x64 < 0 ? null : x64, `${name} x64`);
      assert.equal(syscallNumber(s, "arm64"), arm64 < 0 ? null : arm64, `${name} arm64`);
    }
  });
});
