import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { WallError, type WallName } from "../core/errors.js";
import { dropHelperPath, nativeHelperPath, which } from "../core/paths.js";
import type { BoxPlan } from "../plan/plan.js";
import { generatedFile } from "../plan/session.js";
import {
  BOX_NET_DIR,
  bridgeScript,
  needsNetnsPreparation,
  prepareBoxNetns,
  transparentMounts,
  writeTransparentFiles,
} from "../walls/egress/index.js";
import type { Mount } from "../walls/filesystem/index.js";
import { overlayHelperPath, PAUSE_IN_BOX, pauseInstallArgs } from "../walls/gate/index.js";
import { prlimitArgs } from "../walls/isolation/index.js";
import { type LaunchHooks, type LaunchSpec, launchBox } from "./launch.js";
import {
  type BoxSession,
  type RunningBox,
  type Runtime,
  type RuntimeCheck,
  type RuntimeTestOptions,
  unavailable,
} from "./runtime.js";
import { CALLER_FD, terminalPrefix } from "./terminal.js";

const SECCOMP_FD = 3;
const STATUS_FD = 4;
/** The box's first process writes "ready" here just before it becomes the command. */
const READY_FD = 6;
/** egress transparent mode: bwrap holds the command until fourwall has prepared the box's netns. */
const BLOCK_FD = 5;
/** fourwall's own stderr while bwrap's fd 2 is the launcher's pipe (bwrap's complaints are captured). */
const STDERR_FD = 7;

function mountArgs(mount: Mount, session: BoxSession): string[] {
  switch (mount.type) {
    case "bind":
      return [mount.writable ? "--bind" : "--ro-bind", mount.source, mount.target];
    case "tmpfs": {
      const size = mount.sizeBytes === undefined ? [] : ["--size", String(mount.sizeBytes)];
      const ro = mount.readOnly ? ["--remount-ro", mount.target] : [];
      return [...size, "--tmpfs", mount.target, ...ro];
    }
    case "empty-file":
      return ["--ro-bind", session.emptyFile, mount.target];
    case "file":
      return ["--ro-bind", generatedFile(session, mount.name), mount.target];
    case "symlink":
      return ["--symlink", mount.linkTo, mount.target];
    case "proc":
      return ["--proc", "/proc"];
    case "dev":
      return ["--dev", "/dev"];
  }
}

/** Where the native bridge (session.bridge) appears in the box: over an empty file in the socket directory. */
const BRIDGE_NAME = "fourwall-bridge";
export const BRIDGE_IN_BOX = `${BOX_NET_DIR}/${BRIDGE_NAME}`;

export interface BwrapOptions {
  /** The fd on which bwrap passes fourwall's own stderr to the box (see launch.ts's "stderr" fd). */
  stderrFd?: number;
}

/**
 * bwrap's argument list for a plan (pure). Every namespace is new; the box keeps no capability,
 * cannot make user namespaces, dies with its parent, and gets fourwall's seccomp filter on fd 3.
 * Inside, the egress bridge starts (the native one, else a shell and socat), then (approval gate)
 * fourwall-pause installs the pause's notify filter, then prlimit sets the rlimits (in the box's
 * own user namespace, where NPROC counts the box) and execs the command.
 */
