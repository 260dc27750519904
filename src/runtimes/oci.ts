/**
 * BoxPlan → OCI runtime spec (config.json), for runtimes that take an OCI bundle (gVisor's runsc).
 * Pure: no file is read or written here; gvisor.ts writes the bundle and starts runsc.
 *
 * The plan's mount list was written for bubblewrap, which applies mounts in the order given and
 * can make symlinks. An OCI runtime can do neither exactly, so the translation is strict about
 * both: anything it cannot carry over faithfully is an OciError (the box is not built), never a
 * protection quietly dropped.
 *   - Order: runsc sorts mounts by path depth, and NOT stably (measured: two mounts on one path
 *     came out either way round; a read-only home entry landed over the writable workdir). So
 *     only the last mount on a path is emitted (it hides any earlier one there completely), the
 *     rest are emitted in depth order, and a plan in which a later mount was meant to cover a
 *     deeper, earlier one is refused.
 *   - Symlinks: OCI has no symlink mount. The box's first process makes them (they live in
 *     tmpfs, like bwrap's), and mount targets that pass through one are resolved here, as bwrap
 *     resolves them at mount time.
 *   - Seccomp: fourwall's rule table becomes an OCI profile (see ociSeccomp below).
 */
import path from "node:path";
import { WallError } from "../core/errors.js";
import { isUnder } from "../core/paths.js";
import { shellQuote } from "../core/shell.js";
import type { BoxPlan } from "../plan/plan.js";
import { generatedFile } from "../plan/session.js";
import { BOX_NET_DIR, bridgeScript } from "../walls/egress/index.js";
import type { Mount } from "../walls/filesystem/index.js";
import type { Rlimit } from "../walls/isolation/index.js";
import {
  type Arch,
  type ArgIndex,
  ERRNO,
  hostSeccompArch,
  type SeccompRule,
  type SyscallRule,
  seccompRules,
} from "../walls/isolation/index.js";
import type { BoxSession } from "./runtime.js";

export interface OciMount {
  destination: string;
  type: "bind" | "tmpfs" | "proc";
  source: string;
  options: string[];
}

export type OciArgOp = "SCMP_CMP_MASKED_EQ" | "SCMP_CMP_NE" | "SCMP_CMP_GE";

/** One syscall argument test. MASKED_EQ: (arg & value) == valueTwo. NE/GE: arg compared with value. */
export interface OciArg {
  index: ArgIndex;
  op: OciArgOp;
  value: number;
  valueTwo?: number;
}

/** A denial: the syscall fails with errnoRet when every arg test holds (no args: always). */
export interface OciSyscall {
  names: string[];
  action: "SCMP_ACT_ERRNO";
  errnoRet: number;
  args?: OciArg[];
}

export interface OciSeccomp {
  defaultAction: "SCMP_ACT_ALLOW";
  architectures: string[];
  syscalls: OciSyscall[];
}

export interface OciSpec {
  ociVersion: "1.0.2";
  process: {
    terminal: boolean;
    user: { uid: number; gid: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<"bounding" | "effective" | "inheritable" | "permitted" | "ambient", string[]>;
    rlimits: { type: string; soft: number; hard: number }[];
    noNewPrivileges: true;
  };
  root: { path: string; readonly: true };
  hostname: string;
  mounts: OciMount[];
  linux: {
    namespaces: { type: "pid" | "ipc" | "uts" | "mount" | "network" }[];
    seccomp: OciSeccomp;
  };
}

/** The plan cannot be carried over faithfully: the box must not be built. */
/**
 * The smallest bundle runsc runs: the host's / read-only, /proc, `/bin/true`. Used to check that
 * runsc works here (doctor) and as the bench's bare-runsc baseline.
 */
export function minimalSpec(): object {
  return {
    ociVersion: "1.0.2",
    process: {
      user: { uid: 0, gid: 0 },
      args: ["/bin/true"],
      env: ["PATH=/usr/bin:/bin"],
      cwd: "/",
      noNewPrivileges: true,
    },
    root: { path: "/", readonly: true },
    mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
    linux: {
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }],
    },
  };
}

/** An OCI translation problem as the wall error fourwall reports (exit 125, nothing ran). */
export function ociWallError(error: unknown, runtime: string): unknown {
  return error instanceof OciError
    ? new WallError(
        error.wall,
        `${runtime}: ${error.message}`,
        "use --runtime namespaces for this policy, or change it",
      )
    : error;
}

