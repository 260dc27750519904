import { spawn } from "node:child_process";
import type { Approver, ApproverAnswer, GateRequest } from "../types.js";
import { describeRequest } from "./render.js";

/** Most an approver may print on stdout (an answer is a list of paths, not a file). */
const MAX_STDOUT = 1 << 20;

/**
 * What an approver command said (pure): exit 0 and a JSON object `{"approve": [paths]}` on stdout
 * = yes to those paths only (a change-set, file by file); exit 0 and anything else (nothing, or
 * text that is not such an object) = yes to all; any other status = no. An answer that starts
 * like JSON but is not a valid one is a no (fail closed: it meant to choose).
 */
export function commandAnswer(code: number | null, stdout: string): ApproverAnswer {
  if (code !== 0) return "no";
  const text = stdout.trim();
  if (!text.startsWith("{")) return "yes";
  try {
    const parsed = JSON.parse(text) as { approve?: unknown };
    if (Array.isArray(parsed.approve) && parsed.approve.every((p) => typeof p === "string"))
      return { approve: parsed.approve as string[] };
  } catch {}
  return "no";
}

/**
 * The approver command (`--approver '<cmd>'`), for bots and tests: run with /bin/sh -c, it gets
 * the request as one JSON object on stdin and answers by its exit status: 0 = yes, anything else
 * (a crash, a signal, being killed at the timeout) = no; for a change-set it may instead print
 * `{"approve": ["path", …]}` (commandAnswer). The JSON carries the raw values — for a change-set,
 * each change's `before`/`after` (kind, size, sha256, mode) and a bounded `diff` of text files —
 * and, in `display`, the title and lines a human should see (every value escaped by `visible`).
 * Its stderr goes to fourwall's stderr so that a human watching sees what it said.
 */
export class CommandApprover implements Approver {
  readonly name = "approver-command";

  constructor(private readonly command: string) {}

  ask(request: GateRequest, signal: AbortSignal): Promise<ApproverAnswer> {
    return new Promise((resolve, reject) => {
      const child = spawn("/bin/sh", ["-c", this.command], {
        stdio: ["pipe", "pipe", "inherit"],
        env: { ...process.env, FOURWALL_GATE_REQUEST_ID: request.id, FOURWALL_GATE_KIND: request.kind },
      });
      const onAbort = () => child.kill("SIGKILL");
      signal.addEventListener("abort", onAbort, { once: true });
      child.once("error", (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      });
      let stdout = "";
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (d: string) => {
        if (stdout.length < MAX_STDOUT) stdout += d; // more than that is not an answer: cut, so a no
      });
      child.once("close", (code) => {
        signal.removeEventListener("abort", onAbort);
        resolve(signal.aborted ? "no" : commandAnswer(code, stdout.slice(0, MAX_STDOUT)));
      });
      child.stdin.on("error", () => {}); // an approver that does not read its input may still answer
      // Raw values for a program; `display` is what a human should be shown (escaped, cut, counted).
      child.stdin.end(`${JSON.stringify({ ...request, display: describeRequest(request) })}\n`);
    });
  }
}
