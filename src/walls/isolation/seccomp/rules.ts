/**
 * The box's seccomp rules: one table, data only (the BPF compiler is bpf.ts).
 *
 * `seccompRules()` is the single source of truth: the BPF program, docs/seccomp.md and the prove
 * suite are all derived from it. Denials return an errno (EPERM, or ENOSYS for clone3), never
 * kill the process, so tools inside the box fail cleanly with an error they already handle.
 */
import type { Arch, SyscallName } from "./syscalls.js";

export type { Arch } from "./syscalls.js";

export type Errno = "EPERM" | "ENOSYS";
/** errno values; identical on x86_64 and aarch64 (asm-generic/errno*.h). */
export const ERRNO: Readonly<Record<Errno, number>> = { EPERM: 1, ENOSYS: 38 };

export type ArgIndex = 0 | 1 | 2 | 3 | 4 | 5;

/**
 * One test on a syscall argument. Only the LOW 32 BITS are ever compared: every argument we
 * filter on is an int or unsigned int in the kernel (and clone() uses lower_32_bits(flags)), so
 * the kernel ignores the upper half. Comparing 64 bits would let a caller dodge a deny match by
 * setting junk in the upper half (the Flatpak TIOCSTI bypass, CVE-2019-10063).
 */
export type ArgTest =
  /** (arg & mask) is one of values; mask defaults to all 32 bits. */
  | { readonly arg: ArgIndex; readonly op: "in"; readonly values: readonly number[]; readonly mask?: number }
  /** arg has at least one of these bits set. */
  | { readonly arg: ArgIndex; readonly op: "anyBit"; readonly bits: number };

export type Verdict = "allow" | "deny";

/** A case matches when ALL its tests hold; the first matching case decides. */
export interface ArgCase {
  readonly when: readonly ArgTest[];
  readonly verdict: Verdict;
}

export type SyscallMatch =
  | { readonly kind: "always" }
  | { readonly kind: "args"; readonly cases: readonly ArgCase[]; readonly otherwise: Verdict };

interface RuleText {
  /** Human-readable condition, for docs. */
  readonly condition: string;
  /** errno returned when the rule denies. */
  readonly errno: Errno;
  readonly why: string;
  /** Architectures the rule is compiled for. */
  readonly arches: readonly Arch[];
}

/** A guard on seccomp_data itself, checked before the syscall number. */
export interface ArchRule extends RuleText {
  readonly syscall: "*";
  readonly match: { readonly kind: "foreign-arch" } | { readonly kind: "x32" };
}

export interface SyscallRule extends RuleText {
  readonly syscall: SyscallName;
  readonly match: SyscallMatch;
}

export type SeccompRule = ArchRule | SyscallRule;

// --- constants the rules use (linux/socket.h, linux/net.h, linux/sched.h, linux/personality.h, asm-generic/ioctls.h)

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const NETLINK_ROUTE = 0;
const SOCK_RAW = 3;
const SOCK_PACKET = 10;
/** socket()'s type argument also carries SOCK_NONBLOCK | SOCK_CLOEXEC; the type proper is the low nibble. */
const SOCK_TYPE_MASK = 0xf;

/**
 * Namespace flags clone() accepts. CLONE_NEWTIME (0x80) is deliberately absent: in clone() that
 * bit belongs to the exit-signal byte (CSIGNAL), so it can only be requested through clone3 or
 * unshare, both of which are blocked outright.
 */
const CLONE_NAMESPACE_FLAGS =
  0x00020000 | // CLONE_NEWNS
  0x02000000 | // CLONE_NEWCGROUP
  0x04000000 | // CLONE_NEWUTS
  0x08000000 | // CLONE_NEWIPC
  0x10000000 | // CLONE_NEWUSER
  0x20000000 | // CLONE_NEWPID
  0x40000000; // CLONE_NEWNET

const PER_LINUX = 0;
const PERSONALITY_QUERY = 0xffffffff;
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;

const BOTH: readonly Arch[] = ["x64", "arm64"];
const X64: readonly Arch[] = ["x64"];

function deny(syscall: SyscallName, why: string, arches: readonly Arch[] = BOTH): SyscallRule {
  return { syscall, arches, match: { kind: "always" }, condition: "always", errno: "EPERM", why };
}

