import { spawn } from "node:child_process";
import path from "node:path";
import pc from "picocolors";
import { askDaemon, otherDaemonSockets, runDaemon } from "../box/daemon.js";
import { keptLine } from "../box/kept.js";
import { checkBoxName } from "../box/name.js";
import { boxDir, IDLE_COMMAND, listBoxes, readBox } from "../box/persistent.js";
import { WallError } from "../core/errors.js";
import { exitStatus } from "../core/exit.js";
import { enterHelperPath } from "../core/paths.js";
import { planFromOptions, type RunOptions } from "../plan/from-options.js";
import { failClosed } from "./run.js";

/** Starts the user's box daemon unless one answers already. */
async function ensureDaemon(): Promise<void> {
  if (await askDaemon({ op: "ping" }, 2000)) return;
  const child = spawn(process.execPath, [process.argv[1]!, "box-daemon"], {
    detached: true,
    stdio: "ignore",
  });
  child.unref();
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 25));
    if (await askDaemon({ op: "ping" }, 2000)) return;
  }
  throw new WallError(
    "isolation",
    "the box daemon did not start",
    "run `fourwall box-daemon` in a terminal to see why",
  );
}

/**
 * `fourwall up --name N`: plans the box here (with this shell's directory and environment), then
 * hands the plan to the user's box daemon, which supervises it until `fourwall down`.
 */
export async function upCommand(options: RunOptions & { name: string }): Promise<number> {
  try {
    checkBoxName(options.name);
    if (readBox(options.name))
      throw new WallError(
        "policy",
        `a box named ${options.name} is already up`,
        `fourwall down ${options.name}`,
      );
    const { plan } = await planFromOptions(IDLE_COMMAND, options);
    // The box daemon gets the plan as JSON, which never carries secrets: no swap to hand over yet.
    if (plan.credentials.terminates)
      throw new WallError(
        "egress",
        `credentials and the input gate are built for \`fourwall run\` only, not persistent boxes yet (bound: ${plan.credentials.bindings.map((b) => b.name).join(", ") || "none; input gate set"})`,
        "use fourwall run; or, for a preset's API key, unset the variable for `up` (the key then stays out of the box entirely) — see docs/credentials.md",
      );
    // fourwall exec joins the box's namespaces: only the namespaces runtime has a box to join.
    if (plan.runtime !== "namespaces")
      throw new WallError(
        "isolation",
        `persistent boxes run on the namespaces runtime only: fourwall exec cannot enter a ${plan.runtime} box`,
        `fourwall up -r namespaces, or fourwall run -r ${plan.runtime} per command`,
      );
    await ensureDaemon();
    if (options.inbox)
      throw new WallError("gate", "--inbox is not available for persistent boxes yet", "use --approver CMD");
    const audit = options.audit ? path.resolve(options.audit) : undefined;
    const request = {
      op: "up" as const,
      name: options.name,
      plan,
      ...(audit ? { audit } : {}),
      ...(options.approver ? { approver: options.approver } : {}),
    };
    let reply = await askDaemon(request);
    // nobody answered: the daemon that answered the ping was leaving (idle); start one, ask again
    if (reply === undefined) {
      await ensureDaemon();
      reply = await askDaemon(request);
    }
    if (!reply?.ok) {
      const why =
        reply && !reply.ok ? reply : { error: "the box daemon went away", wall: undefined, fix: undefined };
      throw new WallError((why.wall as never) ?? "isolation", why.error, why.fix ?? "fourwall doctor");
    }
    process.stdout.write(`${pc.green("up")} ${options.name}\n`);
    return 0;
  } catch (error) {
    return failClosed(error);
  }
}

export async function daemonCommand(options: { forRun?: boolean } = {}): Promise<number> {
  await runDaemon(options);
  return new Promise(() => {}); // runs until its last box is down
}

/** `fourwall exec N -- cmd` (the slow path; bin/fourwall calls the native helper directly). */
export async function execCommand(name: string, command: string[]): Promise<number> {
  try {
    checkBoxName(name);
  } catch (error) {
    return failClosed(error);
  }
  if (!readBox(name))
    return failClosed(new WallError("isolation", `no box named ${name} is up`, `fourwall up --name ${name}`));
  const child = spawn(enterHelperPath(), [boxDir(name), "--", ...command], { stdio: "inherit" });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => child.kill(sig));
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve(exitStatus(code, signal))));
}

/** `fourwall down N`: stops the box; returns once it is gone (nothing left behind). */
export async function downCommand(name: string): Promise<number> {
  try {
    checkBoxName(name);
  } catch (error) {
    return failClosed(error);
  }
  if (!readBox(name))
    return failClosed(new WallError("isolation", `no box named ${name} is up`, "fourwall ls"));
  let reply = await askDaemon({ op: "down", name });
  // a box brought up by another build's daemon (fourwall was upgraded since): that daemon's to end
  for (const other of reply?.ok ? [] : otherDaemonSockets()) {
    const answer = await askDaemon({ op: "down", name }, 30_000, other);
    if (answer?.ok) reply = answer;
    if (answer?.ok) break;
  }
  if (!reply?.ok)
    return failClosed(
      new WallError(
        "isolation",
        reply && !reply.ok ? reply.error : "the box daemon did not answer",
        "fourwall ls",
      ),
    );
  process.stdout.write(`${pc.yellow("down")} ${name}\n`);
  // Never a silent drop: what the box's approver did not apply is kept; ask about it here if a
  // human is at a terminal, and end with the one loud line naming what is still kept.
  if (reply.kept) {
    const { reviewKept } = await import("./changes.js");
    const left = await reviewKept(reply.kept.id, `held while box ${name} was up`);
    if (left) process.stderr.write(`${pc.bold(pc.yellow(keptLine(left)))}\n`);
  }
  return 0;
}

export function lsCommand(options: { json?: true }): number {
  const boxes = listBoxes();
  if (options.json) process.stdout.write(`${JSON.stringify(boxes, null, 2)}\n`);
  else if (boxes.length === 0) process.stdout.write("no boxes up\n");
  else
    for (const b of boxes)
      process.stdout.write(
        `${b.name.padEnd(20)} ${b.runtime.padEnd(11)} pid ${String(b.pid).padEnd(8)} ${b.workdir}\n`,
      );
  return 0;
}