export class OciError extends Error {
  constructor(
    readonly wall: "filesystem" | "isolation",
    message: string,
  ) {
    super(message);
    this.name = "OciError";
  }
}

export interface OciOptions {
  /**
   * The box's uid and gid inside the runtime. Rootless runsc maps the uid that starts it to 0 in
   * its user namespace, so its files are owned by 0 in the sandbox: gvisor.ts passes 0 (a root
   * with no capability at all); see gvisor.ts for the host side.
   */
  user: { uid: number; gid: number };
  /** Give the command the terminal (runsc attaches its own stdin as the box's TTY). */
  terminal: boolean;
  /**
   * Whether BOX_NET_DIR exists on the host: runsc's gofer mounts binds on the host side, so a
   * bind target must exist there. If it does, the socket directory is bound straight at
   * BOX_NET_DIR; if not, at its own host path, and the box's first process links BOX_NET_DIR to
   * it (one exec more: ~15 ms under gVisor's ptrace platform).
   */
  netDirOnHost?: boolean;
  /**
   * The native bridge (native/fourwall-bridge.c) as a file name in the proxy socket's directory:
   * the box's first process is then that one static exec instead of sh + socat (see bridgeArgs).
   */
  bridgeInNetDir?: string;
  /** Seccomp rules (default: fourwall's table) and the architecture to compile them for. */
  rules?: readonly SeccompRule[];
  arch?: Arch;
}

export interface OciBox {
  spec: OciSpec;
  /** Symlinks the box's first process makes (in tmpfs), in plan order. */
  symlinks: { target: string; linkTo: string }[];
  /** What the OCI profile leaves to gVisor's own kernel, with the reason (for docs and tests). */
  sentryEnforced: { rule: string; why: string }[];
}

const depth = (p: string) => (p === "/" ? 0 : p.split("/").length - 1);

/** Single-quotes a word for /bin/sh. */

/**
 * Rewrites `p` through the plan's symlinks (those made before the mount at hand), the way the
 * kernel resolves a mount target when bwrap mounts it: the cover lands on the link's target.
 */
export function resolveThrough(p: string, symlinks: readonly { target: string; linkTo: string }[]): string {
  let current = p;
  for (let hops = 0; hops < 40; hops++) {
    // A mount on the link itself follows it too (mount(2) resolves its target).
    const hit = symlinks.find((s) => isUnder(current, s.target));
    if (!hit) return current;
    const base = path.isAbsolute(hit.linkTo) ? hit.linkTo : path.join(path.dirname(hit.target), hit.linkTo);
    current = path.join(base, path.relative(hit.target, current));
  }
  throw new OciError("filesystem", `too many symlinks while resolving ${p}`);
}

/** Of several mounts on one path, the last (the only one ever seen there). */
const lastPerPath = (mounts: OciMount[]) =>
  mounts.filter((m, i) => !mounts.slice(i + 1).some((later) => later.destination === m.destination));

/** Sort by path depth, the order runsc applies mounts in (stable here; runsc's is not). */
const byDepth = (mounts: OciMount[]) =>
  [...mounts].sort((a, b) => depth(a.destination) - depth(b.destination));

function translateMount(
  mount: Exclude<Mount, { type: "symlink" }>,
  session: BoxSession,
  destination: string,
): OciMount {
  switch (mount.type) {
    case "bind":
      return {
        destination,
        type: "bind",
        source: mount.source,
        options: ["rbind", mount.writable ? "rw" : "ro"],
      };
    case "empty-file":
      return { destination, type: "bind", source: session.emptyFile, options: ["rbind", "ro"] };
    case "file":
      return {
        destination,
        type: "bind",
        source: generatedFile(session, mount.name),
        options: ["rbind", "ro"],
      };
    case "tmpfs": {
      // size= is carried for runsc builds that honour it; Debian 12's (2022-12-19) ignores it, so
      // gvisor.ts caps the whole box through its cgroup instead (see there).
      const size = mount.sizeBytes === undefined ? [] : [`size=${mount.sizeBytes}`];
      return {
        destination,
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "nodev", "mode=755", ...size, mount.readOnly ? "ro" : "rw"],
      };
    }
    case "proc":
      return { destination, type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] };
    case "dev":
      // runsc fills a tmpfs at /dev with its own device nodes (null, zero, random, tty, pts, ...).
      return { destination, type: "tmpfs", source: "tmpfs", options: ["nosuid", "mode=755"] };
  }
}

/**
 * The plan's mounts as OCI mounts, plus the symlinks the box must make. Throws OciError when the
 * depth-sorted order runsc applies would let an earlier, deeper mount show through a later one.
 */
