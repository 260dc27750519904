/**
 * Every probe of `fourwall prove`, wall by wall: what it attacks, what the wall must do, and how
 * the host judges the probe program's report (src/prove/probe.py implements the attacks under the
 * same ids). Adding a probe: one entry here, one function there.
 */
import type { Rlimit } from "../walls/isolation/index.js";
import {
  arrivedNowhere,
  denied,
  fail,
  hole,
  type Judge,
  landedNowhere,
  pass,
  skip,
  statusField,
  text,
  works,
} from "./judges.js";
import { PRECIOUS } from "./layout.js";
import type { ProbeSpec, ProveWall } from "./types.js";

/**
 * How each runtime shows itself from inside: the namespaces runtime by bwrap as the box's pid 1 (it
 * shares the host's kernel by design); gVisor and a VM by a kernel that is not the host's.
 */
const RUNTIME_IDENTITY: Record<string, Judge> = {
  namespaces: (data) => {
    const pid1 = text(data.pid1, "?");
    return pid1 === "bwrap" ? pass("pid 1 is bwrap (namespaces)") : fail(`pid 1 is ${pid1}, expected bwrap`);
  },
  gvisor: (data, ctx) => {
    const kernel = text(data.kernel, "?");
    return kernel !== ctx.evidence.hostKernel
      ? pass(`a kernel of its own: ${kernel.slice(0, 40)}`)
      : fail("the host's own kernel");
  },
  // the guest's own Linux, and pid 1 is the same bwrap as in the namespaces runtime, inside it
  vm: (data, ctx) => {
    const kernel = text(data.kernel, "?");
    return kernel !== ctx.evidence.hostKernel
      ? pass(`the microVM's own kernel: ${kernel.slice(0, 34)}`)
      : fail("the host's own kernel");
  },
  // runsc through the daemon by default; under runc (opt-in, warned) there is no kernel of its own to show
  docker: (data, ctx) => {
    const kernel = text(data.kernel, "?");
    return kernel !== ctx.evidence.hostKernel
      ? pass(`gVisor's kernel under docker: ${kernel.slice(0, 30)}`)
      : skip(`the host's own kernel: docker under runc, pid 1 is ${text(data.pid1, "?")}`);
  },
};

const runtimeIdentity: Judge = (data, ctx) => {
  const pid1 = text(data.pid1, "?");
  const isHostInit =
    pid1 === ctx.evidence.hostInit.comm && text(data.pid1Start) === ctx.evidence.hostInit.start;
  if (isHostInit) return hole(`pid 1 is the host's own init (${pid1})`);
  if (ctx.target.kind === "against") return pass(`its own pid namespace (pid 1 is ${pid1})`);
  const identify = RUNTIME_IDENTITY[ctx.target.runtime];
  return identify
    ? identify(data, ctx)
    : skip(`no known identity for the ${ctx.target.runtime} runtime (pid 1 is ${pid1})`);
};

/** /proc/self/limits shows "unlimited" or a number; prlimit sets soft = hard. */
function limitHolds(seen: [string, string] | undefined, want: number): boolean {
  return seen !== undefined && seen[0] === String(want) && seen[1] === String(want);
}

const rlimitsInForce: Judge = (data, ctx) => {
  const limits = (data.limits ?? {}) as Record<string, [string, string] | undefined>;
  const shown = (name: string) => `${name} ${limits[name]?.[0] ?? "?"}`;
  if (ctx.target.kind === "box") {
    const wrong = ctx.target.rlimits.filter((r: Rlimit) => !limitHolds(limits[r.name], r.value));
    if (wrong.length > 0) return hole(wrong.map((r) => `${shown(r.name)} (policy: ${r.value})`).join(", "));
    return pass(ctx.target.rlimits.map((r) => shown(r.name)).join(", "));
  }
  // Another wrapper has no policy to compare with: at least the process count and memory must be capped.
  const open = ["nproc", "data"].filter((name) => (limits[name]?.[0] ?? "unlimited") === "unlimited");
  return open.length > 0
    ? hole(`${open.map((n) => `${n} unlimited`).join(", ")}`)
    : pass(["nproc", "data"].map(shown).join(", "));
};