export function bwrapArgs(plan: BoxPlan, session: BoxSession, options: BwrapOptions = {}): string[] {
  const native = nativeBridgeArgs(plan, session, options);
  return [
    "--unshare-user",
    "--unshare-ipc",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--disable-userns",
    "--die-with-parent",
    "--cap-drop",
    "ALL",
    "--hostname",
    plan.hostname,
    "--seccomp",
    String(SECCOMP_FD),
    "--json-status-fd",
    String(STATUS_FD),
    ...(needsNetnsPreparation(plan.network) ? ["--block-fd", String(BLOCK_FD)] : []),
    ...plan.filesystem.mounts.flatMap((m) => mountArgs(m, session)),
    // approval gate: agent settings carrying fourwall's hook, read-only over the agent's own
    ...(session.gateFiles ?? []).flatMap((f) => ["--ro-bind", f.source, f.target]),
    "--ro-bind",
    session.netDir,
    BOX_NET_DIR,
    // approval gate: the pause's helper, over its mount point in the run dir's net/
    ...(session.pause ? ["--ro-bind", session.pause.helper, PAUSE_IN_BOX.helper] : []),
    // egress: the native bridge, over its mount point in the run dir's net/ (read-only: the box runs it, never writes it)
    ...(native && session.bridge ? ["--ro-bind", session.bridge, BRIDGE_IN_BOX] : []),
    // egress transparent mode: the box's own hosts file (only allowlisted names) and no resolver
    ...transparentMounts(plan.network, session.runDir).flatMap((m) => ["--ro-bind", m.source, m.target]),
    "--chdir",
    plan.filesystem.cwd,
    "--",
    ...(native ?? shellBridgeArgs(plan, options)),
    // approval gate: destructive syscalls on pre-existing workdir files wait for fourwall's answer
    ...(session.pause ? pauseInstallArgs() : []),
    "/usr/bin/prlimit",
    ...prlimitArgs(plan.rlimits),
    "--",
    ...plan.command,
  ];
}

/**
 * The box's first process as the native bridge: fourwall's stderr back to fd 2, the listener on
 * the proxy port up before it forks its relay (no polling), "ready" on the ready fd, then the rest
 * of the chain. Undefined (sh + socat) without session.bridge, or when transparent egress needs
 * socat's forwarders.
 */
function nativeBridgeArgs(plan: BoxPlan, session: BoxSession, options: BwrapOptions): string[] | undefined {
  if (!session.bridge || !nativeBridgeFits(plan)) return undefined;
  return [
    BRIDGE_IN_BOX,
    ...(options.stderrFd === undefined ? [] : ["--stderr", String(options.stderrFd)]),
    "--listen",
    String(plan.network.port),
    plan.network.socketInBox,
    "--ready",
    String(READY_FD),
    "--",
  ];
}

/** The box's first process as sh + socat, polled until they listen (see bridgeScript). */
function shellBridgeArgs(plan: BoxPlan, options: BwrapOptions): string[] {
  // Where the launcher captures bwrap's stderr, the box first takes fourwall's own back to fd 2.
  const restoreStderr =
    options.stderrFd === undefined ? "" : `exec 2>&${options.stderrFd} ${options.stderrFd}>&-\n`;
  return [
    "/bin/sh",
    "-c",
    restoreStderr + bridgeScript(plan.network, { readyFd: READY_FD }),
    "fourwall-bridge",
  ];
}

/** Transparent egress's forwarders (socat's PROXY: mode) are not the native bridge's: sh + socat then. */
const nativeBridgeFits = (plan: BoxPlan) => (plan.network.transparent?.forwards ?? []).length === 0;

/**
 * The session with the native bridge (effectful): its empty mount point in the socket directory
 * (which the box sees read-only, so bwrap could not make it there). Unchanged when it is not built.
 */
export function withNativeBridge(plan: BoxPlan, session: BoxSession): BoxSession {
  const helper = nativeHelperPath("bridge");
  if (!nativeBridgeFits(plan) || !existsSync(helper)) return session;
  try {
    // EXCL: a name already there (never fourwall's) is not followed or overwritten
    writeFileSync(path.join(session.netDir, BRIDGE_NAME), "", { mode: 0o444, flag: "wx" });
  } catch (error) {
    throw new WallError(
      "egress",
      `cannot make the egress bridge's mount point in the box's socket directory: ${(error as Error).message}`,
      "run `fourwall doctor`",
    );
  }
  return { ...session, bridge: helper };
}

/**
 * Approval gate: what starts a program inside a mount namespace where the workdir is the
 * copy-on-write layer (fourwall-overlay), and writable directories outside it carry their
 * placeholders in write-through overlays; nothing without either.
 */
