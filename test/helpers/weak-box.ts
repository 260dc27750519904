/**
 * A deliberately broken box, for tests only: builds the plan exactly as `fourwall run` does, then
 * removes the named protections. Each security test runs against it to show that it catches the
 * hole. Usage: weak-box.ts --weaken a,b [-w DIR] [--runtime docker [--image TAG]] [--approver CMD] -- command...
 * With --runtime docker the weakenings are made on the `docker run` arguments (DOCKER_WEAKENINGS), or
 * on the plan for those `docker run` carries over as they are (DOCKER_PLAN_ONLY);
 * with --runtime vm on the plan and on the guest's bwrap arguments (the QEMU box around it stays whole);
 * with --runtime gvisor on the plan (which becomes the OCI bundle) and on the OCI spec (GVISOR_WEAKENINGS).
 */
import { lstatSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { AuditLog } from "../../src/audit/log.js";
import { superviseBox } from "../../src/box/supervisor.js";
import { isUnder } from "../../src/core/paths.js";
import type { BoxPlan } from "../../src/plan/plan.js";
import { planBox } from "../../src/plan/plan.js";
import { loadPolicy } from "../../src/policy/load.js";
import { DockerRuntime } from "../../src/runtimes/docker.js";
import { GvisorRuntime } from "../../src/runtimes/gvisor.js";
import { NamespacesRuntime } from "../../src/runtimes/namespaces.js";
import type { OciSpec } from "../../src/runtimes/oci.js";
import type { Runtime } from "../../src/runtimes/runtime.js";
import { VmRuntime } from "../../src/runtimes/vm.js";
import { BOX_NET_DIR } from "../../src/walls/egress/index.js";
import { realHost } from "../../src/walls/filesystem/host-view.js";
import { FileReview } from "../../src/walls/gate/approvers/file-review.js";
import {
  Applier,
  AtOnceApply,
  isWhiteout,
  PAUSE_IN_BOX,
  type PauseExpect,
  promptKeys,
  TerminalApprover,
} from "../../src/walls/gate/index.js";
import type { GateRequest } from "../../src/walls/gate/types.js";

export const WEAKENINGS = [
  "secrets", // the host's home bound whole: no secret left out or covered
  "home-writable", // the home writable
  "seccomp", // no seccomp filter
  "proc", // the host's /proc instead of the box's own
  "identity", // root mode: the box stays uid 0
  "caps", // root mode: uid 0 and capabilities kept
  "rlimits", // no resource limits
  "env", // the host's environment passes whole
  "sockets", // host socket directories not covered
  "persistence", // no read-only persistence paths, no placeholders
  "die-with-parent", // the box outlives fourwall
  "net", // the host's network namespace
  "userns", // user namespaces allowed inside
  "cgroup", // no cap on the whole box's memory and processes
  "hosts-leak", // egress transparent mode: the box's hosts file also maps a name no rule allows (other.test)
  "git-history", // the gate judges git's refs and reflogs as files only (path rules), not as history
  "git", // no guard on git dirs (hooks, config, commondir, hooksPath, pointer files) and no pins
  "passwd", // the host's /etc/passwd and /etc/group instead of the box's own
  "repo-view", // a workdir inside a repository: the repository around it is not shown
  "reach", // root mode: a workdir under a directory the box uid cannot search is not made reachable
  "terminal", // no fourwall-pty: the box shares fourwall's session and holds the caller's terminal
  "prompt-hold", // the terminal prompt does not hold the box's output while it asks
  "prompt-reset", // the terminal prompt is drawn as is: no reset, no clean screen
  "prompt-escape", // the terminal prompt shows the box's names and commands raw
  "credentials", // egress.credentials: the box's variables hold the real secrets, not the sentinels
  "scrub-raw", // egress.credentials: the response scrub looks for the raw secret alone (no encoded forms)
  "pause", // no pause at the action: the notify filter is not installed (the layer still holds)
  "diff-escape", // the terminal's file-by-file review shows a change's diff lines raw
  "host-placeholders", // no layer carries the placeholders: they stand on the host (and the gate holds nothing)
  "squid-auth", // --proxy squid: squid's 127.0.0.1 port takes requests without the per-run proxy credential
  "pause-apply", // after a yes at the pause, whatever the layer holds at the path goes to the host (the old seen())
] as const;
type Weakening = (typeof WEAKENINGS)[number];

const args = process.argv.slice(2);
const dash = args.indexOf("--");
const opts = args.slice(0, dash);
const command = args.slice(dash + 1);
const optValue = (name: string) => {
  const i = opts.indexOf(name);
  return i >= 0 ? opts[i + 1] : undefined;
};
const weaken = new Set((optValue("--weaken") ?? "").split(",").filter(Boolean) as Weakening[]);
// A namespaces box without seccomp has no filter at all: the gate's pause filter (a second, narrow
// one, namespaces only) goes too, or prove's "Seccomp: 2" would see it.
if (weaken.has("seccomp") && (optValue("--runtime") ?? "namespaces") === "namespaces") weaken.add("pause");
for (const w of weaken)
  if (!(WEAKENINGS as readonly string[]).includes(w)) throw new Error(`unknown weakening ${w}`);

/** What a broken docker box can lack: one `docker run` argument each. */
const DOCKER_WEAKENINGS: Partial<Record<Weakening, (args: string[]) => string[]>> = {
  seccomp: (args) => args.map((a) => (a.startsWith("seccomp=") ? "seccomp=unconfined" : a)),
  // as root with Docker's default capabilities: neither --user nor --cap-drop
  caps: (args) =>
    args.filter(
      (a, i) =>
        !["--user", "--cap-drop"].includes(a) && !["--user", "--cap-drop"].includes(args[i - 1] ?? ""),
    ),
  // the empty file over the workdir's .env is not mounted, and the host's home is bound whole
  secrets: (args) =>
    withHome(
      args.flatMap((a, i) =>
        a.includes("/empty,target=") || args[i + 1]?.includes("/empty,target=") ? [] : [a],
      ),
      "readonly",
    ),
  // the host's home, writable (the daemon mounts parents first: the workdir stays on top)
  "home-writable": (args) => withHome(args, "writable"),
  // the host's /tmp in place of the box's own tmpfs (its unix sockets reachable: --host-uds=open)
  sockets: (args) =>
    args.flatMap((a, i) =>
      a === "--tmpfs" && args[i + 1]?.startsWith("/tmp:")
        ? []
        : args[i - 1] === "--tmpfs" && a.startsWith("/tmp:")
          ? ["--mount", "type=bind,source=/tmp,target=/tmp"]
          : [a],
    ),
  // the host's network (under runc: runsc is registered with --network=none and would keep none);
  // an empty resolv.conf keeps name lookups on loopback instead of the host's real resolver
  net: (args) => {
    const out = args.map((a, i) => (a === "none" && args[i - 1] === "--network" ? "host" : a));
    out.splice(
      out.indexOf("--network"),
      0,
      "--mount",
      "type=bind,source=/dev/null,target=/etc/resolv.conf,readonly",
    );
    return out;
  },
};

/** The host's home bound into a docker box in place of the box's private one (a tmpfs). */
function withHome(args: string[], how: "readonly" | "writable"): string[] {
  const home = os.homedir();
  const privateHome = (a: string | undefined) => a?.startsWith(`${home}:`) === true;
  const out = args.filter((a, i) => !privateHome(a) && !(a === "--tmpfs" && privateHome(args[i + 1])));
  const mount = `type=bind,source=${home},target=${home}${how === "readonly" ? ",readonly" : ""}`;
  out.splice(out.indexOf("--entrypoint"), 0, "--mount", mount);
  return out;
}
/** The plan's weakenings that `docker run` carries over as they are. */
const DOCKER_PLAN_ONLY: Weakening[] = ["persistence", "env", "rlimits", "cgroup", "host-placeholders"];

const ALL_CAPS = [
  "CAP_SYS_ADMIN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_NET_ADMIN",
  "CAP_SYS_PTRACE",
];
/**
 * What a broken gVisor box lacks beyond the plan: one change of the OCI spec each. The plan's own
 * weakenings (secrets, home-writable, sockets, env, ...) reach gVisor through the bundle made from
 * it. runsc's flags (--network=none) are not in the spec: no "net" variant; gVisor serves its own
 * /proc whatever the bundle says: no "proc" variant.
 */
const GVISOR_SPEC_WEAKENINGS: Partial<Record<Weakening, (spec: OciSpec) => void>> = {
  seccomp: (spec) => {
    spec.linux.seccomp.syscalls = []; // default allow, nothing denied
  },
  // every box process holds the powerful capabilities inside gVisor's kernel
  caps: (spec) => {
    spec.process.capabilities = {
      bounding: ALL_CAPS,
      effective: ALL_CAPS,
      inheritable: ALL_CAPS,
      permitted: ALL_CAPS,
      ambient: ALL_CAPS,
    };
  },
};
/** The plan's weakenings that gVisor's bundle carries over as they are. */
const GVISOR_PLAN_ONLY: Weakening[] = [
  ...["secrets", "home-writable", "sockets", "persistence", "identity"],
  ...["rlimits", "cgroup", "env", "hosts-leak", "host-placeholders"],
] as Weakening[];

const docker = optValue("--runtime") === "docker";
const vm = optValue("--runtime") === "vm";
const gvisor = optValue("--runtime") === "gvisor";
if (docker)
  for (const w of weaken)
    if (!DOCKER_WEAKENINGS[w] && !DOCKER_PLAN_ONLY.includes(w))
      throw new Error(`no docker variant of the weakening ${w}`);
if (gvisor)
  for (const w of weaken)
    if (!GVISOR_SPEC_WEAKENINGS[w] && !GVISOR_PLAN_ONLY.includes(w))
      throw new Error(`no gvisor variant of the weakening ${w}`);
const cwd = process.cwd();
const { policy, egress } = loadPolicy({ file: optValue("--policy"), cwd });
if (docker) policy.isolation.runtime = "docker"; // as -r docker does (the gate then knows there is no copy-on-write layer)
if (vm) policy.isolation.runtime = "vm";
if (gvisor) policy.isolation.runtime = "gvisor";
const home = os.homedir();
const plan: BoxPlan = planBox(policy, {
  command,
  workdir: path.resolve(cwd, optValue("-w") ?? "."),
  home,
  hostUid: process.getuid!(),
  hostGid: process.getgid!(),
  hostEnv: process.env,
  host: realHost,
  egress,
});
// the docker variants change the `docker run` arguments (the box sees no host mounts to widen),
// but for those the plan carries over as they are
const onPlan = docker ? new Set([...weaken].filter((w) => DOCKER_PLAN_ONLY.includes(w))) : weaken;
const fs = plan.filesystem;
if (onPlan.has("secrets")) {
  const homeAt = fs.mounts.findIndex((m) => m.target === home);
  fs.mounts = fs.mounts.filter((m) => !("why" in m) || (m.why !== "secret hidden" && m.why !== "home entry"));
  fs.mounts.splice(homeAt, 1, { type: "bind", source: home, target: home, writable: false, why: "weak" });
  // the whole host home: no sanitised copy of its git config either
  fs.mounts = fs.mounts.filter((m) => m.type !== "file" || !isUnder(m.target, home));
}
if (onPlan.has("home-writable")) {
  // the real home, writable, in place of the private one and everything mounted inside it: what a
  // whole-home bind on top shows, in an order every runtime accepts (runsc wants parents first)
  const homeAt = fs.mounts.findIndex((m) => isUnder(m.target, home));
  fs.mounts = fs.mounts.filter((m) => !isUnder(m.target, home));
  fs.mounts.splice(homeAt, 0, { type: "bind", source: home, target: home, writable: true, why: "weak" });
}
if (onPlan.has("proc")) fs.mounts = fs.mounts.filter((m) => m.type !== "proc");
if (onPlan.has("sockets")) {
  // /tmp and /var/tmp straight from the host; /run stays a tmpfs (the proxy socket is mounted in
  // it) but gets the host's entries bound back, sockets included.
  fs.mounts = fs.mounts.filter((m) => !(m.type === "tmpfs" && ["/tmp", "/var/tmp"].includes(m.target)));
  const runAt = fs.mounts.findIndex((m) => m.type === "tmpfs" && m.target === "/run");
  // all but fourwall's own state dir, where the box's proxy socket directory is mounted; gVisor
  // gets /tmp only (its gofer cannot serve the host's private /run entries: runsc will not start)
  const hostRun = gvisor
    ? []
    : readdirSync("/run")
        .map((name) => `/run/${name}`)
        .filter((p) => !isUnder(p, BOX_NET_DIR));
  fs.mounts.splice(
    runAt + 1,
    0,
    ...hostRun.map((p) => ({ type: "bind" as const, source: p, target: p, writable: false, why: "weak" })),
  );
}
// every read-only island inside a writable path (persistence files, git, start-up files), every
// pin, every placeholder: what is left is the writable binds and the secret covers
type PlanMount = (typeof fs.mounts)[number];
const island = (m: PlanMount): m is Extract<PlanMount, { type: "bind" }> =>
  m.type === "bind" &&
  !fs.writable.includes(m.target) &&
  fs.writable.some((w) => isUnder(m.target, w)) &&
  (!m.writable || m.why.startsWith("pinned"));
if (onPlan.has("persistence")) {
  fs.mounts = fs.mounts.filter((m) => !island(m));
  fs.placeholders = [];
}
if (onPlan.has("git")) {
  const git = (m: PlanMount) => island(m) && (m.why.startsWith("git") || m.why.startsWith("pinned"));
  const gone = new Set(fs.mounts.filter(git).map((m) => m.target));
  fs.mounts = fs.mounts.filter((m) => !git(m));
  fs.placeholders = fs.placeholders.filter((p) => !gone.has(p.path));
}
if (onPlan.has("passwd"))
  fs.mounts = fs.mounts.filter((m) => m.type !== "file" || !m.target.startsWith("/etc/"));
if (onPlan.has("repo-view"))
  fs.mounts = fs.mounts.filter(
    (m) =>
      !(
        m.type === "bind" &&
        m.why === "home entry" &&
        realHost.kind(path.join(m.target, ".git")) !== "missing"
      ),
  );
// gVisor's "caps" is the spec's (its runsc stays the box uid's)
if (onPlan.has("identity") || (onPlan.has("caps") && !gvisor))
  plan.identity = { mode: "user", uid: 0, gid: 0 };
if (onPlan.has("rlimits")) plan.rlimits = [];
if (onPlan.has("cgroup")) plan.boxLimits = { memoryBytes: 64 * 1024 ** 3, pids: 1_000_000 };
if (onPlan.has("env")) plan.env = { ...(process.env as Record<string, string>), ...plan.env };
// the host's network: an empty resolv.conf keeps the broken box's name lookups on loopback
if (onPlan.has("net"))
  fs.mounts.push({
    type: "bind",
    source: "/dev/null",
    target: "/etc/resolv.conf",
    writable: false,
    why: "weak",
  });
if (weaken.has("git-history")) plan.gate.gitHistory = false;
// the old way: without the gate's layer, every placeholder stands on the host while the box runs
if (onPlan.has("host-placeholders")) plan.gate.overlay = false;
if (onPlan.has("scrub-raw")) plan.credentials.rawScrubOnly = true;
if (onPlan.has("credentials"))
  for (const b of plan.credentials.bindings)
    if (b.env) plan.env[b.env] = plan.credentials.secrets.get(b.name)!;
if (onPlan.has("hosts-leak") && plan.network.transparent)
  plan.network.transparent.hosts += "127.77.255.254\tother.test\n";

const drop = (list: string[], flag: string, count: number) => {
  const i = list.indexOf(flag);
  if (i >= 0) list.splice(i, count);
  return list;
};
const dockerRuntime = () =>
  new DockerRuntime({
    ...(weaken.has("net") ? { engine: "runc" as const } : {}),
    ...(optValue("--image") ? { image: optValue("--image")! } : {}),
    transformArgs: (args) => [...weaken].reduce((a, w) => DOCKER_WEAKENINGS[w]?.(a) ?? a, args),
  });
/** The weakenings made on bwrap's arguments: the namespaces box's, or the box inside the microVM. */
function weakenBwrap(argv: string[]): string[] {
  const out = [...argv];
  if (weaken.has("seccomp")) drop(out, "--seccomp", 2);
  if (weaken.has("caps")) drop(out, "--cap-drop", 2);
  if (weaken.has("die-with-parent")) drop(out, "--die-with-parent", 1);
  if (weaken.has("net")) drop(out, "--unshare-net", 1);
  if (weaken.has("userns")) drop(out, "--disable-userns", 1);
  if (weaken.has("reach")) drop(out, "--reach", 2);
  if (weaken.has("pause")) {
    const at = out.findIndex((a, i) => a === PAUSE_IN_BOX.helper && out[i + 1] === "install");
    if (at >= 0) out.splice(at, out.indexOf("--", at) - at + 1);
  }
  // the launcher starts straight from fourwall, as before the box had a terminal of its own
  if (weaken.has("terminal") && path.basename(out[0] ?? "") === "fourwall-pty")
    out.splice(0, out.indexOf("--") + 1);
  return out;
}

// The pause's at-once apply as it was: any entry at an approved path counts as the change (a
// symlink, a tree) and is copied whole. It looks from 200 ms on (a loaded host's first look), so
// the box's quick swap after the approved call is what it finds, every time.
if (weaken.has("pause-apply")) {
  const since = new WeakMap<object, number>();
  AtOnceApply.prototype.tryApply = function (this: AtOnceApply) {
    if (!since.has(this)) since.set(this, Date.now());
    if (Date.now() - since.get(this)! < 200) return false;
    // biome-ignore lint/suspicious/noExplicitAny: the instance's private fields, tests only
    const self = this as any;
    const o: { upper: string; workdir: string; owner?: { uid: number; gid: number } } = self.o;
    const applier = new Applier(o);
    let all = true;
    for (const e of self.expect as PauseExpect[]) {
      let gone = false;
      try {
        gone = isWhiteout(lstatSync(path.join(o.upper, e.path)));
      } catch {
        all = false;
        continue;
      }
      if (gone !== (e.kind === "gone")) {
        all = false;
        continue;
      }
      const how = e.kind === "gone" ? "delete" : e.kind === "mode" ? "chmod" : "copy";
      applier.apply({ op: "overwrite", path: e.path, how, decision: "allow" });
    }
    applier.close();
    return all;
  };
}

// The review's diff screen with the box's bytes as they are (no `visible`): what escaping prevents.
if (weaken.has("diff-escape")) {
  const realScreen = FileReview.prototype.screen;
  FileReview.prototype.screen = function (this: FileReview, rows: number, cols: number) {
    const screen = realScreen.call(this, rows, cols);
    if (this.view !== "diff") return screen;
    const raw = (this as unknown as { changes: { diff?: string }[] }).changes[this.index]?.diff ?? "";
    return {
      ...screen,
      display: { ...screen.display, lines: raw.split("\n").map((l): [string, string] => ["", l]) },
    };
  };
}

// The terminal prompt's protections, removed one at a time (the approver's own methods, replaced).
// biome-ignore lint/suspicious/noExplicitAny: reaching the approver's protected methods, tests only
const terminalApprover = TerminalApprover.prototype as any;
if (weaken.has("prompt-hold"))
  terminalApprover.held = function (
    this: typeof terminalApprover,
    request: GateRequest,
    signal: AbortSignal,
  ) {
    return this.prompt(request, signal);
  };
const realCompose = terminalApprover.compose;
if (weaken.has("prompt-reset"))
  terminalApprover.compose = function (this: unknown, request: GateRequest, rows: number, cols: number) {
    const text: string = realCompose.call(this, request, rows, cols);
    return `\r\n${text.slice(text.lastIndexOf("\x1b[H") + 3)}`; // what follows the reset and the clean screen
  };
if (weaken.has("prompt-escape"))
  terminalApprover.compose = function (this: unknown, request: GateRequest) {
    const changes = (request.changes ?? []).map(
      (c) => `│          ${c.op} ${c.path}${c.to ? ` → ${c.to}` : ""}`,
    );
    const what =
      request.kind === "fs" ? changes : [`│ ${request.kind}  ${request.command ?? request.summary}`];
    return [
      "",
      `┌ fourwall gate · box ${request.box} · ${request.kind}`,
      ...what,
      `└ allow? ${promptKeys(request)} `,
    ]
      .join("\n")
      .replaceAll("\n", "\r\n");
  };
const gvisorRuntime = () =>
  new GvisorRuntime({
    transformSpec: (spec) => {
      for (const w of weaken) GVISOR_SPEC_WEAKENINGS[w]?.(spec);
      return spec;
    },
  });
const runtime: Runtime = docker
  ? dockerRuntime()
  : gvisor
    ? gvisorRuntime()
    : vm
      ? new VmRuntime({ transformArgs: weakenBwrap })
      : new NamespacesRuntime({ transformArgs: weakenBwrap });
// --approver CMD: the gate's approver, as `fourwall run --approver` (no terminal is asked)
const approver = optValue("--approver");
process.exitCode = await superviseBox(plan, runtime, {
  audit: new AuditLog(undefined),
  gate: approver ? { approver, terminal: false } : undefined,
  // no write-through overlay either: its read-only cover of .git/info/exclude would pin .git again
  ...(onPlan.has("host-placeholders") || onPlan.has("git") ? { hostPlaceholders: true } : {}),
  ...(weaken.has("squid-auth") ? { openSquidPortForTests: true } : {}),
});