export function ociMounts(
  plan: BoxPlan,
  session: BoxSession,
): { root: string; mounts: OciMount[]; symlinks: OciBox["symlinks"] } {
  const [first, ...rest] = plan.filesystem.mounts;
  if (first?.type !== "bind" || first.target !== "/" || first.writable) {
    throw new OciError("filesystem", "the plan's first mount must be the read-only root");
  }
  const symlinks: OciBox["symlinks"] = [];
  const ordered: OciMount[] = [];
  rest.forEach((mount) => {
    if (mount.type === "symlink") {
      symlinks.push({ target: resolveThrough(mount.target, symlinks), linkTo: mount.linkTo });
      return;
    }
    const destination = resolveThrough(mount.target, symlinks);
    if (destination === "/")
      throw new OciError("filesystem", `a second mount on / (${"why" in mount ? mount.why : mount.type})`);
    ordered.push(translateMount(mount, session, destination));
  });
  // The box makes the symlinks after every mount: one at or above a mount could not be made.
  for (const link of symlinks) {
    const covered = ordered.find((m) => isUnder(m.destination, link.target));
    if (covered)
      throw new OciError(
        "filesystem",
        `the symlink ${link.target} would be made over the mount on ${covered.destination}`,
      );
  }
  // In the plan a later mount covers an earlier one. runsc applies them sorted by depth: a later
  // mount on a strict ancestor would go first and the earlier one would show through it.
  for (let i = 0; i < ordered.length; i++) {
    for (let j = i + 1; j < ordered.length; j++) {
      const earlier = ordered[i]!.destination;
      const later = ordered[j]!.destination;
      if (later !== earlier && isUnder(earlier, later)) {
        throw new OciError(
          "filesystem",
          `${later} is mounted after ${earlier}, which lies inside it; runsc would apply them the other way round`,
        );
      }
    }
  }
  // On one path only the last mount is ever seen: emit that one alone, so runsc's unstable sort
  // has no two mounts on a path to swap (a secret cover must never end up under a writable bind).
  return { root: first.source, mounts: byDepth(lastPerPath(ordered)), symlinks };
}

// --- seccomp

const M32 = 0xffffffff;
const eq = (index: ArgIndex, value: number): OciArg => ({
  index,
  op: "SCMP_CMP_MASKED_EQ",
  value: M32,
  valueTwo: value,
});
const masked = (index: ArgIndex, mask: number, value: number): OciArg => ({
  index,
  op: "SCMP_CMP_MASKED_EQ",
  value: mask,
  valueTwo: value,
});
const ne = (index: ArgIndex, value: number): OciArg => ({ index, op: "SCMP_CMP_NE", value });
const ge = (index: ArgIndex, value: number): OciArg => ({ index, op: "SCMP_CMP_GE", value });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Rules whose first-match logic (allow cases before deny) has no direct OCI form, written out as
 * the set of argument combinations they deny. test/unit/oci-seccomp.test.ts runs these against
 * the BPF program compiled from the same rules: any drift between the two fails there.
 * NE and GE compare all 64 bits where the rule looks at the low 32: they can only deny more
 * (junk in the upper half), never less.
 */
const WRITTEN_OUT: Partial<Record<string, OciArg[][]>> = {
  socket: [
    [eq(0, 16), ge(2, 1)], // netlink other than NETLINK_ROUTE (16 = AF_NETLINK)
    [ne(0, 16), masked(1, 0xf, 3)], // SOCK_RAW outside netlink
    [ne(0, 16), masked(1, 0xf, 10)], // SOCK_PACKET outside netlink
    // any domain but AF_UNIX (1), AF_INET (2), AF_INET6 (10), AF_NETLINK (16)
    ...[0, ...range(3, 9), ...range(11, 15)].map((d) => [eq(0, d)]),
    [ge(0, 17)],
  ],
  socketpair: [[ne(0, 1)]], // anything but AF_UNIX
};

/**
 * Rules the OCI profile leaves to gVisor's own kernel, because this runsc cannot express them
 * and its kernel already gives the same answer (each measured; test/integration/gvisor.test.ts
 * probes them so a runsc that changes behaviour fails the suite).
 */
