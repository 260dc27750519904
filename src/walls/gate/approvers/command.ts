import { spawn } from "node:child_process";
import type { Approver, ApproverAnswer, GateRequest } from "../types.js";
import { describeRequest } from "./render.js";

/**
 * The approver command (`--approver '<cmd>'`), for bots and tests: run with /bin/sh -c, it gets
 * the request as one JSON object on stdin and answers by its exit status: 0 = yes, anything else
 * (a crash, a signal, being killed at the timeout) = no. The JSON carries the raw values and, in
 * `display`, the title and lines a human should see (every value escaped by `visible`). Its output goes to fourwall's stderr so
 * that a human watching sees what it said.
 */
export class CommandApprover implements Approver {
  readonly name = "approver-command";

  constructor(private readonly command: string) {}

  ask(request: GateRequest, signal: AbortSignal): Promise<ApproverAnswer> {
    return new Promise((resolve, reject) => {
      const child = spawn("/bin/sh", ["-c", this.command], {
        stdio: ["pipe", "ignore", "inherit"],
        env: { ...process.env, FOURWALL_GATE_REQUEST_ID: request.id, FOURWALL_GATE_KIND: request.kind },
      });
      const onAbort = () => child.kill("SIGKILL");
      signal.addEventListener("abort", onAbort, { once: true });
      child.once("error", (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      });
      child.once("close", (code) => {
        signal.removeEventListener("abort", onAbort);
        resolve(code === 0 && !signal.aborted ? "yes" : "no");
      });
      child.stdin.on("error", () => {}); // an approver that does not read its input may still answer
      // Raw values for a program; `display` is what a human should be shown (escaped, cut, counted).
      child.stdin.end(`${JSON.stringify({ ...request, display: describeRequest(request) })}\n`);
    });
  }
}
