import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, writeSync } from "node:fs";
import path from "node:path";
import pc from "picocolors";
import { EXIT_BOX_FAILED, WallError } from "../box/errors.js";
import { BOX_NAME, boxDir, forgetBox, listBoxes, readBox, recordBox } from "../box/persistent.js";
import { superviseBox } from "../box/supervisor.js";
import { enterHelperPath } from "../paths.js";
import { runtimeFor } from "../runtimes/index.js";
import { failClosed, openAudit, planFromOptions, type RunOptions } from "./run.js";

/** What keeps a persistent box's first process alive: nothing but waiting. */
const IDLE = ["sleep", "infinity"];

function checkName(name: string): void {
  if (!BOX_NAME.test(name)) throw new WallError("policy", `bad box name ${JSON.stringify(name)}`, "use letters, digits, . _ - (up to 63)");
}

/**
 * `fourwall up --name N`: starts a supervisor in the background (its own session, so it outlives
 * this command) and returns once the box is ready, or with 125 and the supervisor's message.
 */
export async function upCommand(options: RunOptions & { name: string }): Promise<number> {
  try {
    checkName(options.name);
    if (readBox(options.name)) throw new WallError("policy", `a box named ${options.name} is already up`, `fourwall down ${options.name}`);
    forgetBox(options.name);
    const args = process.argv.slice(2).map((a) => (a === "up" ? "box-serve" : a));
    const log = openSync("/dev/null", "w");
    const child = spawn(process.execPath, [process.argv[1]!, ...args], { detached: true, stdio: ["ignore", log, "pipe", "pipe"] });
    let errors = "";
    child.stderr!.on("data", (d) => (errors += d));
    const ready = await new Promise<boolean>((resolve) => {
      child.stdio[3]!.on("data", () => resolve(true));
      child.once("exit", () => resolve(false));
    });
    child.unref();
    child.stderr!.destroy();
    (child.stdio[3] as NodeJS.ReadableStream & { destroy(): void }).destroy();
    if (!ready) {
      process.stderr.write(errors);
      return EXIT_BOX_FAILED;
    }
    process.stdout.write(`${pc.green("up")} ${options.name}\n`);
    return 0;
  } catch (error) {
    return failClosed(error);
  }
}

/** The background half of `up`: runs the box until `down` (SIGTERM) or until it dies. */
export async function serveCommand(options: RunOptions & { name: string }): Promise<number> {
  try {
    const { plan } = await planFromOptions(IDLE, options);
    const audit = openAudit(options.audit);
    const readyPipe = existsSync("/proc/self/fd/3") ? 3 : undefined;
    const code = await superviseBox(plan, runtimeFor(plan.runtime), {
      audit,
      quiet: true,
      onStarted(box, session) {
        recordBox(options.name, plan, box, session);
        if (readyPipe !== undefined) {
          writeSync(readyPipe, "ready\n");
          closeSync(readyPipe);
        }
      },
      onExit: () => forgetBox(options.name),
    });
    audit.close();
    return code;
  } catch (error) {
    return failClosed(error);
  }
}

/** `fourwall exec N -- cmd` (the slow path; bin/fourwall calls the native helper directly). */
export async function execCommand(name: string, command: string[]): Promise<number> {
  if (!readBox(name)) return failClosed(new WallError("isolation", `no box named ${name} is up`, `fourwall up --name ${name}`));
  const child = spawn(enterHelperPath(), [boxDir(name), "--", ...command], { stdio: "inherit" });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => child.kill(sig));
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? 128 + (signal === "SIGKILL" ? 9 : 15))));
}

/** `fourwall down N`: stops the box; waits until it is gone (nothing left behind). */
export async function downCommand(name: string): Promise<number> {
  const info = readBox(name);
  if (!info) return failClosed(new WallError("isolation", `no box named ${name} is up`, "fourwall ls"));
  process.kill(info.supervisorPid, "SIGTERM");
  for (let i = 0; i < 100 && existsSync(path.join(boxDir(name), "info.json")); i++) await new Promise((r) => setTimeout(r, 50));
  if (existsSync(path.join(boxDir(name), "info.json"))) {
    process.kill(info.supervisorPid, "SIGKILL");
    forgetBox(name);
  }
  process.stdout.write(`${pc.yellow("down")} ${name}\n`);
  return 0;
}

export function lsCommand(options: { json?: true }): number {
  const boxes = listBoxes();
  if (options.json) process.stdout.write(`${JSON.stringify(boxes, null, 2)}\n`);
  else if (boxes.length === 0) process.stdout.write("no boxes up\n");
  else for (const b of boxes) process.stdout.write(`${b.name.padEnd(20)} ${b.runtime.padEnd(11)} pid ${String(b.pid).padEnd(8)} ${b.workdir}\n`);
  return 0;
}
