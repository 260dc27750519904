/**
 * The box daemon's `run` protocol (pure): what native/fourwall-run.c sends, which of those runs the
 * daemon takes, and its replies. Anything the daemon does not take is a fallback to the Node CLI,
 * which then runs exactly as before: the daemon path is an optimisation, never a second behaviour.
 */

import { runFlagNamed } from "../plan/run-flags.js";

export const RUN_PROTOCOL = "1";

/** The client's variable that asks the Node fallback to start a daemon (none answered). */
export const NO_DAEMON_VAR = "FOURWALL_RUN_NO_DAEMON";

export interface RunRequest {
  version: string;
  /** What the client asks for: `run` (no 'O' item) or `up` (daemon-up.ts). */
  op: "run" | "up";
  cwd: string;
  /** What followed `fourwall run` on the command line. */
  args: string[];
  env: Record<string, string>;
}

/** The request body (after its u32 length): NUL-terminated items led by 'V', 'O', 'C', 'A' or 'E'. */
export function parseRunRequest(body: Buffer): RunRequest {
  const items = body.toString("utf8").split("\0");
  if (items.pop() !== "") throw new Error("the request does not end with NUL");
  const request: RunRequest = { version: "", op: "run", cwd: "", args: [], env: {} };
  for (const item of items) {
    const value = item.slice(1);
    switch (item[0]) {
      case "V":
        request.version = value;
        break;
      case "C":
        request.cwd = value;
        break;
      case "O":
        if (value !== "up") throw new Error(`unknown operation ${JSON.stringify(value)}`);
        request.op = value;
        break;
      case "A":
        request.args.push(value);
        break;
      case "E": {
        const eq = value.indexOf("=");
        if (eq > 0 && !(value.slice(0, eq) in request.env))
          request.env[value.slice(0, eq)] = value.slice(eq + 1);
        break;
      }
      default:
        throw new Error(`unknown item kind ${JSON.stringify(item[0] ?? "")}`);
    }
  }
  if (!request.cwd.startsWith("/")) throw new Error("the request has no absolute cwd");
  return request;
}

/** The flags the daemon takes, as RunOptions has them. */
export interface DaemonRunOptions {
  policy?: string;
  workdir?: string;
  approver?: string;
  runtime?: string;
  preset: string[];
  allow: string[];
  resolve: string[];
  secret: string[];
}
const LISTS = ["preset", "allow", "resolve", "secret"] as const;
const VALUES = ["policy", "workdir", "approver", "runtime"] as const;
const isOne = <T extends string>(list: readonly T[], key: string): key is T =>
  (list as readonly string[]).includes(key);
export type RunChoice = { command: string[]; options: DaemonRunOptions } | { fallback: string };

/**
 * The command lines the daemon takes: its flags of plan/run-flags.ts (the CLI's own table) before
 * the command, as commander reads them (passThroughOptions): `-p F`, `--policy F`, `--policy=F`,
 * then `--` or the command. Everything else (a Node-only flag, a combined short form, a value flag
 * given twice, no command) is the Node CLI's: a fallback.
 */
export function daemonRunChoice(args: string[]): RunChoice {
  const options: DaemonRunOptions = { preset: [], allow: [], resolve: [], secret: [] };
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const flag = runFlagNamed(name);
    if (!flag) return { fallback: `the option ${arg}` };
    if (flag.daemon !== true) return { fallback: `${name}: ${flag.daemon.nodeOnly}` };
    let value = eq > 0 ? arg.slice(eq + 1) : undefined;
    if (value === undefined) {
      if (i + 1 >= args.length) return { fallback: `${arg} without a value` };
      value = args[++i]!;
    }
    const key = flag.key;
    if (isOne(LISTS, key)) options[key].push(value);
    else if (isOne(VALUES, key)) {
      if (options[key] !== undefined) return { fallback: `${arg} twice` };
      options[key] = value;
    } else return { fallback: `${name} is not one of the daemon's options` };
  }
  const command = args.slice(i);
  if (command.length === 0) return { fallback: "no command" };
  return { command, options };
}

/**
 * Variables fourwall reads from its own environment (not the caller's, which the plan gets): the
 * daemon has the environment it was started with, so a caller whose values differ goes the Node way.
 * Not compared: HOME and XDG_RUNTIME_DIR, which place fourwall's private state: the caller reached
 * this daemon through its socket in that same state dir (bin/fourwall). PATH: the plan reads the
 * caller's (the box's PATH); the daemon finds its host helpers (bwrap, prlimit, flock) on its own.
 */
const OWN_ENV = ["TMPDIR", "TMP", "TEMP", "DOCKER_HOST"];

/** The first variable that differs between the daemon's own environment and the caller's, if any. */
export function ownEnvDiffers(
  daemon: Record<string, string | undefined>,
  caller: Record<string, string | undefined>,
): string | undefined {
  const fourwall = (env: Record<string, string | undefined>) =>
    Object.keys(env).filter((k) => k.startsWith("FOURWALL_") && k !== NO_DAEMON_VAR);
  const names = new Set([...OWN_ENV, ...fourwall(daemon), ...fourwall(caller)]);
  return [...names].find((k) => daemon[k] !== caller[k]);
}

export type ReplyKind = "F" | "S" | "E" | "O" | "X";

/** One reply: its kind, a u32 length (little endian), the payload. */
export function replyFrame(kind: ReplyKind, payload = ""): Buffer {
  const body = Buffer.from(payload, "utf8");
  const head = Buffer.alloc(5);
  head.write(kind, 0, "latin1");
  head.writeUInt32LE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Splits the client's signal frames ('k' + signal number); what is left is an incomplete frame. */
export function signalFrames(bytes: Buffer): { signals: number[]; rest: Buffer; bad: boolean } {
  const signals: number[] = [];
  let i = 0;
  for (; i + 1 < bytes.length; i += 2) {
    if (bytes[i] !== 0x6b) return { signals, rest: Buffer.alloc(0), bad: true };
    signals.push(bytes[i + 1]!);
  }
  return { signals, rest: bytes.subarray(i), bad: false };
}
