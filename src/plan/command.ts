import path from "node:path";
import { WallError } from "../core/errors.js";
import { boxSight, type FilesystemPlan, followLinks, type HostView } from "../walls/filesystem/index.js";

/**
 * The command as the box's shell would find it, checked before launch (pure apart from questions
 * to `host`): found on the box's PATH (or at its path), visible in the box, executable, and its
 * script interpreter visible too. Without this a command under /tmp (private in the box) dies
 * as "prlimit: failed to execute …: No such file or directory", which names neither the cause
 * nor the fix.
 */
export function checkCommand(
  command: readonly string[],
  ctx: { filesystem: FilesystemPlan; boxPath: string; host: HostView },
): void {
  const name = command[0];
  if (name === undefined) throw new WallError("policy", "no command to run", "fourwall run -- COMMAND");
  const found = locate(name, ctx);
  if (typeof found !== "string") throw found;
  const interpreter = shebang(ctx.host.readText(found, 256));
  if (!interpreter) return;
  const [interp, ...args] = interpreter;
  // `#!/usr/bin/env node`: env finds the program on the box's PATH, the way it will in the box
  const program = path.basename(interp!) === "env" ? args.find((a) => !a.startsWith("-")) : interp;
  if (!program) return;
  const inner = locate(program, ctx);
  if (typeof inner !== "string")
    throw new WallError(
      "filesystem",
      `${found} is a script for ${program}, and ${inner.message}`,
      (inner as WallError).fix,
    );
}

/** The host path the box runs for `name`, or the WallError that says why there is none. */
function locate(
  name: string,
  ctx: { filesystem: FilesystemPlan; boxPath: string; host: HostView },
): string | WallError {
  const { filesystem, host } = ctx;
  const candidates = name.includes("/")
    ? [path.resolve(filesystem.cwd, name)]
    : ctx.boxPath
        .split(":")
        .filter((dir) => path.isAbsolute(dir))
        .map((dir) => path.join(dir, name));
  let hidden: { at: string; why: string; under: string } | undefined;
  for (const at of candidates) {
    for (const p of new Set([at, followLinks(host, at)])) {
      const sight = boxSight(filesystem.mounts, p);
      if (!sight.seen) {
        if (host.targetKind(p) !== "missing") hidden ??= { at: p, why: sight.why, under: sight.under };
        break;
      }
      if (p !== at || host.kind(p) !== "symlink") {
        const kind = sight.hostPath === undefined ? "file" : host.targetKind(sight.hostPath);
        if (kind === "file") return p;
      }
    }
  }
  if (hidden)
    return new WallError(
      "filesystem",
      `${hidden.at} is not visible in the box: ${hidden.under} is ${describeWhy(hidden.why)}`,
      `add \`--ro ${path.dirname(hidden.at)}\` (or filesystem.readOnly), or install it where the box sees it`,
    );
  return new WallError(
    "filesystem",
    name.includes("/")
      ? `${name} not found in the box`
      : `${name} not found in the box (PATH=${ctx.boxPath})`,
    "check the command's name and the box's PATH (env.pass / env.set), or show its directory with --ro PATH",
  );
}

const describeWhy = (why: string): string =>
  why.startsWith("private") ? why.replace(/^private\b[^:,]*/, "private") : `hidden (${why})`;

/** A script's `#!` line as words, if it has one. */
export function shebang(head: string | undefined): string[] | undefined {
  if (!head?.startsWith("#!")) return undefined;
  const line = head.slice(2).split("\n", 1)[0]!.trim();
  const words = line.split(/\s+/).filter(Boolean);
  return words.length > 0 ? words : undefined;
}
