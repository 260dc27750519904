import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import path from "node:path";
import { AuditLog } from "../audit/log.js";
import { buildKey } from "../core/build-key.js";
import type { BoxPlan } from "../plan/plan.js";
import { runtimeFor } from "../runtimes/index.js";
import type { RunningBox } from "../runtimes/runtime.js";
import type { KeptChangeSet } from "../walls/gate/index.js";
import { serveRun } from "./daemon-run.js";
import { checkBoxName } from "./name.js";
import { boxDir, boxesRoot, forgetBox, recordBox } from "./persistent.js";
import { superviseBox } from "./supervisor.js";

/**
 * The box daemon: one process per user that supervises every persistent box of that user, with
 * every box's proxy in it (50 idle boxes cost one Node process, not 50). It listens on a unix
 * socket private to the user (0600 in a 0700 directory); it leaves when its last box is down.
 * Boxes die with it (--die-with-parent), and the reapers clean up after them.
 */

/** This build's key (core/build-key.ts), as this process started: its daemon's sockets carry it. */
let ownKey: string | undefined;
const key = () => (ownKey ??= buildKey());
export const daemonSocket = () => path.join(boxesRoot(), `daemon-${key()}.sock`);
/** native/fourwall-run.c's socket: it computes the same name from the same build files. */
export const runSocket = () => path.join(boxesRoot(), `run-${key()}.sock`);
const SOCKET_NAME = /^(daemon|run)(-[0-9a-f]{16})?\.sock$/;

/** The `up`/`down` sockets of other builds' daemons in this state dir (a box they keep up is theirs to bring down). */
export const otherDaemonSockets = (): string[] =>
  readdirSync(boxesRoot())
    .filter((n) => n.startsWith("daemon-") && SOCKET_NAME.test(n))
    .map((n) => path.join(boxesRoot(), n))
    .filter((p) => p !== daemonSocket());

/** Removes the sockets of daemons that are gone (killed, any build): nothing of them stays. */
async function sweepDeadSockets(): Promise<void> {
  for (const name of readdirSync(boxesRoot()).filter((n) => SOCKET_NAME.test(n))) {
    const file = path.join(boxesRoot(), name);
    if (file === daemonSocket() || file === runSocket()) continue;
    const refused = await new Promise<boolean>((resolve) => {
      const probe = createConnection(file);
      probe.once("connect", () => {
        probe.destroy();
        resolve(false);
      });
      probe.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
    });
    if (refused) rmSync(file, { force: true });
  }
}

/** The socket files this daemon listens on, with their inodes: it removes only those, never a successor's. */
const ownSockets = new Map<string, number>();
function removeOwnSockets(): void {
  for (const [file, ino] of ownSockets) {
    try {
      if (lstatSync(file).ino === ino) unlinkSync(file);
    } catch {}
  }
  ownSockets.clear();
}

export type DaemonRequest =
  | { op: "up"; name: string; plan: BoxPlan; audit?: string; approver?: string }
  | { op: "down"; name: string }
  | { op: "ping" };
export type DaemonReply =
  | { ok: true; kept?: KeptChangeSet }
  | { ok: false; error: string; wall?: string; fix?: string };

/** How long an empty daemon waits for another `up` before it leaves. */
const IDLE_EXIT_MS = 3000;
/** How long a daemon that serves `run` waits for the next one (an agent's commands come in bursts). */
const RUN_IDLE_EXIT_MS = 120_000;

