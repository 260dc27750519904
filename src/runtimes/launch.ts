/**
 * The one launcher every runtime goes through: a runtime describes its box as a LaunchSpec (pure
 * data: argv, env, the extra fds, how readiness is known, how signals reach the command), and
 * `launchBox` spawns it, waits until the command runs, maps its exit status and delivers
 * signals. A box that could not be built rejects with a WallError (exit 125): nothing ran.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, createReadStream, existsSync, readFileSync, writeSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { WallError, type WallName } from "../core/errors.js";
import { exitStatus } from "../core/exit.js";
import type { BoxExit, RunningBox } from "./runtime.js";

/**
 * What fds 0-2 of the launcher get: fourwall's own, nothing, a pipe the launcher relays to or from
 * fourwall's own fd of that number, or an fd opened for this box (closed once spawned).
 */
export type StdioSlot = "inherit" | "ignore" | "relay" | number;

/** A file descriptor above 2 that the launcher hands over, and what it is for. */
export type ExtraFd =
  /** Written once, then closed: e.g. the seccomp program bwrap reads (`--seccomp FD`). */
  | { fd: number; use: "input"; data: Buffer }
  /** bwrap's `--json-status-fd`: the box's pid 1 when it starts, the command's exit code at the end. */
  | { fd: number; use: "json-status" }
  /** The box writes a line here just before it becomes the command. */
  | { fd: number; use: "ready" }
  /** bwrap's `--block-fd`: the command waits until `hooks.beforeRelease` has run. */
  | { fd: number; use: "release" }
  /**
   * fourwall's own stderr. The launcher's fd 2 is then a pipe until the box is ready, so the
   * builder's complaint (bwrap's "Can't mount ...") is captured for the WallError; the box moves
   * this fd back to 2 before it starts the command, which so writes where it always did.
   */
  | { fd: number; use: "stderr" }
  /** An fd of fourwall's own, handed over as is (fourwall-run's connection: see terminal.ts). */
  | { fd: number; use: "pass"; from: number };

/** How the launcher knows the box is built and its command is starting. */
export type Readiness =
  /** Once the process is spawned (the launcher program itself waits, e.g. `docker run`). */
  | { kind: "spawned" }
  /** Once this file exists (runsc writes its pid file when the sandbox is built). */
  | { kind: "file"; path: string }
  /** bwrap: its json status names the box's pid 1, then the "ready" fd gets a line. */
  | { kind: "ready-fd" };

/** Stands for the signal in a Stopper's argv. */
export const SIGNAL = "<signal>";

/** How a signal reaches the command inside the box. */
export type Stopper =
  /** Sent to the children of the box's pid 1 (bwrap does not forward signals), the bridge excepted. */
  | { kind: "box-children"; except: string[] }
  /**
   * A command run per signal, SIGNAL in its argv replaced by the signal's name ("TERM" when
   * `bare`, else "SIGTERM"). A burst of one signal (SIGWINCH while resizing) collapses into one.
   */
  | { kind: "command"; argv: string[]; env: Record<string, string>; bare: boolean };

/** Everything the launcher needs to start one box (pure data, built by each runtime's launchSpec). */
export interface LaunchSpec {
  /** The runtime's program as the user knows it, for messages ("bubblewrap", "runsc", "docker"). */
  builder: string;
  argv: string[];
  env: Record<string, string>;
  stdio: [StdioSlot, StdioSlot, StdioSlot];
  extraFds: ExtraFd[];
  /** Its own session: a Ctrl-C on the terminal reaches the box through `forwardTerminalSignals`. */
  detached: boolean;
  readiness: Readiness;
  stop: Stopper;
  /** Terminal signals fourwall gets, passed on to the box (a detached box does not get them). */
  forwardTerminalSignals: NodeJS.Signals[];
  /** Where the command's status comes from: bwrap's json status when it has one, else the process. */
  exitFrom: "json-status" | "process";
  /** Run when the launcher program was killed (no exit code): nothing of the box may live on. */
  cleanupIfKilled?: { argv: string[]; env: Record<string, string> };
  /** What a box that could not be built is reported as. */
  failure: (captured: string) => { wall: WallName; message: string; fix: string };
}

/** The effectful steps a runtime adds around a launch. */
export interface LaunchHooks {
  /** With a "release" fd: runs once the box's pid is known, before the command may start. */
  beforeRelease?: (pid: number) => Promise<void>;
  /** The ready fd closed without "ready" and the box reported this status: a WallError, or nothing. */
  notReady?: (status: number | undefined) => WallError | undefined;
  /** After the launcher program has ended, before the exit status is reported. */
  afterExit?: () => void;
  /** Step timings (FOURWALL_TRACE). */
  step?: (label: string) => void;
}

