import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

// The hand-off between the supervisor (box/) and a runtime: the host-side resources of one run, and
// the run dir's on-kill script through which a runtime asks the reaper to undo what it made.

/** Host-side resources of one box run, owned by the supervisor and gone at exit. */
export interface BoxSession {
  /** A private directory for this run (0700; root mode: 0710, group = the box's gid): sockets, the empty file used for covers. */
  runDir: string;
  /** An empty read-only file, bound over secret files. */
  emptyFile: string;
  /** The directory holding the proxy's unix socket, bound into the box at BOX_NET_DIR. */
  netDir: string;
  /** The box's cgroup directories (root mode, where the host has controllers), joined at launch. */
  cgroupDirs: string[];
  /**
   * Approval gate: the copy-on-write layer over the workdir (upper and work on the host, under a
   * directory only fourwall can walk), fourwall-overlay's arguments before `--`, and what
   * fourwall-drop adds in root mode (it opens the layer as root for the unprivileged helper).
   */
  overlay?: { lower: string; upper: string; work: string; helperArgs: string[]; dropArgs: string[] };
  /**
   * Placeholders outside the workdir: write-through overlays over writable directories
   * (box/through.ts). `carrier` says who mounts them: fourwall-overlay ("overlay", user mode: `args`
   * go to it, and it hides `hide`, the layers dir, in the box), fourwall-drop ("drop", root mode:
   * `args` go to it), or the docker runtime on the host ("host": each of `mounts` under the run dir).
   */
  through?: {
    carrier: "overlay" | "drop" | "host";
    args: string[];
    hide: string;
    mounts: { dir: string; sub: string }[];
  };
  /**
   * Approval gate, namespaces runtime: the pause at the action. The helper (host path) is bound into
   * the box and installs the notify filter before the command (walls/gate/pause-supervisor.ts);
   * `execSocket` (persistent boxes): where native/fourwall-enter hands each exec's listener.
   */
  pause?: { helper: string; execSocket?: string };
  /**
   * Namespaces runtime: the native egress bridge (host path; native/fourwall-bridge.c), bound
   * read-only into the box as its first process. Without it the box starts through sh + socat.
   */
  bridge?: string;
  /** Approval gate: generated agent settings, bound read-only over `target` in the box. */
  gateFiles?: { source: string; target: string }[];
  /**
   * The box's own session and terminal (fourwall-pty, set by the supervisor): every runtime's
   * launcher starts under it, so no box process ever holds the caller's terminal.
   */
  terminal?: BoxTerminal;
  /** Step timings of the launch (FOURWALL_TRACE). */
  trace?: { step(label: string): void };
}

/** How the box's launcher is started by fourwall-pty. */
export interface BoxTerminal {
  helper: string;
  /** fourwall's socket for pausing box output while it asks on the terminal. */
  control?: string;
  /** No relay even on a terminal (the microVM: fourwall relays the guest's stdio itself). */
  detach?: boolean;
  /**
   * The box daemon's `run` (src/box/daemon-run.ts): the supervisor's fd of fourwall-run's
   * connection, on which fourwall-pty receives the caller's stdin, stdout and stderr.
   */
  callerFds?: number;
}

/** Where the supervisor writes a plan's generated file (a `file` mount) for this run. */
export const generatedFile = (session: BoxSession, name: string) => path.join(session.runDir, "files", name);

export interface BoxExit {
  /** The command's exit status as a shell reports it (128+N when killed by signal N). */
  code: number;
}

/** A shell script a runtime may leave in the run dir: the reaper runs it if fourwall was killed. */
export const ON_KILL_FILE = "on-kill";

/**
 * Adds a line to the run dir's on-kill script, which the reaper runs if fourwall is killed.
 * "first": what must be undone before anything else runs (a runtime's container, its mounts).
 */
export function onKill(runDir: string, line: string, order: "first" | "last" = "last"): void {
  const file = path.join(runDir, ON_KILL_FILE);
  const before = order === "first" && existsSync(file) ? readFileSync(file, "utf8") : "";
  if (order === "first") writeFileSync(file, `${line}\n${before}`, { mode: 0o600 });
  else appendFileSync(file, `${line}\n`, { mode: 0o600 });
}