export function gateLayerPrefix(session: BoxSession): string[] {
  const o = session.overlay;
  // root mode: fourwall-drop mounts them (asBoxUid), as root, before the box uid takes over
  const t = session.through?.carrier === "overlay" ? session.through : undefined;
  if (!o && !t) return [];
  // one --hide first (the layers dir: the gate's and the write-through overlays' are the same)
  const gate = o?.helperArgs ?? [];
  const hide = gate[0] === "--hide" ? gate.slice(0, 2) : t ? ["--hide", t.hide] : [];
  const rest = gate[0] === "--hide" ? gate.slice(2) : gate;
  return [overlayHelperPath(), ...hide, ...(t?.args ?? []), ...rest, "--"];
}

/**
 * How a runtime's launcher command starts: under the box's own session and terminal
 * (`terminalPrefix`), then as is for an ordinary user; as root, through the root-mode launcher
 * (fourwall-drop: the box's cgroup, idmapped mounts, the unprivileged box uid).
 */
export function asBoxUser(plan: BoxPlan, session: BoxSession, command: string[]): string[] {
  return [...terminalPrefix(session), ...asBoxUid(plan, session, command)];
}

function asBoxUid(plan: BoxPlan, session: BoxSession, command: string[]): string[] {
  if (plan.identity.mode === "user") return command;
  const idmaps = plan.identity.idmaps.flatMap((m) => ["--idmap", `${m.ownerUid}:${m.ownerGid}:${m.path}`]);
  const cgroups = session.cgroupDirs.flatMap((dir) => ["--cgroup", dir]);
  return [
    dropHelperPath(),
    String(plan.identity.uid),
    String(plan.identity.gid),
    ...idmaps,
    ...cgroups,
    // approval gate: the layer is opened as root (only root can walk to it), for fourwall-overlay
    ...(session.overlay?.dropArgs ?? []),
    // placeholders outside the workdir: write-through overlays over an idmapped clone (box/through.ts)
    ...(session.through?.carrier === "drop" ? session.through.args : []),
    // a workdir under a directory the box uid cannot search (/srv 0700, a mktemp -d) stays reachable
    "--reach",
    plan.filesystem.cwd,
    "--",
    ...command,
  ];
}

/** The program and arguments that start bwrap: directly, or through the root-mode launcher. */
export function launcherCommand(
  plan: BoxPlan,
  session: BoxSession,
  bwrap = "bwrap",
  options: BwrapOptions = {},
): string[] {
  return asBoxUser(plan, session, [...gateLayerPrefix(session), bwrap, ...bwrapArgs(plan, session, options)]);
}

/**
 * How the namespaces runtime launches a plan (pure): bwrap's command, the seccomp program on fd 3,
 * its json status on fd 4, the netns hold on fd 5 (transparent egress), the ready line on fd 6,
 * fourwall's stderr on fd 7. `rewriteArgs` is the test suite's hook (RuntimeTestOptions).
 */
export function namespacesLaunchSpec(
  plan: BoxPlan,
  session: BoxSession,
  rewriteArgs: (args: string[]) => string[] = (args) => args,
): LaunchSpec {
  const blocked = needsNetnsPreparation(plan.network);
  return {
    builder: "bubblewrap",
    argv: rewriteArgs(launcherCommand(plan, session, "bwrap", { stderrFd: STDERR_FD })),
    env: plan.env,
    stdio: ["inherit", "inherit", "inherit"],
    extraFds: [
      { fd: SECCOMP_FD, use: "input", data: plan.seccomp },
      { fd: STATUS_FD, use: "json-status" },
      ...(blocked ? [{ fd: BLOCK_FD, use: "release" as const }] : []),
      { fd: READY_FD, use: "ready" },
      { fd: STDERR_FD, use: "stderr" },
      ...(session.terminal?.callerFds === undefined
        ? []
        : [{ fd: CALLER_FD, use: "pass" as const, from: session.terminal.callerFds }]),
    ],
    detached: false,
    readiness: { kind: "ready-fd" },
    // bwrap does not forward signals: they go to the command (the box's pid 1 is bwrap's reaper).
    stop: { kind: "box-children", except: ["socat"] },
    forwardTerminalSignals: [],
    exitFrom: "json-status",
    failure: bwrapFailure,
  };
}

/**
 * What bwrap's complaint means: it cannot mount, bind, make or find a path the filesystem wall
 * names (a symlink, or a missing path, where a protected path should be), else the isolation wall.
 */
