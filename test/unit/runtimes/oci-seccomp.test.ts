/**
 * fourwall's seccomp table as an OCI profile (src/runtimes/oci.ts ociSeccomp): every rule is
 * either carried over or left to gVisor's kernel with a reason, and what is carried over denies
 * exactly what the BPF program compiled from the same table denies (checked by running both on
 * the same syscalls: the BPF through test/helpers/bpf.ts, the OCI profile through the evaluator
 * below, written from the OCI semantics).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type OciArg,
  OciError,
  type OciSyscall,
  ociSeccomp,
  SENTRY_ENFORCED,
} from "../../../src/runtimes/oci.js";
import {
  type Arch,
  buildSeccompFilter,
  type SeccompRule,
  type SyscallRule,
  seccompRules,
} from "../../../src/walls/isolation/seccomp/index.js";
import { syscallNumber } from "../../../src/walls/isolation/seccomp/syscalls.js";
import { run } from "../../helpers/bpf.js";

const ARCH_VALUE: Record<Arch, number> = { x64: 0xc000003e, arm64: 0xc00000b7 };
const SECCOMP_RET_ACTION = 0xffff0000;
const SECCOMP_RET_ERRNO = 0x00050000;

/** OCI argument semantics on the full 64-bit register: MASKED_EQ (a & value) == valueTwo. */
function holds(test: OciArg, args: readonly bigint[]): boolean {
  const a = args[test.index] ?? 0n;
  const v = BigInt(test.value);
  switch (test.op) {
    case "SCMP_CMP_MASKED_EQ":
      return (a & v) === BigInt(test.valueTwo ?? 0);
    case "SCMP_CMP_NE":
      return a !== v;
    case "SCMP_CMP_GE":
      return a >= v;
  }
}

const ociDenies = (entries: OciSyscall[], name: string, args: readonly bigint[]) =>
  entries.some((e) => e.names.includes(name) && (e.args ?? []).every((t) => holds(t, args)));

function bpfDenies(filter: Buffer, arch: Arch, rule: SyscallRule, args: readonly bigint[]): boolean {
  const ret = run(filter, { nr: syscallNumber(rule.syscall, arch)!, arch: ARCH_VALUE[arch], args });
  return (ret & SECCOMP_RET_ACTION) >>> 0 === SECCOMP_RET_ERRNO;
}

/** Values that matter to some rule, plus their neighbours and a few random ones. */
function interestingValues(): bigint[] {
  const base = [
    0, 1, 2, 3, 4, 8, 9, 10, 11, 15, 16, 17, 38, 40, 0x5412, 0x5413, 0x541c, 0x40000, 0x400000, 0x7fffffff,
    0xffffffff, 0xfffffffe,
  ];
  const bits = Array.from({ length: 32 }, (_, i) => 2 ** i);
  const clone = [
    0x11,
    0x00020011,
    0x10000000 | 0x11,
    0x01200011 /* fork's flags */,
    0x003d0f00 /* pthread_create's */,
  ];
  const rand = Array.from({ length: 16 }, (_, i) => Math.imul(i + 1, 2654435761) >>> 0);
  return [...new Set([...base, ...bits, ...clone, ...rand])].map(BigInt);
}

const ARCHES: Arch[] = ["x64", "arm64"];

