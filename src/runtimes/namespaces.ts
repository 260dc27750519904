import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { WallError } from "../core/errors.js";
import { exitStatus } from "../core/exit.js";
import { dropHelperPath, which } from "../core/paths.js";
import type { BoxPlan } from "../plan/plan.js";
import {
  BOX_NET_DIR,
  bridgeScript,
  needsNetnsPreparation,
  prepareBoxNetns,
  transparentMounts,
  writeTransparentFiles,
} from "../walls/egress/index.js";
import type { Mount } from "../walls/filesystem/index.js";
import { overlayHelperPath } from "../walls/gate/index.js";
import { prlimitArgs } from "../walls/isolation/index.js";
import {
  type BoxExit,
  type BoxSession,
  type RunningBox,
  type Runtime,
  type RuntimeCheck,
  unavailable,
} from "./runtime.js";
import { terminalPrefix } from "./terminal.js";

const SECCOMP_FD = 3;
const STATUS_FD = 4;
/** The box's first process writes "ready" here just before it becomes the command. */
const READY_FD = 6;
/** egress transparent mode: bwrap holds the command until fourwall has prepared the box's netns. */
const BLOCK_FD = 5;

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
    case "symlink":
      return ["--symlink", mount.linkTo, mount.target];
    case "proc":
      return ["--proc", "/proc"];
    case "dev":
      return ["--dev", "/dev"];
  }
}

/**
 * bwrap's argument list for a plan (pure). Every namespace is new; the box keeps no capability,
 * cannot make user namespaces, dies with its parent, and gets fourwall's seccomp filter on fd 3.
 * Inside, a shell starts the egress bridge and execs prlimit, which sets the rlimits (in the box's
 * own user namespace, where NPROC counts the box) and execs the command.
 */
export function bwrapArgs(plan: BoxPlan, session: BoxSession): string[] {
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
    // egress transparent mode: the box's own hosts file (only allowlisted names) and no resolver
    ...transparentMounts(plan.network, session.runDir).flatMap((m) => ["--ro-bind", m.source, m.target]),
    "--chdir",
    plan.filesystem.cwd,
    "--",
    "/bin/sh",
    "-c",
    bridgeScript(plan.network, { readyFd: READY_FD }),
    "fourwall-bridge",
    "/usr/bin/prlimit",
    ...prlimitArgs(plan.rlimits),
    "--",
    ...plan.command,
  ];
}

/**
 * Approval gate: what starts a program inside a mount namespace where the workdir is the
 * copy-on-write layer (fourwall-overlay); nothing without a layer.
 */
export function gateLayerPrefix(session: BoxSession): string[] {
  const o = session.overlay;
  return o ? [overlayHelperPath(), o.lower, o.upper, o.work, "--"] : [];
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
    "--",
    ...command,
  ];
}

/** The program and arguments that start bwrap: directly, or through the root-mode launcher. */
export function launcherCommand(plan: BoxPlan, session: BoxSession, bwrap = "bwrap"): string[] {
  return asBoxUser(plan, session, [...gateLayerPrefix(session), bwrap, ...bwrapArgs(plan, session)]);
}

/** Reads bwrap's JSON status stream: the box's pid 1 when it starts, its exit code at the end. */
function watchStatus(stream: Readable): {
  childPid: Promise<number | undefined>;
  exitCode: Promise<number | undefined>;
} {
  let text = "";
  let resolvePid: (pid: number | undefined) => void = () => {};
  let resolveExit: (code: number | undefined) => void = () => {};
  const childPid = new Promise<number | undefined>((r) => (resolvePid = r));
  const exitCode = new Promise<number | undefined>((r) => (resolveExit = r));
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    text += chunk;
    for (const match of text.matchAll(/"child-pid"\s*:\s*(\d+)/g)) resolvePid(Number(match[1]));
    for (const match of text.matchAll(/"exit-code"\s*:\s*(\d+)/g)) resolveExit(Number(match[1]));
  });
  stream.on("close", () => {
    resolvePid(undefined);
    resolveExit(undefined);
  });
  stream.on("error", () => {});
  return { childPid, exitCode };
}

