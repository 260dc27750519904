import { existsSync, mkdirSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { WallError } from "../core/errors.js";
import { ptyHelperPath } from "../core/paths.js";
import type { BoxTerminal } from "../plan/session.js";

/** How long fourwall waits for fourwall-pty to stop drawing before it gives up asking. */
const HOLD_MS = 2000;

/**
 * fourwall's end of the box's terminal (native/fourwall-pty.c): the helper's argv for the
 * runtimes, and `hold`/`release` around a question on the terminal, so that the box never draws
 * while fourwall asks. Held output stays in the box's pty (the box blocks when it is full) and is
 * released after the answer.
 */
export interface TerminalControl {
  spec: BoxTerminal;
  /** Resolves once the relay has stopped drawing box output and reading keys; rejects if it cannot. */
  hold(): Promise<void>;
  release(): void;
  close(): void;
}

/** True when fourwall-pty will relay a pty (the same test it makes: a terminal on 0, 1 or 2). */
const onTerminal = () => [process.stdin, process.stdout, process.stderr].some((s) => s.isTTY === true);

/** The helper without a control socket (nothing on this process's terminal to hold). */
export async function detachedTerminal(): Promise<TerminalControl> {
  const helper = ptyHelperPath();
  if (!existsSync(helper))
    throw new WallError(
      "isolation",
      `the box's terminal helper ${helper} is not built`,
      "npm run setup (compiles native/fourwall-pty.c)",
    );
  return { spec: { helper }, hold: async () => {}, release() {}, close() {} };
}

/**
 * Listens on `dir/control.sock` (dir made 0700: only fourwall's uid reaches it; the box has no path
 * to the run dir) for the one connection fourwall-pty makes before it starts the box.
 */
export async function openTerminalControl(runDir: string): Promise<TerminalControl> {
  const helper = ptyHelperPath();
  if (!existsSync(helper))
    throw new WallError(
      "isolation",
      `the box's terminal helper ${helper} is not built`,
      "npm run setup (compiles native/fourwall-pty.c)",
    );
  if (!onTerminal()) return { spec: { helper }, hold: async () => {}, release() {}, close() {} };
  const dir = path.join(runDir, "tty");
  mkdirSync(dir, { mode: 0o700 });
  const control = path.join(dir, "control.sock");
  let socket: net.Socket | undefined;
  const server = net.createServer((s) => {
    if (socket) return s.destroy(); // one helper per box
    socket = s;
    s.on("error", () => {});
    server.close(); // nobody else
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(control, () => resolve());
  });
  let held = 0;
  let holding: Promise<void> = Promise.resolve();
  const ask = (byte: "p" | "r", ack: string): Promise<void> => {
    const s = socket;
    if (!s || s.destroyed) return Promise.resolve(); // no relay (it has ended): nothing is drawn
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error("the box's terminal relay did not answer")), HOLD_MS);
      const onData = (data: Buffer) => {
        if (data.includes(ack)) done();
      };
      const onClose = () => done();
      const done = (error?: Error) => {
        clearTimeout(timer);
        s.off("data", onData);
        s.off("close", onClose);
        error ? reject(error) : resolve();
      };
      s.on("data", onData);
      s.once("close", onClose);
      s.write(byte);
    });
  };
  return {
    spec: { helper, control },
    async hold() {
      held++;
      if (held === 1) holding = ask("p", "P");
      await holding;
    },
    release() {
      held = Math.max(0, held - 1);
      if (held === 0) void ask("r", "R").catch(() => {});
    },
    close() {
      server.close();
      socket?.destroy();
    },
  };
}