const RULES: readonly SeccompRule[] = [
  {
    syscall: "*",
    arches: BOTH,
    match: { kind: "foreign-arch" },
    condition: "seccomp_data.arch is not the box's native arch (e.g. i386 via int 0x80 on x86_64)",
    errno: "EPERM",
    why: "a second syscall table would bypass every number-based rule below",
  },
  {
    syscall: "*",
    arches: X64,
    match: { kind: "x32" },
    condition: "nr & 0x40000000 (x32 ABI)",
    errno: "EPERM",
    why: "x32 syscalls share AUDIT_ARCH_X86_64 but use other numbers, bypassing the rules below",
  },

  // --- argument-filtered
  {
    syscall: "clone",
    arches: BOTH,
    match: {
      kind: "args",
      cases: [{ when: [{ arg: 0, op: "anyBit", bits: CLONE_NAMESPACE_FLAGS }], verdict: "deny" }],
      otherwise: "allow",
    },
    condition: "flags (arg0 on x86_64 and aarch64) has any CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET}",
    errno: "EPERM",
    why: "new namespaces (above all user namespaces) open kernel attack surface and undo the box's own",
  },
  {
    syscall: "clone3",
    arches: BOTH,
    match: { kind: "always" },
    condition: "always",
    errno: "ENOSYS",
    why: "its flags live in memory the filter cannot read; ENOSYS makes glibc fall back to clone()",
  },
  {
    syscall: "socket",
    arches: BOTH,
    match: {
      kind: "args",
      cases: [
        // Netlink sockets are SOCK_RAW or SOCK_DGRAM by design (glibc's getaddrinfo and `ip` open
        // AF_NETLINK/SOCK_RAW/NETLINK_ROUTE), and "raw" there means no packet access, so the
        // netlink decision comes before the raw-type check.
        {
          when: [
            { arg: 0, op: "in", values: [AF_NETLINK] },
            { arg: 2, op: "in", values: [NETLINK_ROUTE] },
          ],
          verdict: "allow",
        },
        { when: [{ arg: 0, op: "in", values: [AF_NETLINK] }], verdict: "deny" },
        {
          when: [{ arg: 1, op: "in", values: [SOCK_RAW, SOCK_PACKET], mask: SOCK_TYPE_MASK }],
          verdict: "deny",
        },
        { when: [{ arg: 0, op: "in", values: [AF_UNIX, AF_INET, AF_INET6] }], verdict: "allow" },
      ],
      otherwise: "deny",
    },
    condition:
      "domain not AF_UNIX/AF_INET/AF_INET6/AF_NETLINK; AF_NETLINK with protocol other than NETLINK_ROUTE; " +
      "type & 0xf is SOCK_RAW or SOCK_PACKET (except for NETLINK_ROUTE)",
    errno: "EPERM",
    why: "raw/packet sockets, AF_ALG, AF_VSOCK, uevent/audit netlink etc. are sniffing tools and attack surface",
  },
  {
    syscall: "socketpair",
    arches: BOTH,
    match: {
      kind: "args",
      cases: [{ when: [{ arg: 0, op: "in", values: [AF_UNIX] }], verdict: "allow" }],
      otherwise: "deny",
    },
    condition: "domain is not AF_UNIX",
    errno: "EPERM",
    why: "only unix socketpairs are meaningful; keeps the socket() domain policy airtight",
  },
  {
    syscall: "ioctl",
    arches: BOTH,
    match: {
      kind: "args",
      cases: [{ when: [{ arg: 1, op: "in", values: [TIOCSTI, TIOCLINUX] }], verdict: "deny" }],
      otherwise: "allow",
    },
    condition: "request is TIOCSTI (0x5412) or TIOCLINUX (0x541C)",
    errno: "EPERM",
    why: "would type commands into the host's terminal, which the box shares",
  },
  {
    syscall: "personality",
    arches: BOTH,
    match: {
      kind: "args",
      cases: [{ when: [{ arg: 0, op: "in", values: [PER_LINUX, PERSONALITY_QUERY] }], verdict: "allow" }],
      otherwise: "deny",
    },
    condition: "persona is not PER_LINUX (0) or the query 0xffffffff",
    errno: "EPERM",
    why: "other personas disable ASLR (ADDR_NO_RANDOMIZE) or make data executable (READ_IMPLIES_EXEC)",
  },

  // --- reaching into other processes
  deny("ptrace", "inspect and control other processes in the box"),
  deny("process_vm_readv", "read another process's memory"),
  deny("process_vm_writev", "write another process's memory"),
  deny("pidfd_getfd", "steal a file descriptor from another process"),
  deny("process_madvise", "act on another process's memory"),

  // --- kernel code and kernel objects
  deny("kexec_load", "boot another kernel"),
  deny("kexec_file_load", "boot another kernel"),
  deny("init_module", "load kernel code"),
  deny("finit_module", "load kernel code"),
  deny("delete_module", "unload kernel code"),
  deny("bpf", "eBPF: large kernel attack surface, tracing"),
  deny("perf_event_open", "kernel profiling: attack surface and side channels"),
  deny("keyctl", "kernel keyrings are not namespaced; could reach the host's keys"),
  deny("add_key", "kernel keyrings are not namespaced"),
  deny("request_key", "kernel keyrings are not namespaced; can call out to host helpers"),

  // --- mounts and namespaces: the box's filesystem view is fixed by bwrap
  deny("mount", "change the filesystem view"),
  deny("umount2", "remove a mount and reveal what it hides"),
  deny("pivot_root", "change the root filesystem"),
  deny("move_mount", "new mount API"),
  deny("open_tree", "new mount API: clone mount trees"),
  deny("open_tree_attr", "new mount API (Linux 6.15): clone mount trees with attributes"),
  deny("fsopen", "new mount API"),
  deny("fsconfig", "new mount API"),
  deny("fsmount", "new mount API"),
  deny("fspick", "new mount API: reconfigure an existing mount"),
  deny("mount_setattr", "change mount attributes (e.g. drop read-only)"),
  deny("chroot", "chroot games are a classic escape aid"),
  deny("unshare", "new namespaces open kernel attack surface"),
  deny("setns", "join another namespace"),

  // --- large attack surface, rarely needed by tools
  deny("io_uring_setup", "io_uring: frequent kernel bugs, and its ops bypass syscall filtering"),
  deny("io_uring_enter", "io_uring"),
  deny("io_uring_register", "io_uring"),
  deny("userfaultfd", "stalls kernel page faults; a standard exploitation aid"),

  // --- host administration (need host capabilities; denied as defense in depth)
  deny("acct", "process accounting is host-wide"),
  deny("swapon", "host swap"),
  deny("swapoff", "host swap"),
  deny("reboot", "reboot the host (or the box's pid namespace)"),
  deny("syslog", "read or clear the host kernel log"),
  deny("quotactl", "host disk quotas"),
  deny("quotactl_fd", "host disk quotas"),
  deny("settimeofday", "set the host clock; clocks are not namespaced"),
  deny("clock_settime", "set the host clock; clocks are not namespaced"),
  deny("vhangup", "hang up the terminal the box shares with the host"),

  // --- file handles
  deny("name_to_handle_at", "file handles: groundwork for open_by_handle_at"),
  deny("open_by_handle_at", "opens files by handle, bypassing paths and mounts (the 'shocker' escape)"),

  // --- obsolete
  deny("lookup_dcookie", "obsolete profiling call"),
  deny("uselib", "obsolete loader call with a history of bugs", X64),

  // --- x86 only
  deny("modify_ldt", "16-bit segments: attack surface", X64),
  deny("iopl", "raw port I/O", X64),
  deny("ioperm", "raw port I/O", X64),
];

/** The rules, in the order the filter checks them. */
export function seccompRules(): readonly SeccompRule[] {
  return RULES;
}

/** docs/seccomp.md's table, generated from the rules. */
export function seccompRulesMarkdown(): string {
  const lines = ["| syscall | arch | denied when | returns | why |", "|---|---|---|---|---|"];
  for (const r of RULES) {
    const name = r.syscall === "*" ? "any" : `\`${r.syscall}\``;
    const arches = r.arches.length === BOTH.length ? "all" : r.arches.join(", ");
    lines.push(`| ${name} | ${arches} | ${r.condition} | ${r.errno} | ${r.why} |`);
  }
  return `${lines.join("\n")}\n`;
}