const notRoot: Judge = (data, ctx) => {
  const uid = typeof data.uid === "number" ? data.uid : -1;
  if (data.shadow === "read") return hole(`uid ${uid}, and /etc/shadow is readable`);
  // gVisor maps its launcher to uid 0 of its own kernel; on the host the sandbox runs as the
  // launcher (never root: runsc runs rootless), which the unreadable /etc/shadow confirms.
  if (uid === 0 && ctx.target.kind === "box" && ctx.target.runtime === "gvisor")
    return pass(`uid 0 in gVisor's kernel only; /etc/shadow: ${text(data.shadow, "?")}`);
  if (uid === 0) return hole("uid 0");
  return pass(`uid ${uid}; /etc/shadow: ${text(data.shadow, "?")}`);
};

const workdirWritable: Judge = (data, ctx) => {
  const content = ctx.evidence.workdirWrite;
  if (content?.includes("written by fourwall prove")) return pass("written, and on the host");
  return fail(`expected the write to land in the workdir: ${text(data.detail, "nothing written")}`);
};

const capEffZero = statusField(
  "CapEff",
  (v) => /^0+$/.test(v),
  (v) => `CapEff ${/^0+$/.test(v) ? "0" : v}`,
);
const noNewPrivs = statusField(
  "NoNewPrivs",
  (v) => v === "1",
  (v) => `NoNewPrivs ${v}`,
);
const seccompOn = statusField(
  "Seccomp",
  (v) => v === "2",
  (v) => (v === "2" ? "Seccomp 2 (filter)" : `Seccomp ${v}: no filter`),
);

const spec = (wall: ProveWall, id: string, title: string, expect: string, judge: Judge): ProbeSpec => ({
  id: `${wall}.${id}`,
  wall,
  title,
  expect,
  judge,
});

const needs = (binding: string, probe: ProbeSpec): ProbeSpec => ({ ...probe, needs: binding });

/** credential-hidden: the real key nowhere; and where the canary was bound, a sentinel in its place. */
const sentinelOnly: Judge = (data, ctx) => {
  const verdict = denied(data, ctx);
  const bound = ctx.target.kind === "box" && ctx.target.bound?.includes("credential");
  if (verdict.status === "PASS" && bound && data.sentinel !== true)
    return fail(`${verdict.observed}: the --secret binding did not arrive (no sentinel in the box)`);
  return verdict;
};