export async function runDaemon(options: { forRun?: boolean } = {}): Promise<void> {
  mkdirSync(boxesRoot(), { recursive: true, mode: 0o700 });
  chmodSync(boxesRoot(), 0o700);
  const boxes = new Map<string, { box?: RunningBox; done: Promise<number>; kept?: KeptChangeSet }>();
  let runs = 0;
  let servesRuns = options.forRun === true;
  let outdated = false;
  let idleTimer: NodeJS.Timeout | undefined;
  const leave = () => {
    runServer.close();
    server.close(() => process.exit(0));
  };
  const armIdleExit = () => {
    clearTimeout(idleTimer);
    if (boxes.size > 0 || runs > 0) return;
    idleTimer = setTimeout(leave, outdated ? 0 : servesRuns ? RUN_IDLE_EXIT_MS : IDLE_EXIT_MS);
  };
  // A new build of fourwall (its files replaced or rebuilt): take no more runs (its clients go to
  // a daemon of their own build); still answer `down` for the boxes it keeps; leave once they end.
  const becomeOutdated = () => {
    if (outdated) return;
    outdated = true;
    runServer.close();
    armIdleExit();
  };
  const runServer = createServer((socket: Socket) => {
    runs++;
    clearTimeout(idleTimer);
    void serveRun(socket, {
      // `fourwall up` through native/fourwall-run: planned by the daemon (daemon-up.ts)
      up: (name, plan, approver) => up({ op: "up", name, plan, ...(approver ? { approver } : {}) }),
      // a run (not an `up`): wait longer for the next one
      ran() {
        servesRuns = true;
      },
      outdated: becomeOutdated,
    }).finally(() => {
      runs--;
      armIdleExit();
    });
  });

  async function up(req: Extract<DaemonRequest, { op: "up" }>): Promise<DaemonReply> {
    if (boxes.has(req.name)) return { ok: false, error: `a box named ${req.name} is already up` };
    const plan = req.plan;
    const audit = new AuditLog(req.audit);
    // The box's state dir (0700, ours) holds the socket where `fourwall exec` hands over its pause.
    mkdirSync(boxDir(req.name), { recursive: true, mode: 0o700 });
    let started: (error?: Error) => void = () => {};
    const ready = new Promise<Error | undefined>((resolve) => (started = resolve));
    const entry: { box?: RunningBox; done: Promise<number>; kept?: KeptChangeSet } = {
      done: superviseBox(plan, runtimeFor(plan.runtime), {
        audit,
        quiet: true,
        forwardSignals: false,
        // The gate's copy-on-write layer holds this box's changes too: its commands see their own
        // writes at once; the host gets new files, and approved changes to old ones, at `down`.
        // No terminal here: the approver of `up --approver`, or nobody (= no).
        gate: {
          terminal: false,
          execPause: path.join(boxDir(req.name), "pause.sock"),
          ...(req.approver ? { approver: req.approver } : {}),
        },
        onStarted(box, session, running) {
          entry.box = box;
          recordBox(req.name, running, box, session); // the plan as started: the box's own uid
          started();
        },
        onExit: () => forgetBox(req.name),
        // what `down` could not apply: named to the `down` that asked (which may ask about it)
        onKept: (kept) => {
          entry.kept = kept;
        },
      })
        .catch((error: Error) => {
          started(error);
          forgetBox(req.name);
          return 125;
        })
        .finally(() => {
          audit.close();
          boxes.delete(req.name);
          armIdleExit();
        }),
    };
    boxes.set(req.name, entry);
    clearTimeout(idleTimer);
    const error = await ready;
    if (!error) return { ok: true };
    const wall = error as Error & { wall?: string; fix?: string };
    return { ok: false, error: error.message, wall: wall.wall, fix: wall.fix };
  }

  async function down(name: string): Promise<DaemonReply> {
    const entry = boxes.get(name);
    if (!entry) return { ok: false, error: `no box named ${name} is up` };
    entry.box?.signal("SIGTERM");
    const kill = setTimeout(() => entry.box?.signal("SIGKILL"), 3000);
    await entry.done;
    clearTimeout(kill);
    return entry.kept ? { ok: true, kept: entry.kept } : { ok: true };
  }

  const server = createServer((socket: Socket) => {
    let text = "";
    socket.on("error", () => {});
    socket.on("data", async (chunk) => {
      text += chunk;
      const newline = text.indexOf("\n");
      if (newline < 0) return;
      let reply: DaemonReply;
      try {
        const req = JSON.parse(text.slice(0, newline)) as DaemonRequest;
        if (req.op !== "ping") checkBoxName(req.name); // a request names a box, never a path
        // JSON turned the BPF program into { type: "Buffer", data: [...] }: make it bytes again.
        if (req.op === "up")
          req.plan = {
            ...req.plan,
            seccomp: Buffer.from((req.plan.seccomp as unknown as { data: number[] }).data),
          };
        reply = req.op === "up" ? await up(req) : req.op === "down" ? await down(req.name) : { ok: true };
      } catch (error) {
        reply = { ok: false, error: `bad request: ${(error as Error).message}` };
      }
      socket.end(`${JSON.stringify(reply)}\n`);
    });
  });
  // Several `fourwall up` at once may each start a daemon: the first to listen wins, the others
  // leave. A socket left by a daemon that was killed answers nobody: remove it and try again.
  for (;;) {
    const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      server.once("error", resolve);
      server.listen(daemonSocket(), () => resolve(undefined));
    });
    if (!error) break;
    if (error.code !== "EADDRINUSE") throw error;
    if (await askDaemon({ op: "ping" }, 2000)) process.exit(0);
    rmSync(daemonSocket(), { force: true });
  }
  chmodSync(daemonSocket(), 0o600);
  ownSockets.set(daemonSocket(), lstatSync(daemonSocket()).ino);
  // This daemon owns daemon-KEY.sock, so a run-KEY.sock here is a killed daemon's: replace it.
  rmSync(runSocket(), { force: true });
  await new Promise<void>((resolve, reject) => {
    runServer.once("error", reject);
    runServer.listen(runSocket(), () => resolve());
  });
  chmodSync(runSocket(), 0o600);
  ownSockets.set(runSocket(), lstatSync(runSocket()).ino);
  // process.exit() skips the servers' close, which is what unlinks a socket file: do it ourselves,
  // first thing on a signal (no new client finds a daemon on its way out) and on any exit.
  process.on("exit", removeOwnSockets);
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.on(sig, async () => {
      runServer.close();
      server.close();
      removeOwnSockets();
      await Promise.all([...boxes.keys()].map(down));
      process.exit(0);
    });
  }
  // A box whose record is gone (its state dir removed) can no longer be reached by exec or down:
  // bring it down rather than keep it running unseen.
  setInterval(() => {
    for (const name of boxes.keys())
      if (!existsSync(path.join(boxDir(name), "info.json")) && boxes.get(name)?.box) void down(name);
    if (buildKey() !== key()) becomeOutdated();
  }, 5000).unref();
  void sweepDeadSockets().catch(() => {});
  armIdleExit();
}

/** Sends one request to the daemon; undefined when no daemon answers. */
export function askDaemon(
  req: DaemonRequest,
  timeoutMs = 30_000,
  socketPath = daemonSocket(),
): Promise<DaemonReply | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection(socketPath);
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, error: "the box daemon did not answer in time" });
    }, timeoutMs);
    socket.on("connect", () => socket.write(`${JSON.stringify(req)}\n`));
    socket.on("data", (d) => (text += d));
    socket.on("error", () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text) as DaemonReply);
      } catch {
        resolve(undefined);
      }
    });
  });
}