export interface NamespacesRuntimeOptions {
  /**
   * Rewrites the launcher's argument list. Only the test suite's deliberately broken boxes use it
   * (to show each test catches the hole); the CLI never sets it.
   */
  transformArgs?: (args: string[]) => string[];
}

export class NamespacesRuntime implements Runtime {
  readonly name = "namespaces" as const;

  constructor(private readonly options: NamespacesRuntimeOptions = {}) {}

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
    const blocked = needsNetnsPreparation(plan.network);
    const command = launcherCommand(plan, session);
    const [program, ...args] = this.options.transformArgs ? this.options.transformArgs(command) : command;
    const child: ChildProcess = spawn(program!, args, {
      stdio: ["inherit", "inherit", "inherit", "pipe", "pipe", blocked ? "pipe" : "ignore", "pipe"],
      env: plan.env,
    });
    const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    const seccompPipe = child.stdio[SECCOMP_FD] as Writable;
    seccompPipe.on("error", () => {}); // bwrap gone early: the exit path reports it
    seccompPipe.end(plan.seccomp);
    const status = watchStatus(child.stdio[STATUS_FD] as Readable);
    const ready = new Promise<boolean>((resolve) => {
      const pipe = (child.stdio as unknown as Readable[])[READY_FD]!;
      pipe.on("error", () => {});
      pipe.once("data", () => resolve(true));
      pipe.once("close", () => resolve(false));
    });

    const childPid = await Promise.race([status.childPid, spawnError.then(() => undefined)]);
    if (childPid === undefined) {
      const error = await Promise.race([spawnError, exited.then(() => undefined)]);
      throw new WallError(
        "isolation",
        error
          ? `cannot start ${program}: ${error.message}`
          : "bubblewrap could not build the box (its message is above)",
        "run `fourwall doctor`; check that every path in the policy exists",
      );
    }

    if (blocked) {
      // The command waits (bwrap --block-fd) until its network namespace allows the forwarders' ports.
      const release = (child.stdio as unknown as Writable[])[BLOCK_FD]!;
      release.on("error", () => {});
      try {
        await prepareBoxNetns(childPid);
      } catch (error) {
        child.kill("SIGKILL");
        await exited;
        throw new WallError(
          "egress",
          `transparent mode could not prepare the box's network namespace: ${(error as Error).message}`,
          "npm run setup (builds native/fourwall-netns), or set egress.transparent: false",
        );
      }
      release.end("1");
    }

    // Resolve only once the box is ready: its bridge listens and its first process is becoming the
    // command (so `exec` and the first request never race the set-up).
    if (!(await ready)) {
      const reported = await status.exitCode;
      if (reported === 125) {
        throw new WallError(
          "egress",
          "the box's bridge to the proxy did not start",
          "check that socat is installed (npm run setup)",
        );
      }
    }

    const exit = (async (): Promise<BoxExit> => {
      const { code, signal } = await exited;
      const reported = await status.exitCode;
      if (reported !== undefined) return { code: reported };
      return { code: exitStatus(code, signal) };
    })();

    return {
      pid: childPid,
      exit,
      signal(sig) {
        // bwrap does not forward signals: deliver to the command (the box's pid 1 is bwrap's reaper).
        for (const pid of commandPids(childPid)) {
          try {
            process.kill(pid, sig);
          } catch {}
        }
      },
    };
  }
}

/** The command's pid(s): the children of the box's pid 1, except the egress bridge. */
function commandPids(boxInit: number): number[] {
  const comm = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      return "";
    }
  };
  try {
    const children = readFileSync(`/proc/${boxInit}/task/${boxInit}/children`, "utf8").trim();
    const pids = children
      ? children
          .split(/\s+/)
          .map(Number)
          .filter((pid) => comm(pid) !== "socat")
      : [];
    return pids.length > 0 ? pids : [boxInit];
  } catch {
    return [];
  }
}
