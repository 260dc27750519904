import type { BoxSession } from "./runtime.js";

/**
 * The one hook of the box's terminal into the runtimes: the argv prefix (fourwall-pty) that every
 * runtime's launcher starts under — a session of its own and, on a terminal, a pty of its own.
 * Empty only when the supervisor set no terminal (tests of a runtime alone).
 */
export function terminalPrefix(session: BoxSession): string[] {
  const t = session.terminal;
  if (!t) return [];
  return [
    t.helper,
    ...(t.control && !t.detach ? ["--control", t.control] : []),
    ...(t.detach ? ["--detach"] : []),
    ...(t.callerFds === undefined ? [] : ["--caller-fds", `${CALLER_FD}:${CALLER_STDERR_FD}`]),
    "--",
  ];
}

/**
 * Where the launcher finds fourwall-run's connection (a `pass` fd) when the box daemon runs the box,
 * and where fourwall-pty puts the caller's stderr: the fd on which the runtime expects fourwall's
 * own stderr (the namespaces runtime's STDERR_FD; test/unit/runtimes/terminal.test.ts holds them
 * equal). Only the namespaces runtime is run this way.
 */
export const CALLER_FD = 9;
export const CALLER_STDERR_FD = 7;
