import type { BoxPlan } from "../plan/plan.js";
import type { BoxExit, BoxSession } from "../plan/session.js";

export type { BoxExit, BoxSession } from "../plan/session.js";

import type { RuntimeName } from "../walls/isolation/index.js";

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

/** A box whose command is running. */
export interface RunningBox {
  /** The host pid of the box's first process, where a runtime has one (`fourwall exec` joins its namespaces). */
  pid?: number;
  /** Resolves when the command has ended. */
  exit: Promise<BoxExit>;
  /** Delivers a signal to the command inside the box. */
  signal(signal: NodeJS.Signals): void;
  /** The launcher process on the host (fourwall-pty first): the box daemon tells it of SIGWINCH. */
  launcherPid?: number;
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

/**
 * The test suite's one hook into a runtime: its deliberately broken boxes rewrite the box's argv
 * (bwrap's, the guest's bwrap's in the microVM, `docker run`'s, runsc's) to show that each test
 * catches the hole. The CLI never sets it.
 */
export interface RuntimeTestOptions {
  transformArgs?: (args: string[]) => string[];
}
