import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

let root: string | undefined;

/** The installed package's root (where package.json is), from source or from the bundle. */
export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json")) && dir !== "/") dir = path.dirname(dir);
  root = dir;
  return dir;
}

/** Where scripts/setup.sh compiles native/*.c (and builds the microVM's guest, under vm/). */
export const nativeBuildDir = () => path.join(packageRoot(), "native", "build");

/**
 * A native helper by name: fourwall-drop (root-mode launcher), -enter (`exec`), -overlay, -netns,
 * -splice, -pty (the box's own session and terminal), -pause (the gate's pause at the action),
 * -bridge (the first process of a box: symlinks, proxy listener, exec), -reaper (a box's locks
 * and its clean-up after fourwall, killed or not).
 */
export const nativeHelperPath = (
  name: "drop" | "enter" | "overlay" | "netns" | "splice" | "pty" | "pause" | "run" | "bridge" | "reaper",
) => path.join(nativeBuildDir(), `fourwall-${name}`);

/** The root-mode launcher compiled from native/fourwall-drop.c by scripts/setup.sh. */
export const dropHelperPath = () => nativeHelperPath("drop");

/** The box's own session and pty, relayed to the caller's terminal (native/fourwall-pty.c). */
export const ptyHelperPath = () => nativeHelperPath("pty");

/** The fast path of `fourwall exec`, compiled from native/fourwall-enter.c. */
export const enterHelperPath = () => nativeHelperPath("enter");

/** `fourwall run`'s client of the box daemon (native/fourwall-run.c). */
export const runClientPath = () => nativeHelperPath("run");

/** True when `child` is `parent` or lies below it (both absolute and normalised). */
export const isUnder = (child: string, parent: string): boolean =>
  child === parent || child.startsWith(parent === "/" ? "/" : `${parent}/`);

/** The first executable named `name` on PATH, or undefined. */
export function which(name: string, searchPath = process.env.PATH ?? "/usr/bin:/bin"): string | undefined {
  for (const dir of searchPath.split(":")) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}