export const SENTRY_ENFORCED: Readonly<Record<string, string>> = {
  "foreign-arch": "gVisor serves only the native 64-bit syscall ABI (no int 0x80 / compat table)",
  x32: "gVisor answers x32 syscall numbers with ENOSYS",
  clone3:
    "gVisor (2022-12) does not implement clone3 and answers ENOSYS, as the rule does; this runsc returns EPERM for every OCI errno, which would break glibc's fallback to clone()",
  personality:
    "gVisor accepts no persona but PER_LINUX (EINVAL otherwise), so ADDR_NO_RANDOMIZE and READ_IMPLIES_EXEC cannot be set; the rule's 'anything but 0 or 0xffffffff' has no OCI form",
};

/** All-deny cases, otherwise allow: each case is a product of disjunctions, one entry per term. */
function denyCases(rule: SyscallRule): OciArg[][] | undefined {
  if (rule.match.kind !== "args" || rule.match.otherwise !== "allow") return undefined;
  if (rule.match.cases.some((c) => c.verdict !== "deny")) return undefined;
  const out: OciArg[][] = [];
  for (const c of rule.match.cases) {
    if (new Set(c.when.map((t) => t.arg)).size !== c.when.length) return undefined; // one test per arg in OCI
    let terms: OciArg[][] = [[]];
    for (const test of c.when) {
      const options =
        test.op === "anyBit"
          ? range(0, 31)
              .map((b) => 2 ** b)
              .filter((bit) => (test.bits & bit) !== 0)
              .map((bit) => masked(test.arg, bit, bit))
          : test.values.map((v) => masked(test.arg, test.mask ?? M32, v));
      terms = terms.flatMap((t) => options.map((o) => [...t, o]));
    }
    out.push(...terms);
  }
  return out;
}

const OCI_ARCH: Record<Arch, string> = { x64: "SCMP_ARCH_X86_64", arm64: "SCMP_ARCH_AARCH64" };

/**
 * fourwall's seccomp table as an OCI profile (default allow, each rule a list of denials).
 * gVisor runs it inside its own kernel when runsc gets --oci-seccomp: the box's syscalls never
 * reach the host kernel, so what this adds is the same semantics as the namespaces runtime
 * (no new namespaces, no ptrace of a neighbour, no mount API, ...) rather than host protection.
 * Throws OciError for a rule it can neither express nor leave to gVisor with a reason.
 */
export function ociSeccomp(
  rules: readonly SeccompRule[] = seccompRules(),
  arch: Arch = hostSeccompArch(),
): { seccomp: OciSeccomp; sentryEnforced: OciBox["sentryEnforced"] } {
  const syscalls: OciSyscall[] = [];
  const sentryEnforced: OciBox["sentryEnforced"] = [];
  for (const rule of rules.filter((r) => r.arches.includes(arch))) {
    const key = rule.syscall === "*" ? rule.match.kind : rule.syscall;
    const why = SENTRY_ENFORCED[key];
    if (why !== undefined) {
      sentryEnforced.push({ rule: key, why });
      continue;
    }
    if (rule.syscall === "*")
      throw new OciError(
        "isolation",
        `seccomp rule "${key}" has no OCI form and gVisor is not known to enforce it`,
      );
    const errnoRet = ERRNO[rule.errno];
    const entry = (args?: OciArg[]): OciSyscall => ({
      names: [rule.syscall],
      action: "SCMP_ACT_ERRNO",
      errnoRet,
      ...(args ? { args } : {}),
    });
    if (rule.match.kind === "always") {
      syscalls.push(entry());
      continue;
    }
    const combos = denyCases(rule) ?? WRITTEN_OUT[rule.syscall];
    if (!combos)
      throw new OciError(
        "isolation",
        `seccomp rule for ${rule.syscall} has no OCI form and gVisor is not known to enforce it`,
      );
    for (const args of combos) syscalls.push(entry(args));
  }
  return {
    seccomp: { defaultAction: "SCMP_ACT_ALLOW", architectures: [OCI_ARCH[arch]], syscalls },
    sentryEnforced,
  };
}

// --- the whole spec

const ociRlimit = (r: Rlimit) => ({ type: `RLIMIT_${r.name.toUpperCase()}`, soft: r.value, hard: r.value });

/**
 * The box's first process: make the plan's symlinks and the documented proxy path
 * (/run/fourwall → the socket directory, which runsc must bind at a path that exists on the
 * host), then the egress bridge, then exec the command. Any failure: exit 125, nothing runs.
 */
export function preludeScript(symlinks: OciBox["symlinks"], netDirInBox: string): string {
  const links = [
    ...(netDirInBox === BOX_NET_DIR ? [] : [{ target: BOX_NET_DIR, linkTo: netDirInBox }]),
    ...symlinks,
  ];
  return links
    .map(
      ({ target, linkTo }) =>
        `ln -s -- ${shellQuote(linkTo)} ${shellQuote(target)} || { echo ${shellQuote(`fourwall: the filesystem wall could not be built: cannot make the symlink ${target}`)} >&2; exit 125; }`,
    )
    .join("\n");
}

