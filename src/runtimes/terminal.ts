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
    "--",
  ];
}
