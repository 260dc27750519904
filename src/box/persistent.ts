import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { privateStateDir } from "../core/state-dir.js";
import type { BoxPlan } from "../plan/plan.js";
import type { BoxSession, RunningBox } from "../runtimes/runtime.js";
import { checkBoxName, isBoxName } from "./name.js";

/**
 * Persistent boxes (`fourwall up/exec/down/ls`): a box that stays up so each command pays only
 * for entering it. Its state lives in a directory private to the user who made it (0700):
 * `info.json` for the CLI, and `enter`, `env`, `seccomp` for native/fourwall-enter.c, which
 * joins the box without starting Node.
 */

export interface BoxInfo {
  name: string;
  id: string;
  /** The supervisor process (fourwall itself): SIGTERM it to bring the box down. */
  supervisorPid: number;
  /** The box's first process on the host. */
  pid: number;
  runtime: string;
  workdir: string;
  created: string;
}

/** What keeps a persistent box's first process alive: nothing but waiting. */
export const IDLE_COMMAND = ["sleep", "infinity"];

/** Where boxes are recorded (bin/fourwall looks in the same places, in the same order). */
export const boxesRoot = () => privateStateDir("boxes");

/** A box's state directory; a name that is not a plain box name never becomes a path (WallError). */
export const boxDir = (name: string) => path.join(boxesRoot(), checkBoxName(name));

/**
 * The enter file (pure): what fourwall-enter needs to give a command the box's walls. `pause`: the
 * gate's pause socket; with it, an exec that cannot hand its listener there refuses to run (125).
 */
export function enterFile(plan: BoxPlan, pid: number, cgroupDirs: string[], pause?: string): string {
  return [
    `pid=${pid}`,
    `uid=${plan.identity.uid}`,
    `gid=${plan.identity.gid}`,
    `cwd=${plan.filesystem.cwd}`,
    ...plan.rlimits.map((r) => `rlimit=${r.name}:${r.value}`),
    ...cgroupDirs.map((d) => `cgroup=${d}`),
    ...(pause ? [`pause=${pause}`] : []),
    "",
  ].join("\n");
}

/** What native/fourwall-enter reads to run a command in a running box (files private to the user). */
export function writeEnterFiles(dir: string, plan: BoxPlan, box: RunningBox, session: BoxSession): void {
  if (box.pid === undefined)
    throw new Error(`the ${plan.runtime} runtime cannot be entered by fourwall exec`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(
    path.join(dir, "enter"),
    enterFile(plan, box.pid, session.cgroupDirs, session.pause?.execSocket),
    { mode: 0o600 },
  );
  writeFileSync(
    path.join(dir, "env"),
    Object.entries(plan.env)
      .map(([k, v]) => `${k}=${v}\0`)
      .join(""),
    { mode: 0o600 },
  );
  writeFileSync(path.join(dir, "seccomp"), plan.seccomp, { mode: 0o600 });
}

export function recordBox(name: string, plan: BoxPlan, box: RunningBox, session: BoxSession): void {
  const dir = boxDir(name);
  writeEnterFiles(dir, plan, box, session);
  chmodSync(path.dirname(dir), 0o700);
  const info: BoxInfo = {
    name,
    id: plan.id,
    supervisorPid: process.pid,
    pid: box.pid!,
    runtime: plan.runtime,
    workdir: plan.filesystem.cwd,
    created: new Date().toISOString(),
  };
  // info.json last: its presence means the box is ready.
  writeFileSync(path.join(dir, "info.json"), JSON.stringify(info), { mode: 0o600 });
}

export function forgetBox(name: string): void {
  rmSync(boxDir(name), { recursive: true, force: true });
}

/** Running (a zombie, whose parent has not reaped it yet, counts as dead). */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
};

export function readBox(name: string): BoxInfo | undefined {
  if (!isBoxName(name)) return undefined; // never a path: ../x is not a box, and nothing of it is removed
  try {
    const info = JSON.parse(readFileSync(path.join(boxDir(name), "info.json"), "utf8")) as BoxInfo;
    if (alive(info.supervisorPid) && alive(info.pid)) return info;
  } catch {
    return undefined;
  }
  forgetBox(name); // its supervisor is gone (killed): so is the box; drop the stale record
  return undefined;
}

export function listBoxes(): BoxInfo[] {
  const root = boxesRoot();
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter(isBoxName)
    .map(readBox)
    .filter((b): b is BoxInfo => b !== undefined);
}
