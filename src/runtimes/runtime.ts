import type { BoxPlan } from "../box/plan.js";
import type { RuntimeName } from "../walls/isolation/schema.js";

/** What `fourwall doctor` says of a runtime on this host. */
export interface RuntimeCheck {
  runtime: RuntimeName;
  available: boolean;
  detail: string;
  /** The exact fix when not available. */
  fix?: string;
}

/** A runtime that cannot run here: what is missing and the exact fix. */
export const unavailable = (runtime: RuntimeName, detail: string, fix: string): RuntimeCheck => ({
  runtime,
  available: false,
  detail,
  fix,
});

/** Host-side resources of one box run, owned by the supervisor and gone at exit. */
export interface BoxSession {
  /** A private directory for this run (mode 0711): sockets, the empty file used for covers. */
  runDir: string;
  /** An empty read-only file, bound over secret files. */
  emptyFile: string;
  /** The directory holding the proxy's unix socket, bound into the box at BOX_NET_DIR. */
  netDir: string;
  /** The box's cgroup directories (root mode, where the host has controllers), joined at launch. */
  cgroupDirs: string[];
  /** Approval gate: the copy-on-write layer over the workdir (upper and work on the host). */
  overlay?: { lower: string; upper: string; work: string };
  /** Approval gate: generated agent settings, bound read-only over `target` in the box. */
  gateFiles?: { source: string; target: string }[];
}

export interface BoxExit {
  /** The command's exit status as a shell reports it (128+N when killed by signal N). */
  code: number;
}

/** A box whose command is running. */
export interface RunningBox {
  /** The host pid of the box's first process, where a runtime has one (`fourwall exec` joins its namespaces). */
  pid?: number;
  /** Resolves when the command has ended. */
  exit: Promise<BoxExit>;
  /** Delivers a signal to the command inside the box. */
  signal(signal: NodeJS.Signals): void;
}

/**
 * One isolation runtime. `launch` turns a plan into a running box and resolves only once the
 * command runs; if any wall cannot be built it rejects with a WallError and nothing runs.
 */
export interface Runtime {
  readonly name: RuntimeName;
  check(): RuntimeCheck;
  launch(plan: BoxPlan, session: BoxSession): Promise<RunningBox>;
}
