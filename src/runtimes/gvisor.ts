/**
 * The gVisor runtime: the box runs under `runsc`, gVisor's user-space kernel, so the command's
 * syscalls are served by gVisor (the "sentry") and never reach the host kernel directly.
 *
 * How the walls are carried over (measured on Debian 12's runsc 2022-12-19, kernel 6.18):
 *   - isolation: runsc always runs rootless, with --platform=ptrace (kvm hangs under nested KVM;
 *     systrap does not exist in this build). Launched by root, runsc itself is started through
 *     the root-mode launcher (native/fourwall-drop.c), which joins the box's cgroup, puts the
 *     idmapped mounts over HOME and the writable paths and drops to the box uid (70000): runsc,
 *     its gofer and its sandbox are then ordinary uid-70000 processes on the host, and root-owned
 *     files stay unreadable even to an escape from the sentry. Rootless runsc maps the uid that
 *     starts it to 0 in its user namespace, so inside gVisor the command is uid 0 with no
 *     capability at all (empty sets, no_new_privs): the owner of the files it may write, nothing
 *     more. (runsc as real root with the box as user 70000 was measured too: it works, but its
 *     gofer then opens host files as root.)
 *   - filesystem: the plan's mounts become an OCI bundle (oci.ts); the host's / is the read-only
 *     root, tmpfs mounts live in the sentry's memory.
 *   - egress: --network=none leaves gVisor's own loopback and nothing else (never the host's
 *     network: rootless runsc without --network=none would hand it over). The proxy socket's
 *     directory is bound in and --host-uds=open lets the box connect() to host unix sockets it can
 *     see: the same reach as the namespaces runtime (socket directories are hidden by tmpfs), and
 *     abstract sockets stay unreachable (gVisor's netstack has its own).
 *   - seccomp: fourwall's rule table as an OCI profile, run by gVisor (--oci-seccomp).
 *   - limits: rlimits on the box's first process (OCI), the box cgroup (root mode) around every
 *     runsc process. This runsc ignores tmpfs size=, so /tmp is bounded by the cgroup's memory cap
 *     in root mode only; without a cgroup nothing bounds tmpfs, and fourwall says so at start.
 * Lifetime: runsc runs in its own session (a Ctrl-C on the terminal would otherwise kill runsc
 * rather than reach the box) with a parent-death signal; its sandbox dies with it (--attached).
 * Signals go through `runsc kill`. Its state dir and the bundle live in the run dir, which the
 * supervisor and its reaper remove on every exit path.
 */

import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  constants,
  copyFileSync,
  existsSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { isatty } from "node:tty";
import { WallError } from "../core/errors.js";
import { dropHelperPath, isUnder, nativeHelperPath, which } from "../core/paths.js";
import type { BoxPlan } from "../plan/plan.js";
import { BOX_NET_DIR } from "../walls/egress/index.js";
import { type LaunchSpec, launchBox, SIGNAL, type StdioSlot } from "./launch.js";
import { asBoxUser, gateLayerPrefix } from "./namespaces.js";
import { minimalSpec, type OciSpec, ociBundle, ociWallError } from "./oci.js";
import {
  type BoxSession,
  unavailable as notHere,
  type RunningBox,
  type Runtime,
  type RuntimeCheck,
  type RuntimeTestOptions,
} from "./runtime.js";

const RUNSC_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const INSTALL_FIX = "apt-get install runsc (Debian 12 and later; or: npm run setup)";

/** runsc's global flags for one box. --network=none is not optional: see the header. */
export function runscFlags(stateDir: string): string[] {
  return [
    "--root",
    stateDir,
    "--rootless",
    "--platform=ptrace",
    "--network=none",
    "--host-uds=open",
    "--oci-seccomp",
    // The box's cgroup (root mode) is joined by the launcher before runsc starts; runsc makes none.
    "--ignore-cgroups",
  ];
}

export interface GvisorLayout {
  bundleDir: string;
  stateDir: string;
  pidFile: string;
  containerId: string;
}

