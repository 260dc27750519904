import { spawn } from "node:child_process";
import { exitStatus } from "../core/exit.js";
import { askGate, BOX_GATE_SOCKET, quoteArgv, type SocketAnswer } from "../walls/gate/index.js";

/**
 * The box side of the gate: small commands an agent (or its hook) runs inside the box. They ask
 * the host through the gate socket and act on the answer; they decide nothing themselves. They
 * are advisory — the copy-on-write layer is what a hijacked agent cannot get around — but they
 * let the human see a command before it runs instead of its effects after.
 */

const socketPath = () => process.env.FOURWALL_GATE_SOCKET || BOX_GATE_SOCKET;

async function readStdin(limit = 1024 * 1024): Promise<string> {
  let text = "";
  for await (const chunk of process.stdin) {
    text += chunk;
    if (text.length > limit) break;
  }
  return text;
}

const denyLine = (a: SocketAnswer) => `fourwall gate: denied (${a.by}): ${a.reason}`;

/** `fourwall gate exec [-c LINE | -- ARGV...]`: ask, then run; exit 126 when denied. */
export async function gateExecCommand(argv: string[], options: { shell?: string }): Promise<number> {
  const line = options.shell ?? quoteArgv(argv);
  if (!line.trim()) {
    process.stderr.write("fourwall gate exec: nothing to run\n");
    return 2;
  }
  const answer = await askGate(socketPath(), {
    op: "exec",
    command: line,
    cwd: process.cwd(),
    via: "gate-exec",
  });
  if (answer.decision !== "allow") {
    process.stderr.write(`${denyLine(answer)}\n`);
    return 126;
  }
  const [program, ...args] = options.shell !== undefined ? ["/bin/sh", "-c", options.shell] : argv;
  return await new Promise<number>((resolve) => {
    const child = spawn(program!, args, { stdio: "inherit" });
    child.once("error", (e) => {
      process.stderr.write(`fourwall gate exec: ${program}: ${e.message}\n`);
      resolve(127);
    });
    child.once("close", (code, signal) => resolve(exitStatus(code, signal)));
  });
}

interface HookInput {
  tool_name?: unknown;
  tool_input?: { command?: unknown };
  cwd?: unknown;
}

function commandOf(input: HookInput): string | undefined {
  const c = input.tool_input?.command;
  if (typeof c === "string") return c;
  if (Array.isArray(c) && c.every((w) => typeof w === "string")) {
    // Codex sends ["bash", "-lc", "script"] for shell calls: the script is what runs.
    const words = c as string[];
    if (words.length === 3 && /(^|\/)(ba)?sh$/.test(words[0]!) && /^-l?c$/.test(words[1]!)) return words[2];
    return quoteArgv(words);
  }
  return undefined;
}

async function hookAnswer(via: string): Promise<{ answer?: SocketAnswer; error?: string }> {
  let input: HookInput;
  try {
    input = JSON.parse(await readStdin()) as HookInput;
  } catch {
    return { error: "the hook input is not JSON" };
  }
  const command = commandOf(input);
  if (command === undefined) return {}; // not a command tool: no opinion (the fs layer still holds changes)
  const cwd = typeof input.cwd === "string" && input.cwd.startsWith("/") ? input.cwd : process.cwd();
  return { answer: await askGate(socketPath(), { op: "exec", command, cwd, via }) };
}

/**
 * Claude Code PreToolUse hook: JSON on stdin; on stdout `hookSpecificOutput.permissionDecision`.
 * A human's yes becomes "allow" (no second prompt from Claude); the policy's own allow (read-only
 * commands) gives no opinion, so Claude's permission settings still apply; a no is "deny" with
 * the reason shown to the model. Anything unexpected denies (fail closed).
 */
export async function claudeHookCommand(): Promise<number> {
  const { answer, error } = await hookAnswer("claude-hook");
  const out = (decision: "allow" | "deny", reason: string) =>
    process.stdout.write(
      `${JSON.stringify({ hookSpecificOutput: { hookEventName: "PreToolUse", permissionDecision: decision, permissionDecisionReason: reason } })}\n`,
    );
  if (error) out("deny", `fourwall gate: ${error}`);
  else if (!answer) return 0;
  else if (answer.decision === "deny") out("deny", denyLine(answer));
  else if (answer.by !== "policy") out("allow", `fourwall gate: ${answer.reason}`);
  return 0;
}

/**
 * Codex PreToolUse hook (Codex speaks the same hook JSON): a deny is said both ways Codex reads —
 * the JSON decision on stdout and exit status 2 with the reason on stderr.
 */
export async function codexHookCommand(): Promise<number> {
  const { answer, error } = await hookAnswer("codex-hook");
  if (!error && (!answer || answer.decision === "allow")) return 0;
  const reason = error ? `fourwall gate: ${error}` : denyLine(answer!);
  process.stdout.write(
    `${JSON.stringify({ hookSpecificOutput: { hookEventName: "PreToolUse", permissionDecision: "deny", permissionDecisionReason: reason } })}\n`,
  );
  process.stderr.write(`${reason}\n`);
  return 2;
}

/** `fourwall gate classify LINE`: what the classifier makes of a command (host side, for people and tests). */
export async function gateClassifyCommand(line: string, options: { json?: true }): Promise<number> {
  const { loadShellParser } = await import("../walls/gate/shell/parser.js");
  const { classifyCommand } = await import("../walls/gate/shell/classify.js");
  const { hostClassifyContext } = await import("../walls/gate/exec.js");
  const parser = await loadShellParser();
  const cwd = process.cwd();
  const writable = (p: string) =>
    p === cwd || p.startsWith(`${cwd}/`) || /^\/(tmp|var\/tmp|dev\/shm)(\/|$)/.test(p);
  const result = classifyCommand(
    parser,
    line,
    hostClassifyContext({ cwd, pathEnv: process.env.PATH ?? "/usr/bin:/bin", boxWritable: writable }),
  );
  if (options.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else
    process.stdout.write(`${result.class}${result.reasons.length ? `: ${result.reasons.join("; ")}` : ""}\n`);
  return result.class === "read-only" ? 0 : 1;
}