export function bwrapFailure(captured: string): { wall: WallName; message: string; fix: string } {
  const said = captured || "no message";
  // fourwall-overlay / fourwall-drop: a write-through overlay carrying placeholders (box/through.ts)
  if (/^fourwall-(?:overlay|drop): .*write-through overlay/m.test(captured))
    return {
      wall: "filesystem",
      message: `the write-through overlay that keeps a placeholder off the host could not be made: ${said}`,
      fix: "check that overlayfs is available (modprobe overlay; idmapped layers need Linux >= 5.19 as root), or name the missing path in filesystem.allowPersistence",
    };
  const fsPath =
    /^bwrap: Can't (?:mkdir|mount|bind mount|create file at|find source path|remount|make symlink at|chdir to|open)\s+(?:tmpfs on\s+)?(\S+?):?\s/m.exec(
      captured,
    );
  if (fsPath) {
    const where = fsPath[1]!.replace(/^\/(?:newroot|oldroot)(?=\/)/, "");
    return {
      wall: "filesystem",
      message: `bubblewrap could not build the box's filesystem: ${said}`,
      fix: `check ${where} on the host: a path the policy mounts or protects (or one of its parents) is a symlink or is missing; replace the symlink by the real directory or file, or change the policy entry (fourwall policy check)`,
    };
  }
  return {
    wall: "isolation",
    message: `bubblewrap could not build the box: ${said}`,
    fix: "run `fourwall doctor`",
  };
}

export class NamespacesRuntime implements Runtime {
  readonly name = "namespaces" as const;

  constructor(private readonly options: RuntimeTestOptions = {}) {}

  check(): RuntimeCheck {
    const bwrap = which("bwrap");
    if (!bwrap)
      return unavailable(
        this.name,
        "bubblewrap (bwrap) is not installed",
        "apt-get install bubblewrap (or: npm run setup)",
      );
    if (!which("prlimit")) return unavailable(this.name, "prlimit is missing", "apt-get install util-linux");
    if (process.getuid?.() === 0 && !existsSync(dropHelperPath()))
      return unavailable(
        this.name,
        `the root-mode launcher ${dropHelperPath()} is not built`,
        "npm run setup (compiles native/fourwall-drop.c with gcc)",
      );
    const max = readFileSync("/proc/sys/user/max_user_namespaces", "utf8").trim();
    if (max === "0")
      return unavailable(
        this.name,
        "user namespaces are disabled (user.max_user_namespaces = 0)",
        "sysctl -w user.max_user_namespaces=15000",
      );
    return {
      runtime: this.name,
      available: true,
      detail: `bubblewrap at ${bwrap}, seccomp, user namespaces`,
    };
  }

  async launch(plan: BoxPlan, session: BoxSession): Promise<RunningBox> {
    const check = this.check();
    if (!check.available) throw new WallError("isolation", check.detail, check.fix ?? "run fourwall doctor");
    writeTransparentFiles(plan.network, session.runDir);
    const hooks = namespacesHooks();
    if (session.trace) hooks.step = (label) => session.trace?.step(label);
    const withBridge = withNativeBridge(plan, session);
    return launchBox(namespacesLaunchSpec(plan, withBridge, this.options.transformArgs), hooks);
  }
}

/** The effectful steps around a namespaces launch: the box's netns (transparent egress), the bridge's readiness. */
export function namespacesHooks(): LaunchHooks {
  return {
    // The command waits (bwrap --block-fd) until its network namespace allows the forwarders' ports.
    async beforeRelease(pid) {
      try {
        await prepareBoxNetns(pid);
      } catch (error) {
        throw new WallError(
          "egress",
          `transparent mode could not prepare the box's network namespace: ${(error as Error).message}`,
          "npm run setup (builds native/fourwall-netns), or set egress.transparent: false",
        );
      }
    },
    // The box's first process exits 125 when its bridge to the proxy does not listen.
    notReady: (status) =>
      status === 125
        ? new WallError(
            "egress",
            "the box's bridge to the proxy did not start",
            "npm run setup (builds native/fourwall-bridge; transparent mode needs socat)",
          )
        : undefined,
  };
}