describe("seccomp table as an OCI profile", () => {
  for (const arch of ARCHES) {
    it(`(${arch}) covers every rule: carried over, or left to gVisor with a reason`, () => {
      const { seccomp, sentryEnforced } = ociSeccomp(seccompRules(), arch);
      assert.deepEqual(seccomp.architectures, [arch === "x64" ? "SCMP_ARCH_X86_64" : "SCMP_ARCH_AARCH64"]);
      assert.equal(seccomp.defaultAction, "SCMP_ACT_ALLOW");
      const carried = new Set(seccomp.syscalls.flatMap((s) => s.names));
      const left = new Set(sentryEnforced.map((s) => s.rule));
      for (const rule of seccompRules().filter((r) => r.arches.includes(arch))) {
        const key = rule.syscall === "*" ? rule.match.kind : rule.syscall;
        assert.ok(
          carried.has(key) !== left.has(key),
          `${key}: carried ${carried.has(key)}, left ${left.has(key)}`,
        );
        if (left.has(key)) assert.ok(SENTRY_ENFORCED[key]!.length > 20, `${key} needs a reason`);
      }
      for (const s of seccomp.syscalls) {
        assert.equal(s.action, "SCMP_ACT_ERRNO");
        assert.ok(s.errnoRet === 1 || s.errnoRet === 38);
        for (const a of s.args ?? [])
          assert.ok(a.value >= 0 && a.value <= 0xffffffff && (a.valueTwo ?? 0) <= 0xffffffff);
        assert.equal(
          new Set((s.args ?? []).map((a) => a.index)).size,
          (s.args ?? []).length,
          `${s.names}: one test per argument (runsc keeps one)`,
        );
      }
    });

    it(`(${arch}) denies exactly what the BPF program denies, for 32-bit arguments`, () => {
      const filter = buildSeccompFilter({ arch });
      const { seccomp } = ociSeccomp(seccompRules(), arch);
      const values = interestingValues();
      let compared = 0;
      for (const rule of seccompRules().filter(
        (r): r is SyscallRule => r.syscall !== "*" && r.arches.includes(arch),
      )) {
        if (SENTRY_ENFORCED[rule.syscall]) continue;
        // which arguments the rule reads (none: one call is enough)
        const used =
          rule.match.kind === "args"
            ? [...new Set(rule.match.cases.flatMap((c) => c.when.map((t) => t.arg)))]
            : [];
        const vectors: bigint[][] = [[0n, 0n, 0n, 0n, 0n, 0n]];
        if (used.length === 1)
          for (const v of values) vectors.push(Object.assign([0n, 0n, 0n, 0n, 0n, 0n], { [used[0]!]: v }));
        if (used.length > 1) {
          for (const a of values)
            for (const b of values)
              for (const c of used.length > 2 ? values.slice(0, 24) : [0n]) {
                const args = [0n, 0n, 0n, 0n, 0n, 0n];
                args[used[0]!] = a;
                args[used[1]!] = b;
                if (used[2] !== undefined) args[used[2]] = c;
                vectors.push(args);
              }
        }
        for (const args of vectors) {
          compared++;
          assert.equal(
            ociDenies(seccomp.syscalls, rule.syscall, args),
            bpfDenies(filter, arch, rule, args),
            `${rule.syscall}(${args.slice(0, 3).map((a) => `0x${a.toString(16)}`)})`,
          );
        }
      }
      assert.ok(compared > 10_000, `only ${compared} comparisons`);
    });

    it(`(${arch}) never denies less than the BPF program when the upper 32 bits hold junk`, () => {
      const filter = buildSeccompFilter({ arch });
      const { seccomp } = ociSeccomp(seccompRules(), arch);
      const junk = [1n << 32n, 0xdead00000000n, 0xffffffff00000000n];
      for (const rule of seccompRules().filter(
        (r): r is SyscallRule => r.syscall !== "*" && r.arches.includes(arch) && r.match.kind === "args",
      )) {
        if (SENTRY_ENFORCED[rule.syscall]) continue;
        for (const v of interestingValues()) {
          for (const j of junk) {
            for (const index of [0, 1, 2]) {
              const args = [0n, 0n, 0n, 0n, 0n, 0n];
              args[index] = v | j;
              if (bpfDenies(filter, arch, rule, args))
                assert.ok(
                  ociDenies(seccomp.syscalls, rule.syscall, args),
                  `${rule.syscall} arg${index}=0x${args[index]!.toString(16)}`,
                );
            }
          }
        }
      }
    });
  }

  it("blocks the calls that matter inside gVisor: new namespaces, netlink other than route, unshare, ptrace", () => {
    const { seccomp } = ociSeccomp(seccompRules(), "x64");
    const d = (name: string, ...args: number[]) => ociDenies(seccomp.syscalls, name, args.map(BigInt));
    assert.ok(d("clone", 0x10000000 | 17)); // CLONE_NEWUSER | SIGCHLD
    assert.ok(!d("clone", 0x01200011)); // fork()
    assert.ok(d("unshare", 0));
    assert.ok(d("ptrace", 0));
    assert.ok(d("socket", 16, 3, 15)); // NETLINK_KOBJECT_UEVENT
    assert.ok(!d("socket", 16, 3, 0)); // NETLINK_ROUTE
    assert.ok(d("socket", 17, 3, 0)); // AF_PACKET
    assert.ok(!d("socket", 2, 1, 0)); // TCP
    assert.ok(d("ioctl", 0, 0x5412)); // TIOCSTI
  });

  it("refuses a rule it can neither express nor leave to gVisor", () => {
    const rules: SeccompRule[] = [
      {
        syscall: "ioctl",
        arches: ["x64"],
        match: {
          kind: "args",
          cases: [{ when: [{ arg: 1, op: "in", values: [1, 2] }], verdict: "allow" }],
          otherwise: "deny",
        },
        condition: "test",
        errno: "EPERM",
        why: "test",
      },
    ];
    assert.throws(
      () => ociSeccomp(rules, "x64"),
      (e: unknown) => e instanceof OciError && e.wall === "isolation",
    );
  });
});
