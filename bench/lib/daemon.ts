/**
 * `fourwall run -- true` through the box daemon (native/fourwall-run → src/box/daemon-run.ts), as
 * bin/fourwall runs it when a daemon is up: a subject plus the daemon it needs, started before the
 * rounds (warm) and stopped after. The client is given /bin/false in place of the Node CLI, so a
 * run the daemon did not take fails instead of being timed as the Node path.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { buildKey } from "../../src/core/build-key.js";
import { USER_ID } from "./fourwall.js";
import type { BenchContext } from "./group.js";
import type { Subject } from "./measure.js";

export interface DaemonSubject {
  subject: Subject;
  /** Starts the daemon and waits for its socket; false when it did not come up. */
  start(): Promise<boolean>;
  stop(): void;
}

export function daemonRun(ctx: BenchContext, as: "root" | "user"): DaemonSubject {
  const client = path.join(ctx.repoRoot, "native", "build", "fourwall-run");
  const cli = path.join(ctx.repoRoot, "bin", "fourwall.js");
  const user = as === "user" && ctx.isRoot;
  const owner = { uid: USER_ID, gid: USER_ID };
  const home = user ? ctx.tempDir(owner) : undefined;
  const workdir = user ? ctx.tempDir(owner) : ctx.tempDir();
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (home) Object.assign(env, { HOME: home, USER: "nobody", LOGNAME: "nobody" });
  delete env.XDG_RUNTIME_DIR;
  const boxes =
    as === "root"
      ? "/run/fourwall/boxes"
      : path.join(env.HOME ?? "/nonexistent", ".local", "state", "fourwall", "boxes");
  // the daemon of this build (its sockets carry the build's key: src/core/build-key.ts)
  const socket = path.join(boxes, `run-${buildKey(ctx.repoRoot)}.sock`);
  const asUser = user
    ? ["setpriv", "--reuid", String(USER_ID), "--regid", String(USER_ID), "--clear-groups"]
    : [];
  let daemon: ChildProcess | undefined;
  const skip = !existsSync(client)
    ? `${client} is not built (npm run setup)`
    : as === "root" && !ctx.isRoot
      ? "the bench is not running as root"
      : undefined;
  return {
    subject: {
      id: `daemon-${as}`,
      label: `fourwall run -- true, warm box daemon (as ${as === "root" ? "root" : `uid ${user ? USER_ID : process.getuid?.()}`})`,
      command: [...asUser, client, boxes, "/bin/false", "daemon-did-not-take-it", "--", "true"],
      shown: [...asUser, "bin/fourwall run -- true (native client → box daemon)"].join(" "),
      cwd: workdir,
      env,
      ...(skip ? { skip } : {}),
    },
    async start() {
      if (skip) return false;
      const argv = [...asUser, process.execPath, cli, "box-daemon", "--for-run"];
      daemon = spawn(argv[0]!, argv.slice(1), { env, cwd: "/", detached: true, stdio: "ignore" });
      for (let i = 0; i < 200 && !existsSync(socket); i++) await sleep(50);
      return existsSync(socket);
    },
    stop() {
      if (daemon?.pid && daemon.exitCode === null) daemon.kill("SIGTERM");
    },
  };
}
