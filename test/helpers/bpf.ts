/**
 * A small classic-BPF interpreter for seccomp filters, written independently of the generator so
 * tests can run a generated program on synthetic `struct seccomp_data` and see what the kernel
 * would return. It accepts only what the kernel's seccomp checker accepts of cBPF (the subset we
 * need) and throws on anything else, so a malformed program fails loudly instead of "passing".
 */

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export interface SeccompData {
  nr: number;
  arch: number;
  instructionPointer?: bigint;
  /** Up to six 64-bit arguments; missing ones are 0. */
  args?: readonly (bigint | number)[];
}

const SECCOMP_DATA_SIZE = 64;
const MAX_INSNS = 4096;

// opcodes (linux/bpf_common.h)
const LD_W_ABS = 0x20;
const ALU_AND_K = 0x54;
const ALU_OR_K = 0x44;
const JMP_JA = 0x05;
const JMP_JEQ_K = 0x15;
const JMP_JGT_K = 0x25;
const JMP_JGE_K = 0x35;
const JMP_JSET_K = 0x45;
const RET_K = 0x06;
const RET_A = 0x16;

export function decode(program: Buffer): Insn[] {
  if (program.length === 0 || program.length % 8 !== 0) {
    throw new Error(`program length ${program.length} is not a positive multiple of 8`);
  }
  const insns: Insn[] = [];
  for (let off = 0; off < program.length; off += 8) {
    insns.push({
      code: program.readUInt16LE(off),
      jt: program.readUInt8(off + 2),
      jf: program.readUInt8(off + 3),
      k: program.readUInt32LE(off + 4),
    });
  }
  return insns;
}

/** Static checks mirroring the kernel's (bpf_check_classic + seccomp_check_filter). Throws on failure. */
export function validate(program: Buffer): Insn[] {
  const insns = decode(program);
  if (insns.length > MAX_INSNS) throw new Error(`${insns.length} instructions > ${MAX_INSNS}`);
  insns.forEach((insn, pc) => {
    switch (insn.code) {
      case LD_W_ABS:
        if (insn.k % 4 !== 0 || insn.k + 4 > SECCOMP_DATA_SIZE)
          throw new Error(`pc ${pc}: bad load offset ${insn.k}`);
        break;
      case JMP_JEQ_K:
      case JMP_JGT_K:
      case JMP_JGE_K:
      case JMP_JSET_K:
        if (pc + 1 + insn.jt >= insns.length || pc + 1 + insn.jf >= insns.length) {
          throw new Error(`pc ${pc}: jump past the end`);
        }
        break;
      case JMP_JA:
        if (pc + 1 + insn.k >= insns.length) throw new Error(`pc ${pc}: ja past the end`);
        break;
      case ALU_AND_K:
      case ALU_OR_K:
      case RET_K:
      case RET_A:
        break;
      default:
        throw new Error(`pc ${pc}: opcode 0x${insn.code.toString(16)} not supported`);
    }
  });
  const last = insns[insns.length - 1]!;
  if (last.code !== RET_K && last.code !== RET_A) throw new Error("program does not end with a return");
  return insns;
}

export function encodeSeccompData(data: SeccompData): Buffer {
  const buf = Buffer.alloc(SECCOMP_DATA_SIZE);
  buf.writeInt32LE(data.nr | 0, 0);
  buf.writeUInt32LE(data.arch >>> 0, 4);
  buf.writeBigUInt64LE(data.instructionPointer ?? 0n, 8);
  for (let i = 0; i < 6; i++) {
    const a = data.args?.[i] ?? 0;
    buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 16 + 8 * i);
  }
  return buf;
}

/** Run the filter; returns the 32-bit SECCOMP_RET_* value. */
export function run(program: Buffer, data: SeccompData): number {
  const insns = validate(program);
  const mem = encodeSeccompData(data);
  let a = 0;
  let pc = 0;
  for (let steps = 0; steps <= insns.length; steps++) {
    const insn = insns[pc];
    if (!insn) throw new Error(`fell off the program at pc ${pc}`);
    switch (insn.code) {
      case LD_W_ABS:
        a = mem.readUInt32LE(insn.k);
        pc++;
        break;
      case ALU_AND_K:
        a = (a & insn.k) >>> 0;
        pc++;
        break;
      case ALU_OR_K:
        a = (a | insn.k) >>> 0;
        pc++;
        break;
      case JMP_JA:
        pc += 1 + insn.k;
        break;
      case JMP_JEQ_K:
        pc += 1 + (a === insn.k ? insn.jt : insn.jf);
        break;
      case JMP_JGT_K:
        pc += 1 + (a > insn.k ? insn.jt : insn.jf);
        break;
      case JMP_JGE_K:
        pc += 1 + (a >= insn.k ? insn.jt : insn.jf);
        break;
      case JMP_JSET_K:
        pc += 1 + ((a & insn.k) !== 0 ? insn.jt : insn.jf);
        break;
      case RET_K:
        return insn.k;
      case RET_A:
        return a;
      default:
        throw new Error(`pc ${pc}: opcode 0x${insn.code.toString(16)}`);
    }
  }
  throw new Error("program did not return");
}