export function gvisorLayout(plan: BoxPlan, session: BoxSession): GvisorLayout {
  const bundleDir = path.join(session.runDir, "gvisor");
  return {
    bundleDir,
    stateDir: path.join(bundleDir, "state"),
    pidFile: path.join(bundleDir, "state", "container.pid"),
    containerId: `fourwall-${plan.id}`,
  };
}

/** The program and arguments that start runsc for the plan (pure). `debugLogDir`: runsc's logs (FOURWALL_RUNSC_LOG). */
export function runscCommand(
  plan: BoxPlan,
  session: BoxSession,
  layout: GvisorLayout,
  runsc = "runsc",
  debugLogDir?: string,
): string[] {
  const debug = debugLogDir ? ["--debug", `--debug-log=${path.resolve(debugLogDir)}/`] : [];
  // Approval gate: runsc starts inside the mount namespace where the workdir is a copy-on-write
  // layer (as bwrap does); the gofer serves the workdir from there.
  const args = [
    ...gateLayerPrefix(session),
    runsc,
    ...runscFlags(layout.stateDir),
    ...debug,
    "run",
    "--bundle",
    layout.bundleDir,
    "--pid-file",
    layout.pidFile,
    layout.containerId,
  ];
  if (plan.identity.mode === "user") return ["setpriv", "--pdeathsig", "KILL", "--", ...args];
  return asBoxUser(plan, session, args);
}

/** What the host gives a gVisor launch: runsc's path, the box's stdio, whether it is a terminal. */
export interface GvisorHost {
  runsc: string;
  /** The box's stdin, stdout, stderr (see boxStdio). */
  stdio: StdioSlot[];
  /** fourwall's stdin is a terminal: its Ctrl-C and window size go on to the box. */
  stdinTerminal: boolean;
  debugLogDir?: string;
}

/**
 * How the gVisor runtime launches a plan whose bundle is written (pure): runsc in a session of its
 * own (a Ctrl-C on the terminal would otherwise kill runsc rather than reach the box), ready once
 * its pid file exists, signals through `runsc kill`, `runsc delete --force` if runsc was killed.
 */
export function gvisorLaunchSpec(
  plan: BoxPlan,
  session: BoxSession,
  layout: GvisorLayout,
  host: GvisorHost,
  rewriteArgs: (args: string[]) => string[] = (args) => args,
): LaunchSpec {
  const env = { PATH: RUNSC_PATH };
  const [stdin, stdout, stderr] = host.stdio;
  return {
    builder: "runsc",
    argv: rewriteArgs(runscCommand(plan, session, layout, host.runsc, host.debugLogDir)),
    env,
    stdio: [stdin!, stdout!, stderr!],
    extraFds: [],
    detached: true,
    // The pid file appears once runsc has built the sandbox (mounts, gofer, seccomp profile) and
    // before it starts the command. A start that fails after it (a missing /bin/sh) is runsc's
    // exit status 128 with its message.
    readiness: { kind: "file", path: layout.pidFile },
    stop: {
      kind: "command",
      argv: [host.runsc, "--root", layout.stateDir, "kill", layout.containerId, SIGNAL],
      env,
      bare: true,
    },
    // On a terminal the supervisor leaves Ctrl-C, Ctrl-\ to the terminal (the namespaces box
    // shares its process group); runsc runs in a session of its own, so pass them on, and window
    // size changes too.
    forwardTerminalSignals: host.stdinTerminal ? ["SIGINT", "SIGQUIT", "SIGWINCH"] : [],
    exitFrom: "process",
    // runsc exiting by itself has already reaped its sandbox and gofer (--attached); killed from
    // outside, it may not have: make sure nothing of the box is left running.
    cleanupIfKilled: {
      argv: [host.runsc, "--root", layout.stateDir, "delete", "--force", layout.containerId],
      env,
    },
    failure: () => ({
      wall: "isolation",
      message: "runsc could not build the box (its message is above)",
      fix: "run `fourwall doctor`; FOURWALL_RUNSC_LOG=DIR keeps runsc's logs",
    }),
  };
}

