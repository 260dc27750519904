/**
 * Syscall numbers for the architectures the seccomp filter supports.
 *
 * Only the syscalls the filter names are listed. Sources, cross-checked against each other
 * (test/unit/seccomp.test.ts re-checks them against the headers and libseccomp when present):
 * - x64:   /usr/include/x86_64-linux-gnu/asm/unistd_64.h (Debian 12, Linux 6.1 uapi)
 * - arm64: /usr/include/asm-generic/unistd.h (the generic table aarch64 uses)
 * - libseccomp 2.5.4's own tables (seccomp_syscall_resolve_name_arch) agree on every entry.
 * open_tree_attr (Linux 6.15) is newer than those headers: 467 on both, from the kernel's
 * arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h.
 *
 * `null` means the syscall does not exist on that architecture (x86-only port I/O and LDT calls,
 * and uselib, which the generic table never had).
 */

export type Arch = "x64" | "arm64";
export const ARCHES: readonly Arch[] = ["x64", "arm64"];

/** AUDIT_ARCH_* values the kernel puts in seccomp_data.arch (linux/audit.h). */
export const AUDIT_ARCH: Readonly<Record<Arch, number>> = {
  x64: 0xc000003e, // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
  arm64: 0xc00000b7, // EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
};

/** x32 ABI syscalls arrive on x86_64 with this bit set in nr (and arch still AUDIT_ARCH_X86_64). */
export const X32_SYSCALL_BIT = 0x40000000;

interface SyscallNumbers {
  readonly x64: number | null;
  readonly arm64: number | null;
}

export const SYSCALLS = {
  // filtered by argument
  socket: { x64: 41, arm64: 198 },
  socketpair: { x64: 53, arm64: 199 },
  clone: { x64: 56, arm64: 220 },
  clone3: { x64: 435, arm64: 435 },
  ioctl: { x64: 16, arm64: 29 },
  personality: { x64: 135, arm64: 92 },

  // reaching into other processes
  ptrace: { x64: 101, arm64: 117 },
  process_vm_readv: { x64: 310, arm64: 270 },
  process_vm_writev: { x64: 311, arm64: 271 },
  pidfd_getfd: { x64: 438, arm64: 438 },
  process_madvise: { x64: 440, arm64: 440 },

  // kernel code and kernel objects
  kexec_load: { x64: 246, arm64: 104 },
  kexec_file_load: { x64: 320, arm64: 294 },
  init_module: { x64: 175, arm64: 105 },
  finit_module: { x64: 313, arm64: 273 },
  delete_module: { x64: 176, arm64: 106 },
  bpf: { x64: 321, arm64: 280 },
  perf_event_open: { x64: 298, arm64: 241 },
  keyctl: { x64: 250, arm64: 219 },
  add_key: { x64: 248, arm64: 217 },
  request_key: { x64: 249, arm64: 218 },

  // mounts and namespaces
  mount: { x64: 165, arm64: 40 },
  umount2: { x64: 166, arm64: 39 },
  pivot_root: { x64: 155, arm64: 41 },
  move_mount: { x64: 429, arm64: 429 },
  open_tree: { x64: 428, arm64: 428 },
  open_tree_attr: { x64: 467, arm64: 467 },
  fsopen: { x64: 430, arm64: 430 },
  fsconfig: { x64: 431, arm64: 431 },
  fsmount: { x64: 432, arm64: 432 },
  fspick: { x64: 433, arm64: 433 },
  mount_setattr: { x64: 442, arm64: 442 },
  chroot: { x64: 161, arm64: 51 },
  unshare: { x64: 272, arm64: 97 },
  setns: { x64: 308, arm64: 268 },

  // large attack surface, rarely needed by tools
  io_uring_setup: { x64: 425, arm64: 425 },
  io_uring_enter: { x64: 426, arm64: 426 },
  io_uring_register: { x64: 427, arm64: 427 },
  userfaultfd: { x64: 323, arm64: 282 },

  // host administration
  acct: { x64: 163, arm64: 89 },
  swapon: { x64: 167, arm64: 224 },
  swapoff: { x64: 168, arm64: 225 },
  reboot: { x64: 169, arm64: 142 },
  syslog: { x64: 103, arm64: 116 },
  quotactl: { x64: 179, arm64: 60 },
  quotactl_fd: { x64: 443, arm64: 443 },
  settimeofday: { x64: 164, arm64: 170 },
  clock_settime: { x64: 227, arm64: 112 },
  vhangup: { x64: 153, arm64: 58 },

  // file handles bypass path-based checks
  name_to_handle_at: { x64: 303, arm64: 264 },
  open_by_handle_at: { x64: 304, arm64: 265 },

  // obsolete
  lookup_dcookie: { x64: 212, arm64: 18 },
  uselib: { x64: 134, arm64: null },

  // x86 only
  modify_ldt: { x64: 154, arm64: null },
  iopl: { x64: 172, arm64: null },
  ioperm: { x64: 173, arm64: null },
} as const satisfies Record<string, SyscallNumbers>;

export type SyscallName = keyof typeof SYSCALLS;

/** The syscall's number on `arch`, or null when the architecture has no such syscall. */
export function syscallNumber(name: SyscallName, arch: Arch): number | null {
  const entry: SyscallNumbers = SYSCALLS[name];
  return entry[arch];
}
