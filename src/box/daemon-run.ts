import { statSync } from "node:fs";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { AuditLog } from "../audit/log.js";
import { WallError } from "../core/errors.js";
import { startTrace } from "../core/trace.js";
import { planFromOptions } from "../plan/from-options.js";
import type { BoxPlan } from "../plan/plan.js";
import { PolicyError } from "../policy/errors.js";
import { runtimeFor } from "../runtimes/index.js";
import type { RunningBox } from "../runtimes/runtime.js";
import { serveUp, type UpReply } from "./daemon-up.js";
import {
  daemonRunChoice,
  ownEnvDiffers,
  parseRunRequest,
  type ReplyKind,
  RUN_PROTOCOL,
  replyFrame,
  signalFrames,
} from "./run-request.js";
import { superviseBox } from "./supervisor.js";

/**
 * `fourwall run` in the box daemon (reached by native/fourwall-run.c, no Node start-up): the
 * caller's command, directory and environment are planned here exactly as the Node CLI plans them
 * (a fresh plan every run: the workdir walk sees a `.env` made a moment ago), and the box is
 * supervised here: run dir, reaper, proxy and gate up before the command starts. The caller's
 * stdio reach the box without passing through Node: fourwall-pty receives them on the caller's
 * connection (SCM_RIGHTS), which the daemon stops reading for that moment.
 */

/** This build of the daemon: a rebuilt fourwall is served by a new daemon, never by this one. */
const BUILD = (() => {
  const file = fileURLToPath(import.meta.url);
  const stamp = () => {
    try {
      const s = statSync(file);
      return `${s.ino}:${s.mtimeMs}`;
    } catch {
      return "gone";
    }
  };
  const started = stamp();
  return { changed: () => stamp() !== started };
})();

const MAX_REQUEST = 16 << 20;

const SIGNALS: Record<number, NodeJS.Signals> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  10: "SIGUSR1",
  12: "SIGUSR2",
  15: "SIGTERM",
  28: "SIGWINCH",
};

/** The message and exit status the Node CLI gives a box that could not be built (cli/run.ts). */
function refusal(error: unknown): string | undefined {
  if (error instanceof PolicyError)
    return `${error.message}\nfourwall: the policy is not valid: nothing was run\n`;
  if (error instanceof WallError) return `${error.describe()}\n`;
  return undefined;
}

/**
 * Serves one fourwall-run connection to its end. `outdated`: this daemon should leave (a new
 * build). `up`: starts a persistent box (the daemon's own `up`).
 */