function runscVersion(runsc: string): string | undefined {
  const r = spawnSync(runsc, ["--version"], { encoding: "utf8", timeout: 5000 });
  return /runsc version (\S+)/.exec(r.stdout ?? "")?.[1];
}

/** Runs /bin/true in a minimal bundle: does this runsc start a sandbox here, on ptrace? */
function probe(runsc: string): string | undefined {
  const dir = mkdtempSync(path.join(os.tmpdir(), "fourwall-runsc-probe-"));
  try {
    const bundle = path.join(dir, "bundle");
    mkdirSync(bundle);
    const spec = minimalSpec();
    writeFileSync(path.join(bundle, "config.json"), JSON.stringify(spec));
    const r = spawnSync(
      runsc,
      [...runscFlags(path.join(dir, "state")), "run", "--bundle", bundle, `fourwall-probe-${process.pid}`],
      {
        encoding: "utf8",
        timeout: 20_000,
        killSignal: "SIGKILL",
        env: { PATH: RUNSC_PATH },
      },
    );
    if (r.error) return r.error.message;
    if (r.status !== 0) return (r.stderr || `exit status ${r.status}`).trim().split("\n").at(-1);
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The box's stdin, stdout and stderr, never fourwall's own file descriptions where avoidable:
 *   - gVisor sets O_NONBLOCK on the host files it is handed and leaves it set: shared with
 *     fourwall (and with the user's shell, on a terminal) that breaks their reads and writes after
 *     the box is gone (measured: the terminal stays non-blocking after runsc exits). So each one
 *     is opened again through /proc/self/fd: the same terminal or pipe, a description of its own.
 *   - gVisor writes a regular file at its own offset, from 0, over what is there: a pipe instead,
 *     and fourwall appends for it. So too for a pipe or socket that cannot be opened again.
 *   - A terminal that cannot be opened again (not ours: `su`, `setpriv` into another uid) is
 *     passed as it is; `restoreBlocking` clears O_NONBLOCK on it when the box has ended.
 * Returns an fd to pass (the launcher closes it once runsc is spawned), "inherit" or "relay".
 */
function boxStdio(terminal: boolean): StdioSlot[] {
  return [0, 1, 2].map((fd) => {
    try {
      if (!terminal && fstatSync(fd).isFile()) return "relay";
      // As a terminal, runsc does all the box's terminal I/O on the stdin it is given: read-write.
      const access = terminal ? constants.O_RDWR : fd === 0 ? constants.O_RDONLY : constants.O_WRONLY;
      return openSync(`/proc/self/fd/${fd}`, access | constants.O_NOCTTY);
    } catch {
      return isatty(fd) ? "inherit" : "relay";
    }
  });
}

/** GNU stty clears O_NONBLOCK on its stdin before anything else: the one tool here that can. */
function restoreBlocking(stdio: StdioSlot[]): void {
  stdio.forEach((s, fd) => {
    if (s === "inherit") spawnSync("stty", ["-g"], { stdio: [fd, "ignore", "ignore"], timeout: 5000 });
  });
}

export interface GvisorRuntimeOptions extends RuntimeTestOptions {
  /**
   * Rewrites the OCI spec. Only the test suite's deliberately broken boxes use it (to show each
   * test catches the hole); the CLI never sets it.
   */
  transformSpec?: (spec: OciSpec) => OciSpec;
}

export class GvisorRuntime implements Runtime {
  readonly name = "gvisor" as const;
  private probed: string | undefined | null = null;

  constructor(private readonly options: GvisorRuntimeOptions = {}) {}

  /** The checks `launch` makes on every run (no sandbox is started). */
  private preflight(): RuntimeCheck & { runsc?: string } {
    const unavailable = (detail: string, fix: string) => notHere(this.name, detail, fix);
    const runsc = which("runsc", RUNSC_PATH);
    if (!runsc) return unavailable("gVisor's runsc is not installed", INSTALL_FIX);
    if (process.getuid?.() === 0) {
      if (!existsSync(dropHelperPath())) {
        return unavailable(
          `the root-mode launcher ${dropHelperPath()} is not built`,
          "npm run setup (compiles native/fourwall-drop.c with gcc)",
        );
      }
    } else if (!which("setpriv", RUNSC_PATH)) {
      return unavailable(
        "setpriv is missing (it ties runsc's life to fourwall's)",
        "apt-get install util-linux",
      );
    }
    let maxUserns = "";
    try {
      maxUserns = readFileSync("/proc/sys/user/max_user_namespaces", "utf8").trim();
    } catch {}
    if (maxUserns === "0") {
      return unavailable(
        "user namespaces are disabled (rootless runsc needs them)",
        "sysctl -w user.max_user_namespaces=15000",
      );
    }
    return { runtime: this.name, available: true, detail: `runsc at ${runsc}`, runsc };
  }

  /** For `fourwall doctor`: the static checks, the version, then one real sandbox on ptrace. */
  check(): RuntimeCheck {
    const pre = this.preflight();
    if (!pre.available || !pre.runsc)
      return {
        runtime: pre.runtime,
        available: pre.available,
        detail: pre.detail,
        ...(pre.fix ? { fix: pre.fix } : {}),
      };
    const version = runscVersion(pre.runsc) ?? "unknown version";
    if (this.probed === null) this.probed = probe(pre.runsc);
    if (this.probed !== undefined) {
      return notHere(
        this.name,
        `runsc ${version} could not start a sandbox on the ptrace platform: ${this.probed}`,
        "check that ptrace is allowed (kernel.yama.ptrace_scope <= 1, no seccomp on fourwall itself) and that /tmp is writable; FOURWALL_RUNSC_LOG=DIR keeps runsc's logs",
      );
    }
    return {
      runtime: this.name,
      available: true,
      detail: `runsc ${version}, platform ptrace, rootless, no network but the proxy (host-UDS bridge)`,
    };
  }

  async launch(plan: BoxPlan, session: BoxSession): Promise<RunningBox> {
    const pre = this.preflight();
    if (!pre.available || !pre.runsc)
      throw new WallError("isolation", pre.detail, pre.fix ?? "run fourwall doctor");
    // A terminal only when the command's input and output are one: runsc then gives the box its
    // own stdin as the controlling TTY (no console socket to relay).
    const terminal = process.stdin.isTTY === true && process.stdout.isTTY === true;
    let spec: OciSpec;
    try {
      const netDirOnHost = statSync(BOX_NET_DIR, { throwIfNoEntry: false })?.isDirectory() === true;
      const bridgeInNetDir = placeBridge(session);
      spec = ociBundle(plan, session, {
        user: { uid: 0, gid: 0 },
        terminal,
        netDirOnHost,
        ...(bridgeInNetDir ? { bridgeInNetDir } : {}),
      }).spec;
    } catch (error) {
      throw ociWallError(error, "gVisor");
    }
    if (this.options.transformSpec) spec = this.options.transformSpec(spec);
    // runsc's gofer mounts binds on the host side, under the root: a target missing there fails
    // inside runsc with an opaque message; name it here instead.
    // (Inside a tmpfs of the spec, such as the rebuilt HOME, the sentry makes the mount point itself.)
    const inTmpfs = (dest: string) =>
      spec.mounts.some((t) => t.type === "tmpfs" && dest !== t.destination && isUnder(dest, t.destination));
    for (const m of spec.mounts) {
      if (
        m.type === "bind" &&
        !inTmpfs(m.destination) &&
        !existsSync(path.join(spec.root.path, m.destination))
      ) {
        throw new WallError(
          "filesystem",
          `gVisor binds on the host: ${m.destination} does not exist under ${spec.root.path}`,
          "create it, or use --runtime namespaces",
        );
      }
    }
    if (
      session.cgroupDirs.length === 0 &&
      spec.mounts.some((m) => m.options.some((o) => o.startsWith("size=")))
    ) {
      // Not silently: the plan asked for a bound this runtime cannot give here.
      process.stderr.write(
        "fourwall: gvisor: this runsc ignores tmpfs sizes and there is no box cgroup (not root): /tmp and the other tmpfs are bounded only by the host's memory\n",
      );
    }
    const layout = gvisorLayout(plan, session);
    writeBundle(plan, layout, spec);
    allowRunscTasks(plan, session);

    const stdio = boxStdio(terminal);
    const launch = gvisorLaunchSpec(
      plan,
      session,
      layout,
      {
        runsc: pre.runsc,
        stdio,
        stdinTerminal: process.stdin.isTTY === true,
        ...(process.env.FOURWALL_RUNSC_LOG ? { debugLogDir: process.env.FOURWALL_RUNSC_LOG } : {}),
      },
      this.options.transformArgs,
    );
    return launchBox(launch, { afterExit: () => restoreBlocking(stdio) });
  }
}

/**
 * runsc's own tasks count against the box cgroup's pids.max, which was sized for the box's
 * processes alone: its Go threads, the gofer's, and ptrace stubs (a host process per box address
 * space, plus a host thread per sentry thread running box code). Measured: ~150 host tasks for a
 * box running `sleep` on a loaded 2-core host; with pids: 64, runsc could not even start python.
 * The box's own processes stay held to the plan's number by gVisor's kernel (RLIMIT_NPROC); the
 * cgroup keeps a finite bound on the host tasks the whole box may take.
 */
const RUNSC_OWN_TASKS = 512;
/** The host tasks a box under runsc may take (its own processes held by gVisor's RLIMIT_NPROC): docker's --pids-limit too. */
export const runscPidsMax = (pids: number): number => 2 * pids + RUNSC_OWN_TASKS;

function allowRunscTasks(plan: BoxPlan, session: BoxSession): void {
  for (const dir of session.cgroupDirs) {
    const file = path.join(dir, "pids.max");
    if (!existsSync(file)) continue;
    try {
      writeFileSync(file, String(runscPidsMax(plan.boxLimits.pids)));
    } catch (error) {
      throw new WallError(
        "isolation",
        `cannot size the box cgroup for runsc: ${(error as Error).message}`,
        "run `fourwall doctor`",
      );
    }
  }
}

/** The native bridge's name in the socket directory (bound read-only into the box). */
export const BRIDGE_IN_NET_DIR = "fourwall-bridge";

/**
 * A copy of the static native bridge in the proxy socket's directory, which the box sees read-only
 * wherever fourwall is installed (its own path may be hidden by the plan: a HOME rebuilt). Its
 * name there, or undefined when it is not built (the box then starts through sh + socat).
 */
export function placeBridge(session: BoxSession): string | undefined {
  const helper = nativeHelperPath("bridge");
  if (!existsSync(helper)) return undefined;
  const copy = path.join(session.netDir, BRIDGE_IN_NET_DIR);
  try {
    // EXCL: a name already there (never fourwall's) is not followed or overwritten
    copyFileSync(helper, copy, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    chmodSync(copy, 0o555);
  } catch (error) {
    throw new WallError(
      "egress",
      `cannot place the egress bridge in the box's socket directory: ${(error as Error).message}`,
      "run `fourwall doctor`",
    );
  }
  return BRIDGE_IN_NET_DIR;
}

function writeBundle(plan: BoxPlan, layout: GvisorLayout, spec: OciSpec): void {
  // 0700 and owned by whoever runs runsc: the spec holds the box's environment.
  mkdirSync(layout.bundleDir, { mode: 0o700 });
  mkdirSync(layout.stateDir, { mode: 0o700 });
  const config = path.join(layout.bundleDir, "config.json");
  writeFileSync(config, JSON.stringify(spec, null, 1), { mode: 0o600 });
  if (plan.identity.mode === "root") {
    for (const p of [layout.bundleDir, layout.stateDir, config])
      chownSync(p, plan.identity.uid, plan.identity.gid);
  }
}