type Closed = { code: number | null; signal: NodeJS.Signals | null };

/** Spawns a spec; resolves once the command runs, rejects with a WallError if the box was not built. */
export async function launchBox(spec: LaunchSpec, hooks: LaunchHooks = {}): Promise<RunningBox> {
  const [program, ...args] = spec.argv;
  let child: ChildProcess;
  try {
    child = spawn(program!, args, { stdio: stdioFor(spec), env: spec.env, detached: spec.detached });
  } finally {
    for (const s of spec.stdio) if (typeof s === "number") closeSync(s);
  }
  hooks.step?.("launcher spawned");
  relay(child, spec.stdio);
  const captured = captureStderr(child, spec);
  let spawnError: Error | undefined;
  const closed = new Promise<Closed>((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal }));
    child.once("error", (error) => {
      spawnError = error;
      resolve({ code: null, signal: null });
    });
  });
  for (const x of spec.extraFds) {
    if (x.use !== "input") continue;
    const pipe = fdStream(child, x.fd) as Writable;
    pipe.on("error", () => {}); // the builder gone early: the exit path reports it
    pipe.end(x.data);
  }
  const statusFd = spec.extraFds.find((x) => x.use === "json-status");
  const status = statusFd ? watchStatus(fdStream(child, statusFd.fd) as Readable) : undefined;
  // Listened to at once: a pipe that closes before anyone listens would never say so.
  const readyFd = spec.extraFds.find((x) => x.use === "ready");
  const ready = readyFd ? readyLine(fdStream(child, readyFd.fd) as Readable) : undefined;

  const notBuilt = async (why?: WallError): Promise<never> => {
    if (!spawnError) child.kill("SIGKILL");
    await closed;
    hooks.afterExit?.();
    if (why) throw why;
    if (spawnError)
      throw new WallError(
        "isolation",
        `cannot start ${program}: ${spawnError.message}`,
        "run `fourwall doctor`",
      );
    const { wall, message, fix } = spec.failure(captured.text().trim());
    throw new WallError(wall, message, fix);
  };

  let boxPid: number | undefined;
  switch (spec.readiness.kind) {
    case "spawned":
      await Promise.race([new Promise((r) => child.once("spawn", r)), closed]);
      if (spawnError) await notBuilt();
      break;
    case "file":
      if (!(await waitForFile(spec.readiness.path, closed))) await notBuilt();
      break;
    case "ready-fd": {
      boxPid = await Promise.race([status!.childPid, closed.then(() => undefined)]);
      hooks.step?.("bwrap's box pid known (namespaces made)");
      if (boxPid === undefined) await notBuilt();
      const release = spec.extraFds.find((x) => x.use === "release");
      if (release) {
        const pipe = fdStream(child, release.fd) as Writable;
        pipe.on("error", () => {});
        try {
          await hooks.beforeRelease?.(boxPid!);
        } catch (error) {
          await notBuilt(error instanceof WallError ? error : undefined);
        }
        pipe.end("1");
      }
      if (!(await ready!)) {
        const reported = await status!.exitCode;
        const refused = hooks.notReady?.(reported);
        // No status at all: the box's pid 1 never ran (bwrap failed while building it).
        if (refused || reported === undefined) await notBuilt(refused);
      }
      break;
    }
  }
  captured.release();

  const stop = stopper(spec.stop, () => boxPid);
  const handlers = spec.forwardTerminalSignals.map((sig) => {
    const handler = () => stop(sig);
    process.on(sig, handler);
    return [sig, handler] as const;
  });

  const exit = (async (): Promise<BoxExit> => {
    const { code, signal } = await closed;
    for (const [sig, handler] of handlers) process.off(sig, handler);
    hooks.afterExit?.();
    if (code === null && spec.cleanupIfKilled) {
      const [cmd, ...rest] = spec.cleanupIfKilled.argv;
      spawnSync(cmd!, rest, { stdio: "ignore", timeout: 10_000, env: spec.cleanupIfKilled.env });
    }
    if (spec.exitFrom === "json-status") {
      const reported = await status!.exitCode;
      if (reported !== undefined) return { code: reported };
    }
    return { code: exitStatus(code, signal) };
  })();

  return {
    ...(boxPid === undefined ? {} : { pid: boxPid }),
    ...(child.pid === undefined ? {} : { launcherPid: child.pid }),
    exit,
    signal: stop,
  };
}

