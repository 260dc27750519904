// The pause's seccomp filter (pure): which syscalls wait for fourwall, as classic BPF that
// native/fourwall-pause.c installs inside the box with a user-notification listener.
import { type Arch, AUDIT_ARCH, hostSeccompArch, X32_SYSCALL_BIT } from "../isolation/index.js";

export const SECCOMP_RET_USER_NOTIF = 0x7fc00000;
const SECCOMP_RET_ALLOW = 0x7fff0000;
/** O_TRUNC (asm-generic: the same on x86_64 and arm64). */
export const O_TRUNC = 0o1000;

/**
 * The syscalls that can destroy a file that existed before the run. `always`: every call is a
 * notification (the C side decides whether a pre-existing workdir file is involved); `trunc-arg`:
 * only when that argument carries O_TRUNC (an open that only reads or appends never waits).
 * openat2's flags are in a struct a filter cannot read: every openat2 is a notification and the
 * supervisor reads the flags (glibc's open() never uses openat2, so this costs little).
 */
export type PauseWhen = { kind: "always" } | { kind: "trunc-arg"; arg: number };

export interface PauseSyscall {
  name: string;
  nr: Readonly<Record<Arch, number | null>>;
  when: PauseWhen;
}

const always: PauseWhen = { kind: "always" };

// x64: asm/unistd_64.h; arm64: asm-generic/unistd.h (arm64 has only the *at forms); fchmodat2: Linux 6.6.
export const PAUSE_SYSCALLS: readonly PauseSyscall[] = [
  { name: "unlink", nr: { x64: 87, arm64: null }, when: always },
  { name: "unlinkat", nr: { x64: 263, arm64: 35 }, when: always },
  { name: "rmdir", nr: { x64: 84, arm64: null }, when: always },
  { name: "rename", nr: { x64: 82, arm64: null }, when: always },
  { name: "renameat", nr: { x64: 264, arm64: 38 }, when: always },
  { name: "renameat2", nr: { x64: 316, arm64: 276 }, when: always },
  { name: "truncate", nr: { x64: 76, arm64: 45 }, when: always },
  { name: "ftruncate", nr: { x64: 77, arm64: 46 }, when: always },
  { name: "creat", nr: { x64: 85, arm64: null }, when: always },
  { name: "open", nr: { x64: 2, arm64: null }, when: { kind: "trunc-arg", arg: 1 } },
  { name: "openat", nr: { x64: 257, arm64: 56 }, when: { kind: "trunc-arg", arg: 2 } },
  { name: "openat2", nr: { x64: 437, arm64: 437 }, when: always },
  { name: "chmod", nr: { x64: 90, arm64: null }, when: always },
  { name: "fchmod", nr: { x64: 91, arm64: 52 }, when: always },
  { name: "fchmodat", nr: { x64: 268, arm64: 53 }, when: always },
  { name: "fchmodat2", nr: { x64: 452, arm64: 452 }, when: always },
];

// classic BPF opcodes (linux/bpf_common.h)
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JSET_K = 0x45;
const RET_K = 0x06;
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const argLow = (i: number) => 16 + 8 * i;

type Insn = [code: number, jt: number, jf: number, k: number];

/**
 * The filter for `arch` (default: this machine's). Layout, every jump forward and short:
 *   a foreign arch or an x32 call: allow (the box's own filter refuses those already);
 *   per syscall: `jeq nr` → notify, or (trunc-arg) load the flags and notify only with O_TRUNC;
 *   anything else: allow.
 */
export function buildPauseFilter(arch: Arch = hostSeccompArch()): Buffer {
  const calls = PAUSE_SYSCALLS.filter((s) => s.nr[arch] !== null);
  const out: Insn[] = [];
  // Jumps to the two returns at the end, patched once their position is known.
  const patches: { at: number; field: 1 | 2; to: "allow" | "notify" }[] = [];
  const emit = (insn: Insn, ...jumps: { field: 1 | 2; to: "allow" | "notify" }[]) => {
    const at = out.push(insn) - 1;
    for (const j of jumps) patches.push({ at, ...j });
  };
  emit([LD_W_ABS, 0, 0, OFFSET_ARCH]);
  emit([JEQ_K, 0, 0, AUDIT_ARCH[arch]], { field: 2, to: "allow" });
  emit([LD_W_ABS, 0, 0, OFFSET_NR]);
  if (arch === "x64") emit([JSET_K, 0, 0, X32_SYSCALL_BIT], { field: 1, to: "allow" });
  for (const s of calls)
    if (s.when.kind === "always") emit([JEQ_K, 0, 0, s.nr[arch]!], { field: 1, to: "notify" });
  // trunc-arg: jeq nr (no: skip the next two), load its flags, jset O_TRUNC (notify, else allow).
  for (const s of calls) {
    if (s.when.kind !== "trunc-arg") continue;
    emit([JEQ_K, 0, 2, s.nr[arch]!]);
    emit([LD_W_ABS, 0, 0, argLow(s.when.arg)]);
    emit([JSET_K, 0, 0, O_TRUNC], { field: 1, to: "notify" }, { field: 2, to: "allow" });
  }
  const target = { allow: out.push([RET_K, 0, 0, SECCOMP_RET_ALLOW]) - 1, notify: -1 };
  target.notify = out.push([RET_K, 0, 0, SECCOMP_RET_USER_NOTIF]) - 1;
  for (const p of patches) {
    const d = target[p.to] - (p.at + 1);
    if (d < 0 || d > 255) throw new Error(`pause filter: jump from ${p.at} out of range`);
    out[p.at]![p.field] = d;
  }
  const buf = Buffer.alloc(out.length * 8);
  out.forEach(([code, jt, jf, k], i) => {
    buf.writeUInt16LE(code, i * 8);
    buf.writeUInt8(jt, i * 8 + 2);
    buf.writeUInt8(jf, i * 8 + 3);
    buf.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return buf;
}