export async function serveRun(
  socket: Socket,
  hooks: {
    outdated(): void;
    ran(): void;
    up(name: string, plan: BoxPlan, approver?: string): Promise<UpReply>;
  },
): Promise<void> {
  socket.on("error", () => {});
  const trace = startTrace("run");
  const body = await readRequest(socket);
  trace.step("request read");
  if (!body) return void socket.destroy();
  const send = (kind: ReplyKind, payload?: string) => {
    if (!socket.destroyed) socket.write(replyFrame(kind, payload));
  };
  const fallBack = (why: string) => {
    trace.step(`fallback: ${why}`);
    trace.end();
    send("F");
    socket.end();
  };
  let request: ReturnType<typeof parseRunRequest>;
  try {
    request = parseRunRequest(body);
  } catch {
    return fallBack("a malformed request");
  }
  if (BUILD.changed()) {
    hooks.outdated();
    return fallBack("a new build");
  }
  if (request.version !== RUN_PROTOCOL) return fallBack("another protocol");
  if (ownEnvDiffers(process.env, request.env) !== undefined)
    return fallBack("fourwall's own environment differs");
  if (request.op === "up") {
    let outcome: Awaited<ReturnType<typeof serveUp>>;
    try {
      outcome = await serveUp(request, hooks.up, refusal);
    } catch {
      return fallBack("up could not be served"); // not a refusal: let the Node CLI meet it
    }
    if ("fallback" in outcome) return fallBack("up not taken here");
    if (outcome.stdout) send("O", outcome.stdout);
    if (outcome.stderr) send("E", outcome.stderr);
    send("X", String(outcome.code));
    return void socket.end();
  }
  hooks.ran();
  const choice = daemonRunChoice(request.args);
  if ("fallback" in choice) return fallBack("a flag not taken here");

  let plan: Awaited<ReturnType<typeof planFromOptions>>["plan"];
  try {
    ({ plan } = await planFromOptions(choice.command, choice.options, {
      cwd: request.cwd,
      env: request.env,
    }));
  } catch (error) {
    const said = refusal(error);
    if (said === undefined) return fallBack(`the plan failed: ${(error as Error).message}`); // not a refusal: let the Node CLI meet it
    send("E", said);
    send("X", "125");
    return void socket.end();
  }
  if (plan.runtime !== "namespaces") return fallBack("another runtime");
  trace.step("planned");

  // From here the caller's fds are on their way: fourwall-pty reads them off this socket, so Node
  // must not (a plain read would drop the descriptors). Reading resumes once the box runs.
  const handle = (
    socket as unknown as {
      _handle?: { fd?: number; reading?: boolean; readStop(): number; readStart(): number };
    }
  )._handle;
  if (!handle || typeof handle.fd !== "number" || handle.fd < 0) return fallBack("no socket handle");
  handle.reading = false;
  handle.readStop();
  send("S");

  let box: RunningBox | undefined;
  let gone = false;
  const deliver = (signals: number[]) => {
    for (const n of signals) {
      const sig = SIGNALS[n];
      if (!sig || !box) continue;
      if (sig !== "SIGWINCH") box.signal(sig);
      else if (box.launcherPid) {
        try {
          process.kill(box.launcherPid, sig); // fourwall-pty reads the new size off the caller's terminal
        } catch {}
      }
    }
  };
  let pending: Buffer = Buffer.alloc(0);
  let replied = false;
  socket.on("close", () => {
    gone = true;
    // the caller was killed: so is its command, as on the Node path (not once the box has ended)
    if (!replied) box?.signal("SIGKILL");
  });
  const audit = new AuditLog(undefined);
  let code: number;
  try {
    code = await superviseBox(plan, runtimeFor(plan.runtime), {
      audit,
      forwardSignals: false,
      gate: { terminal: false, ...(choice.options.approver ? { approver: choice.options.approver } : {}) },
      say: (text) => send("E", text),
      callerFds: handle.fd,
      trace,
      // the exit status goes back as soon as it is final: the private clean-up follows unseen
      onSettled(settled) {
        send("X", String(settled));
        socket.end();
        replied = true;
      },
      onStarted(started) {
        box = started;
        if (gone) return started.signal("SIGKILL");
        socket.on("data", (chunk: Buffer) => {
          const parsed = signalFrames(Buffer.concat([pending, chunk]));
          if (parsed.bad) return void socket.destroy();
          pending = parsed.rest;
          deliver(parsed.signals);
        });
        // the stream still counts its last read as pending: restart the handle itself
        handle.reading = true;
        handle.readStart();
        socket.resume();
      },
    });
  } catch (error) {
    const said = refusal(error);
    send("E", said ?? `fourwall: ${(error as Error).message}\n`);
    code = 125;
  } finally {
    audit.close();
  }
  if (!replied) {
    send("X", String(code));
    socket.end();
  }
  trace.step("clean-up done");
  trace.end();
}

/** The u32-length-prefixed request; undefined when the client leaves or sends too much. */
function readRequest(socket: Socket): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const done = (value: Buffer | undefined) => {
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.pause();
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < 4) return;
      const length = got.readUInt32LE(0);
      if (length > MAX_REQUEST) return done(undefined);
      if (got.length > 4 + length) return done(undefined); // nothing may follow before "S"
      if (got.length === 4 + length) done(got.subarray(4));
    };
    const onClose = () => done(undefined);
    socket.on("data", onData);
    socket.on("close", onClose);
  });
}