/** The spawn stdio array: fds 0-2 as the spec says, then every extra fd at its number. */
function stdioFor(spec: LaunchSpec): ("inherit" | "pipe" | "ignore" | number)[] {
  const captures = spec.extraFds.some((x) => x.use === "stderr");
  const slots = spec.stdio.map((s) => (s === "relay" ? "pipe" : s));
  if (captures) slots[2] = "pipe";
  const top = Math.max(2, ...spec.extraFds.map((x) => x.fd));
  for (let fd = 3; fd <= top; fd++) {
    const x = spec.extraFds.find((e) => e.fd === fd);
    // fourwall's stderr at that number: "inherit" there would mean fourwall's own fd of that number
    const stderr = spec.stdio[2] === "inherit" || spec.stdio[2] === "relay" ? 2 : spec.stdio[2];
    slots.push(x === undefined ? "ignore" : x.use === "stderr" ? stderr : x.use === "pass" ? x.from : "pipe");
  }
  return slots;
}

const fdStream = (child: ChildProcess, fd: number) =>
  (child.stdio as unknown as (Readable | Writable)[])[fd]!;

/** Copies a "relay" stdout/stderr to fourwall's own fd (at its offset), and fourwall's stdin in. */
function relay(child: ChildProcess, stdio: StdioSlot[]): void {
  if (stdio[0] === "relay" && child.stdin) {
    child.stdin.on("error", () => {}); // the box stopped reading: not an error of fourwall's
    createReadStream("", { fd: 0, autoClose: false }).pipe(child.stdin);
  }
  for (const fd of [1, 2] as const) {
    const stream = child.stdio[fd] as Readable | null;
    if (stdio[fd] === "relay" && stream) stream.on("data", (chunk: Buffer) => writeSync(fd, chunk));
  }
}

/**
 * With a "stderr" fd, fd 2 is a pipe: kept until the box is ready (the builder's message, if it
 * fails), then written out, and from then on everything is passed straight through.
 */
function captureStderr(child: ChildProcess, spec: LaunchSpec) {
  let text = "";
  let passing = false;
  const pipe = spec.extraFds.some((x) => x.use === "stderr") ? (child.stderr ?? undefined) : undefined;
  pipe?.on("data", (chunk: Buffer) => {
    if (passing) process.stderr.write(chunk);
    else text += chunk.toString("utf8");
  });
  pipe?.on("error", () => {});
  return {
    text: () => text,
    release() {
      if (passing) return;
      passing = true;
      if (text) process.stderr.write(text);
    },
  };
}

/** Reads bwrap's JSON status stream: the box's pid 1 when it starts, its exit code at the end. */
function watchStatus(stream: Readable) {
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

/** True once a line arrives, false if the pipe closes first. */
function readyLine(pipe: Readable): Promise<boolean> {
  return new Promise((resolve) => {
    pipe.on("error", () => {});
    pipe.once("data", () => resolve(true));
    pipe.once("close", () => resolve(false));
  });
}

/** Resolves true once `file` exists, false if `until` settles first. Polls: no inotify needed. */
function waitForFile(file: string, until: Promise<unknown>): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    void until.then(() => {
      done = true;
      resolve(existsSync(file));
    });
    const poll = () => {
      if (done) return;
      if (existsSync(file)) {
        done = true;
        resolve(true);
      } else setTimeout(poll, 2);
    };
    poll();
  });
}

function stopper(stop: Stopper, boxPid: () => number | undefined): (sig: NodeJS.Signals) => void {
  if (stop.kind === "box-children") {
    return (sig) => {
      const init = boxPid();
      if (init === undefined) return;
      for (const pid of commandPids(init, stop.except)) {
        try {
          process.kill(pid, sig);
        } catch {}
      }
    };
  }
  const inFlight = new Set<NodeJS.Signals>();
  const pending = new Set<NodeJS.Signals>();
  const send = (sig: NodeJS.Signals) => {
    if (inFlight.has(sig)) {
      pending.add(sig);
      return;
    }
    inFlight.add(sig);
    const name = stop.bare ? sig.replace(/^SIG/, "") : sig;
    const [cmd, ...args] = stop.argv.map((a) => (a === SIGNAL ? name : a));
    const k = spawn(cmd!, args, { stdio: "ignore", env: stop.env });
    const done = () => {
      inFlight.delete(sig);
      if (pending.delete(sig)) send(sig);
    };
    k.once("close", done);
    k.once("error", done);
  };
  return send;
}

/** The command's pid(s): the children of the box's pid 1, except the named helpers (the bridge). */
function commandPids(boxInit: number, except: string[]): number[] {
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
          .filter((pid) => !except.includes(comm(pid)))
      : [];
    return pids.length > 0 ? pids : [boxInit];
  } catch {
    return [];
  }
}