/**
 * The box's first process through the native bridge: the same symlinks, listener and exec as the
 * prelude + bridge script, without sh and socat (each exec costs tens of ms under gVisor's ptrace
 * platform). Transparent forwards (socat's PROXY: mode) still take the script: undefined then.
 */
export function bridgeArgs(
  plan: BoxPlan,
  symlinks: OciBox["symlinks"],
  netDirInBox: string,
  bridge: string,
): string[] | undefined {
  if ((plan.network.transparent?.forwards ?? []).length > 0) return undefined;
  const links = [
    ...(netDirInBox === BOX_NET_DIR ? [] : [{ target: BOX_NET_DIR, linkTo: netDirInBox }]),
    ...symlinks,
  ];
  return [
    path.posix.join(netDirInBox, bridge),
    ...links.flatMap(({ target, linkTo }) => ["--link", target, linkTo]),
    "--listen",
    String(plan.network.port),
    plan.network.socketInBox,
    "--",
    ...plan.command,
  ];
}

/** BoxPlan + session → the OCI spec runsc runs. Pure; throws OciError. */
export function ociBundle(plan: BoxPlan, session: BoxSession, options: OciOptions): OciBox {
  const { root, mounts, symlinks } = ociMounts(plan, session);
  const clash = mounts.find(
    (m) => isUnder(m.destination, BOX_NET_DIR) || isUnder(m.destination, session.netDir),
  );
  if (clash)
    throw new OciError(
      "filesystem",
      `a plan mount on ${clash.destination} would hide the proxy socket's directory`,
    );
  // Approval gate: generated agent settings, read-only over the agent's own (files: leaves, so
  // depth order cannot put them under anything they were meant to cover).
  for (const f of session.gateFiles ?? []) {
    mounts.push({
      destination: resolveThrough(f.target, symlinks),
      type: "bind",
      source: f.source,
      options: ["rbind", "ro"],
    });
  }
  // The proxy socket's directory: at BOX_NET_DIR, or at its own host path with a link (see netDirOnHost).
  const netDirInBox = options.netDirOnHost ? BOX_NET_DIR : session.netDir;
  mounts.push({ destination: netDirInBox, type: "bind", source: session.netDir, options: ["rbind", "ro"] });
  const { seccomp, sentryEnforced } = ociSeccomp(options.rules, options.arch);
  for (const [name] of Object.entries(plan.env))
    if (name.includes("=") || name === "")
      throw new OciError("filesystem", `bad environment name ${JSON.stringify(name)}`);
  const script = [preludeScript(symlinks, netDirInBox), bridgeScript(plan.network)]
    .filter(Boolean)
    .join("\n");
  const none: string[] = [];
  return {
    spec: {
      ociVersion: "1.0.2",
      process: {
        terminal: options.terminal,
        user: options.user,
        // The same chain as the namespaces runtime, minus prlimit: rlimits are set by runsc on
        // the box's first process and inherited by everything in the box (saves one exec, which
        // costs ~17 ms under gVisor's ptrace platform).
        args: (options.bridgeInNetDir !== undefined &&
          bridgeArgs(plan, symlinks, netDirInBox, options.bridgeInNetDir)) || [
          "/bin/sh",
          "-c",
          script,
          "fourwall-bridge",
          ...plan.command,
        ],
        env: Object.entries(plan.env).map(([k, v]) => `${k}=${v}`),
        cwd: plan.filesystem.cwd,
        capabilities: { bounding: none, effective: none, inheritable: none, permitted: none, ambient: none },
        rlimits: plan.rlimits.map(ociRlimit),
        noNewPrivileges: true,
      },
      root: { path: root, readonly: true },
      hostname: plan.hostname,
      // gate files may land on a path the plan already mounts (a read-only settings file)
      mounts: byDepth(lastPerPath(mounts)),
      linux: {
        // No "user": rootless runsc makes the user namespace itself. "network" with --network=none
        // leaves the box a loopback of gVisor's own netstack and nothing else.
        namespaces: [
          { type: "pid" },
          { type: "ipc" },
          { type: "uts" },
          { type: "mount" },
          { type: "network" },
        ],
        seccomp,
      },
    },
    symlinks,
    sentryEnforced,
  };
}
