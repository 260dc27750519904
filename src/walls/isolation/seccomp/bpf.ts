// The compiler: seccomp rules (rules.ts) → classic BPF, the raw struct sock_filter[] that
// `bwrap --seccomp FD` hands to prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER).
import {
  type ArgIndex,
  type ArgTest,
  ERRNO,
  type Errno,
  type SeccompRule,
  seccompRules,
  type Verdict,
} from "./rules.js";
import { type Arch, AUDIT_ARCH, syscallNumber, X32_SYSCALL_BIT } from "./syscalls.js";

// --- classic BPF

// Opcodes (linux/filter.h, linux/bpf_common.h).
const BPF_LD_W_ABS = 0x20; // A = *(u32 *)(seccomp_data + k)
const BPF_ALU_AND_K = 0x54; // A &= k
const BPF_JEQ_K = 0x15; // pc += (A == k) ? jt : jf
const BPF_JSET_K = 0x45; // pc += (A & k) ? jt : jf
const BPF_RET_K = 0x06; // return k

/** Max instructions the kernel accepts in one filter (BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;

export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_ERRNO = 0x00050000;

// struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
/** Low half of args[i]: both supported arches are little-endian, so it comes first. */
const argLowOffset = (i: ArgIndex): number => 16 + 8 * i;

/** A jump target: "next" (fall through, offset 0) or a label bound later. */
class Label {
  at = -1;
}
type Target = Label | "next";

interface Insn {
  readonly code: number;
  readonly k: number;
  readonly jt: Target;
  readonly jf: Target;
}

/** Tiny assembler: emits instructions with symbolic jump targets and resolves them, range-checked. */
class Assembler {
  private readonly insns: Insn[] = [];

  load(offset: number): void {
    this.emit(BPF_LD_W_ABS, offset);
  }
  and(mask: number): void {
    this.emit(BPF_ALU_AND_K, mask);
  }
  jeq(k: number, jt: Target, jf: Target): void {
    this.emit(BPF_JEQ_K, k, jt, jf);
  }
  jset(k: number, jt: Target, jf: Target): void {
    this.emit(BPF_JSET_K, k, jt, jf);
  }
  ret(k: number): void {
    this.emit(BPF_RET_K, k);
  }
  bind(label: Label): void {
    label.at = this.insns.length;
  }

  private emit(code: number, k: number, jt: Target = "next", jf: Target = "next"): void {
    this.insns.push({ code, k: k >>> 0, jt, jf });
  }

  /** struct sock_filter[] in the machine's byte order (little-endian on both supported arches). */
  toBuffer(): Buffer {
    if (this.insns.length > BPF_MAXINSNS) {
      throw new Error(`seccomp filter has ${this.insns.length} instructions, more than BPF_MAXINSNS`);
    }
    const buf = Buffer.alloc(this.insns.length * 8);
    this.insns.forEach((insn, pc) => {
      buf.writeUInt16LE(insn.code, pc * 8);
      buf.writeUInt8(resolve(insn.jt, pc), pc * 8 + 2);
      buf.writeUInt8(resolve(insn.jf, pc), pc * 8 + 3);
      buf.writeUInt32LE(insn.k, pc * 8 + 4);
    });
    return buf;
  }
}

/** Jumps are relative to the next instruction, forward only, and must fit cBPF's 8-bit jt/jf. */
function resolve(target: Target, pc: number): number {
  if (target === "next") return 0;
  if (target.at < 0) throw new Error(`unbound label at pc ${pc}`);
  const offset = target.at - (pc + 1);
  if (offset < 0 || offset > 255) throw new Error(`jump from pc ${pc} to ${target.at} out of cBPF range`);
  return offset;
}

function retValue(verdict: Verdict, errno: Errno): number {
  return verdict === "allow" ? SECCOMP_RET_ALLOW : SECCOMP_RET_ERRNO | ERRNO[errno];
}

