/**
 * One MCP server entry, as every client writes it ({command, args, env}, plus `type`/`url` for
 * remote servers), wrapped so it runs in a box: `fourwall mcp wrap [--workdir D] [--env NAME]… --
 * COMMAND ARGS…`. Only `command` and `args` change, so the rest of the entry (env, type, anything
 * the client adds) stays where it was, and the original command line is recoverable from the
 * wrapped one (everything after `--`). Pure.
 */
import path from "node:path";

export type Entry = Record<string, unknown>;

export interface WrapContext {
  /** The fourwall program written into the entry (an absolute path: clients start servers without a shell). */
  fourwall: string;
  /** A policy file every wrapped server gets (`mcp install --policy`). */
  policy?: string;
  /** The directory a project-scoped config belongs to: the workdir of a server given none. */
  projectDir?: string;
  /** Whether a path is an existing directory on the host (the one question asked of it). */
  isDir: (p: string) => boolean;
}

export type Outcome = { action: "wrap"; entry: Entry; workdir?: string } | { action: "skip"; why: string };

const strings = (v: unknown): string[] | undefined =>
  Array.isArray(v) && v.every((x) => typeof x === "string") ? (v as string[]) : undefined;

/** Is this entry already `fourwall mcp wrap …`? (install is idempotent: it never wraps twice) */
export function isWrapped(entry: Entry): boolean {
  const args = strings(entry.args);
  return (
    typeof entry.command === "string" &&
    /(^|\/)fourwall(\.js)?$/.test(entry.command) &&
    args?.[0] === "mcp" &&
    args[1] === "wrap" &&
    args.includes("--")
  );
}

/**
 * The directory a server is given: the first absolute argument that is a directory on the host
 * (`server-filesystem /home/me/proj`, `mcp-server-git --repository /home/me/repo`). "/" never is.
 */
export function serverDirectory(argv: string[], isDir: (p: string) => boolean): string | undefined {
  for (const arg of argv.slice(1)) {
    const raw = arg.startsWith("--") && arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : arg;
    if (!raw.startsWith("/")) continue;
    const value = path.normalize(raw).replace(/(.)\/+$/, "$1");
    if (value !== "/" && isDir(value)) return value;
  }
  return undefined;
}

/** Wraps one entry, or says why it is left alone. */
export function wrapEntry(entry: Entry, ctx: WrapContext): Outcome {
  if (isWrapped(entry)) return { action: "skip", why: "already wrapped" };
  if (typeof entry.url === "string" || (typeof entry.type === "string" && entry.type !== "stdio"))
    return {
      action: "skip",
      why: "remote server (url): no local process to box; its traffic is its own host's",
    };
  if (typeof entry.command !== "string" || entry.command === "") return { action: "skip", why: "no command" };
  const args = entry.args === undefined ? [] : strings(entry.args);
  if (!args) return { action: "skip", why: "args is not a list of strings" };
  const argv = [entry.command, ...args];
  const workdir = serverDirectory(argv, ctx.isDir) ?? ctx.projectDir;
  const env =
    typeof entry.env === "object" && entry.env !== null && !Array.isArray(entry.env)
      ? Object.keys(entry.env)
      : [];
  const wrapped = [
    "mcp",
    "wrap",
    ...(workdir ? ["--workdir", workdir] : []),
    ...(ctx.policy ? ["--policy", ctx.policy] : []),
    ...env.flatMap((name) => ["--env", name]),
    "--",
    ...argv,
  ];
  // command and args replaced in place: the entry's other keys keep their order
  return {
    action: "wrap",
    entry: { ...entry, command: ctx.fourwall, args: wrapped },
    ...(workdir ? { workdir } : {}),
  };
}

/** The entry as it was before wrapping: the command line after `--`; undefined if not wrapped. */
export function unwrapEntry(entry: Entry): Entry | undefined {
  if (!isWrapped(entry)) return undefined;
  const args = entry.args as string[];
  const [command, ...rest] = args.slice(args.indexOf("--") + 1);
  const out: Entry = { ...entry, command };
  if (rest.length > 0) out.args = rest;
  else delete out.args;
  return out;
}