export const PROBES: ProbeSpec[] = [
  // isolation
  spec("isolation", "capabilities", "hold capabilities", "CapEff 0", capEffZero),
  spec("isolation", "no-new-privs", "gain privileges through exec", "NoNewPrivs 1", noNewPrivs),
  spec("isolation", "seccomp", "call the kernel unfiltered", "Seccomp 2", seccompOn),
  spec("isolation", "uid", "be root on the host", "not uid 0", notRoot),
  spec("isolation", "host-pids", "see a host process", "invisible", denied),
  spec("isolation", "new-namespaces", "unshare user/net/mount namespaces", "EPERM", denied),
  spec("isolation", "ptrace", "ptrace a process", "EPERM", denied),
  spec("isolation", "mount", "mount(2)", "EPERM", denied),
  spec("isolation", "kernel-syscalls", "bpf, perf_event_open, finit_module, io_uring", "EPERM", denied),
  spec("isolation", "runtime", "runtime identity (pid 1)", "the runtime's init", runtimeIdentity),
  spec("isolation", "rlimits", "run without resource limits", "limits in force", rlimitsInForce),
  // filesystem
  spec("filesystem", "read-secrets", "read ~/.ssh, ~/.aws, ~/.config/gcloud, ~/.netrc", "not found", denied),
  spec("filesystem", "read-dotenv", "read .env in the workdir", "not found", denied),
  spec(
    "filesystem",
    "write-ssh",
    "write ~/.ssh/authorized_keys",
    "absent on the host",
    landedNowhere("filesystem.write-ssh"),
  ),
  spec(
    "filesystem",
    "write-home",
    "write $HOME, append ~/.bashrc",
    "host unchanged",
    landedNowhere("filesystem.write-home"),
  ),
  spec("filesystem", "write-etc", "write /etc", "denied", landedNowhere("filesystem.write-etc")),
  spec(
    "filesystem",
    "write-usr",
    "write /usr, /usr/local/bin",
    "denied",
    landedNowhere("filesystem.write-usr"),
  ),
  spec(
    "filesystem",
    "write-outside-workdir",
    "write another project",
    "host unchanged",
    landedNowhere("filesystem.write-outside-workdir"),
  ),
  spec(
    "filesystem",
    "dotdot-escape",
    "escape the workdir with ..",
    "denied",
    landedNowhere("filesystem.dotdot-escape", denied),
  ),
  spec(
    "filesystem",
    "symlink-escape",
    "read/write through symlinks out of the workdir",
    "denied",
    landedNowhere("filesystem.symlink-escape", denied),
  ),
  spec("filesystem", "proc-root", "reach the host via /proc/*/root, /proc/1/cwd", "denied", denied),
  spec(
    "filesystem",
    "git-hook",
    "plant .git/hooks/pre-commit, edit .git/config",
    "denied",
    landedNowhere("filesystem.git-hook"),
  ),
  spec(
    "filesystem",
    "persistence",
    "plant .mcp.json, .envrc, .vscode/tasks.json",
    "denied",
    landedNowhere("filesystem.persistence"),
  ),
  spec("filesystem", "workdir-write", "write in the workdir", "works", workdirWritable),
  spec("filesystem", "environment", "find planted secret variables", "none", denied),
  spec("filesystem", "host-socket", "connect to a host unix socket", "unreachable", denied),
  spec("filesystem", "abstract-socket", "connect to a host abstract socket", "unreachable", denied),
  // egress
  spec("egress", "listed-http", "the listed canary over HTTP (proxy env)", "real answer", works),
  spec("egress", "listed-https", "the listed canary over HTTPS (proxy env)", "real answer", works),
  spec("egress", "unlisted-http", "an unlisted host over HTTP", "refused (403)", denied),
  spec("egress", "unlisted-https", "an unlisted host over HTTPS (CONNECT)", "refused (403)", denied),
  spec("egress", "ip-via-proxy", "a raw IP through the proxy", "refused", denied),
  spec("egress", "internal-guard", "an allowed name resolving to loopback", "refused", denied),
  spec("egress", "sni-mismatch", "TLS SNI other than the CONNECT host", "refused", denied),
  spec("egress", "host-mismatch", "Host header other than the request's host", "refused", denied),
  needs(
    "credential",
    spec(
      "egress",
      "credential-hidden",
      "find a --secret credential (env, /proc, files)",
      "sentinel only",
      sentinelOnly,
    ),
  ),
  needs(
    "credential",
    spec(
      "egress",
      "credential-exfiltration",
      "its sentinel to another allowed host",
      "refused (403)",
      denied,
    ),
  ),
  spec("egress", "host-loopback", "host loopback services, no proxy", "unreachable", denied),
  spec("egress", "ipv6-loopback", "the host's [::1], no proxy", "unreachable", denied),
  spec(
    "egress",
    "udp",
    "a UDP datagram to a host service",
    "never arrives",
    arrivedNowhere((ctx) => ctx.evidence.udpReceived, "the host's UDP canary"),
  ),
  spec("egress", "dns-lookup", "resolve a name (getaddrinfo, getent)", "no resolver", denied),
  spec(
    "egress",
    "dns-tunnel",
    "a DNS query to an outside resolver",
    "never arrives",
    arrivedNowhere((ctx) => ctx.evidence.outside?.udp, "the outside host"),
  ),
  spec("egress", "outside-host", "TCP to an outside host, no proxy", "unreachable", (data, ctx) => {
    const tcp = ctx.evidence.outside?.tcp ?? 0;
    return tcp > 0 ? hole(`the outside host saw ${tcp} connection(s)`) : denied(data, ctx);
  }),
  spec("egress", "firewall", "ip link/route, nft, iptables changes", "EPERM", denied),
  // approval gate: prove's own approver answers no to everything and records what it was asked
  spec(
    "gate",
    "delete-asks",
    "delete a pre-existing workdir file (unlink(2))",
    "an approval request",
    (data, ctx) => {
      const name = ctx.evidence.gate.name;
      if (ctx.evidence.gate.requests.some((r) => r.includes(name)))
        return pass(`the gate asked about ./${name}`);
      if (ctx.evidence.gate.precious === undefined)
        return hole(`./${name} was deleted on the host without any request`);
      if (data.unlink !== "ok") return pass(`the delete was refused outright (${text(data.unlink, "?")})`);
      return fail(
        `./${name} is intact but nobody was asked: ${ctx.evidence.gate.requests.length} request(s) seen`,
      );
    },
  ),
  spec(
    "gate",
    "denied-delete-survives",
    "the same delete, with a denying approver",
    "the file survives",
    (_data, ctx) => {
      const name = ctx.evidence.gate.name;
      if (ctx.evidence.gate.precious === undefined) return hole(`./${name} is gone from the host`);
      if (ctx.evidence.gate.precious !== PRECIOUS) return hole(`./${name} changed on the host`);
      return pass(`./${name} intact on the host`);
    },
  ),
  spec(
    "gate",
    "history-rewrite",
    "move the branch back to its first commit, truncate the reflogs (plain writes in .git)",
    "the host's branch and reflogs unchanged",
    (data, ctx) => {
      const changed = ctx.evidence.gate.historyChanged;
      if (changed.length > 0) return hole(`rewritten on the host: ${changed.join(", ")}`);
      const asked = ctx.evidence.gate.requests.some((r) => r.includes("moved backwards"));
      if (asked) return pass("asked (branch main moved backwards), refused: the history is intact");
      if (data.ref !== "ok") return pass(`the rewrite was refused outright (${text(data.ref, "?")})`);
      return pass("the branch and its reflogs are intact on the host");
    },
  ),
  spec(
    "gate",
    "setuid-apply",
    "a new workdir file made setuid/setgid (chmod 6755)",
    "lands without setuid/setgid",
    (data, ctx) => {
      const mode = ctx.evidence.gate.setuidMode;
      if (data.chmod !== "ok") return pass(`the chmod was refused in the box (${text(data.chmod, "?")})`);
      if (mode === undefined) return fail("the new file did not reach the host (new files should land)");
      if (mode & 0o6000) return hole(`it landed on the host as ${mode.toString(8)}`);
      return pass(`landed as ${mode.toString(8)}`);
    },
  ),
  spec(
    "gate",
    "layer-unreachable",
    "find the copy-on-write layer on the host (mountinfo, known places) and open it",
    "no host path, nothing reachable",
    (data) => {
      const reached = Array.isArray(data.reached) ? (data.reached as string[]) : [];
      if (reached.length > 0) return hole(`the box reached ${reached.join(", ")}`);
      if (typeof data.upperdir === "string" && data.upperdir.startsWith("/"))
        return hole(`the box's mountinfo names the layer: ${data.upperdir}`);
      if (data.upperdir === undefined || data.upperdir === null)
        return pass("no copy-on-write layer in this box");
      return pass(`mountinfo says upperdir=${text(data.upperdir, "?")}; nothing reachable`);
    },
  ),
];

/** The probes of the given walls (all of them when `only` is empty). */
export function selectProbes(only: ProveWall[]): ProbeSpec[] {
  return only.length === 0 ? PROBES : PROBES.filter((p) => only.includes(p.wall));
}