/** The architecture of the running Node process, as a filter target. */
export function hostSeccompArch(): Arch {
  if (process.arch === "x64" || process.arch === "arm64") return process.arch;
  throw new Error(`no seccomp filter for architecture ${process.arch}`);
}

/**
 * Compile the rules into a cBPF program for `arch` (default: this machine's).
 *
 * Layout: arch guard, x32 guard (x64), then per syscall rule `jeq nr` followed by its body; every
 * body ends in a return, so the "not this syscall" branch can skip it with A still holding nr.
 * The final instruction allows everything no rule matched.
 */
export function buildSeccompFilter(options: { arch?: Arch } = {}): Buffer {
  const arch = options.arch ?? hostSeccompArch();
  const rules = seccompRules().filter((r) => r.arches.includes(arch));
  checkRules(rules, arch);
  return compile(rules, arch);
}

function compile(rules: readonly SeccompRule[], arch: Arch): Buffer {
  const asm = new Assembler();
  const deniedBy = (rule: SeccompRule): number => retValue("deny", rule.errno);

  for (const rule of rules) {
    if (rule.syscall !== "*") continue;
    const ok = new Label();
    if (rule.match.kind === "foreign-arch") {
      asm.load(OFFSET_ARCH);
      asm.jeq(AUDIT_ARCH[arch], ok, "next");
    } else {
      asm.load(OFFSET_NR);
      asm.jset(X32_SYSCALL_BIT, "next", ok);
    }
    asm.ret(deniedBy(rule));
    asm.bind(ok);
  }

  asm.load(OFFSET_NR);
  for (const rule of rules) {
    if (rule.syscall === "*") continue;
    const nr = syscallNumber(rule.syscall, arch)!; // checked by checkRules
    const next = new Label();
    asm.jeq(nr, "next", next);
    if (rule.match.kind === "always") {
      asm.ret(deniedBy(rule));
    } else {
      for (const c of rule.match.cases) {
        const fail = new Label();
        for (const test of c.when) emitTest(asm, test, fail);
        asm.ret(retValue(c.verdict, rule.errno));
        asm.bind(fail);
      }
      asm.ret(retValue(rule.match.otherwise, rule.errno));
    }
    asm.bind(next);
  }
  asm.ret(SECCOMP_RET_ALLOW);
  return asm.toBuffer();
}

/** Falls through when the test holds, jumps to `fail` otherwise. Clobbers A. */
function emitTest(asm: Assembler, test: ArgTest, fail: Label): void {
  asm.load(argLowOffset(test.arg));
  if (test.op === "anyBit") {
    asm.jset(test.bits, "next", fail);
    return;
  }
  if (test.mask !== undefined) asm.and(test.mask);
  const pass = new Label();
  test.values.forEach((value, i) => {
    const last = i === test.values.length - 1;
    asm.jeq(value, last ? "next" : pass, last ? fail : "next");
  });
  asm.bind(pass);
}

/** Catch table mistakes at build time rather than as a silently wrong filter. */
function checkRules(rules: readonly SeccompRule[], arch: Arch): void {
  const seen = new Set<string>();
  for (const rule of rules) {
    if (rule.syscall === "*") {
      if (rule.match.kind === "x32" && arch !== "x64") throw new Error("x32 guard only applies to x64");
      continue;
    }
    if (seen.has(rule.syscall))
      throw new Error(`two seccomp rules for ${rule.syscall}: only the first would apply`);
    seen.add(rule.syscall);
    if (syscallNumber(rule.syscall, arch) === null)
      throw new Error(`${rule.syscall} has no number on ${arch}`);
    if (rule.match.kind === "args") {
      for (const c of rule.match.cases) {
        if (c.when.length === 0) throw new Error(`${rule.syscall}: empty case`);
        for (const t of c.when)
          if (t.op === "in" && t.values.length === 0) throw new Error(`${rule.syscall}: empty value list`);
      }
    }
  }
}
