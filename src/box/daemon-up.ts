import { WallError } from "../core/errors.js";
import { planFromOptions } from "../plan/from-options.js";
import type { BoxPlan } from "../plan/plan.js";
import { isBoxName } from "./name.js";
import { IDLE_COMMAND, readBox } from "./persistent.js";
import { daemonRunChoice, type RunRequest } from "./run-request.js";

/**
 * `fourwall up` through native/fourwall-run (no Node start-up: 50 `up` at once are 50 requests to
 * one daemon, not 50 CLI starts). The daemon plans the box as `fourwall up` plans it, then starts
 * it as the `up` op of its own socket does. Whatever the CLI would refuse or say something about
 * (a taken or odd name, credentials, another runtime, a flag not taken here) goes the Node way,
 * which says it exactly as before.
 */

/** What the daemon's own `up` answers (daemon.ts's DaemonReply, as far as `up` needs it). */
export type UpReply = { ok: true } | { ok: false; error: string; wall?: string; fix?: string };

/** What the daemon answers: a fallback to the Node CLI, or what to print and the exit status. */
export type UpOutcome = { fallback: true } | { stdout?: string; stderr?: string; code: number };

/** `up`'s command line minus `-n NAME` / `--name NAME` / `--name=NAME` (pure); undefined: not taken. */
export function upArgs(args: string[]): { name: string; rest: string[] } | undefined {
  let name: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "-n" || arg === "--name") {
      if (name !== undefined || i + 1 >= args.length) return undefined;
      name = args[++i]!;
    } else if (arg.startsWith("--name=")) {
      if (name !== undefined) return undefined;
      name = arg.slice("--name=".length);
    } else rest.push(arg);
  }
  return name === undefined ? undefined : { name, rest };
}

export async function serveUp(
  request: RunRequest,
  up: (name: string, plan: BoxPlan, approver?: string) => Promise<UpReply>,
  refusal: (error: unknown) => string | undefined,
): Promise<UpOutcome> {
  const parsed = upArgs(request.args);
  if (!parsed || !isBoxName(parsed.name) || readBox(parsed.name)) return { fallback: true };
  // the idle command after `--`: anything else on the line (a positional, `--`) is the CLI's to refuse
  const choice = daemonRunChoice([...parsed.rest, "--", ...IDLE_COMMAND]);
  if ("fallback" in choice || choice.command.join("\0") !== IDLE_COMMAND.join("\0"))
    return { fallback: true };
  let plan: BoxPlan;
  try {
    ({ plan } = await planFromOptions(IDLE_COMMAND, choice.options, { cwd: request.cwd, env: request.env }));
  } catch (error) {
    const said = refusal(error);
    return said === undefined ? { fallback: true } : { stderr: said, code: 125 };
  }
  if (plan.credentials.terminates || plan.runtime !== "namespaces") return { fallback: true };
  const reply = await up(parsed.name, plan, choice.options.approver);
  if (reply.ok) return { stdout: `up ${parsed.name}\n`, code: 0 };
  const error = new WallError(
    (reply.wall as never) ?? "isolation",
    reply.error,
    reply.fix ?? "fourwall doctor",
  );
  return { stderr: `${error.describe()}\n`, code: 125 };
}
