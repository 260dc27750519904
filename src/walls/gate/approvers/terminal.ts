import { closeSync, openSync } from "node:fs";
import tty from "node:tty";
import pc from "picocolors";
import type { Approver, ApproverAnswer, GateAnswer, GateRequest } from "../types.js";
import { describeRequest, printable } from "./render.js";

/** Opens the controlling terminal, or undefined when there is none (CI, a service, nohup). */
export function openTerminal(): number | undefined {
  try {
    return openSync("/dev/tty", "r+");
  } catch {
    return undefined;
  }
}

/**
 * The terminal approver: asks on /dev/tty, not stdin/stdout, so it works while the agent owns
 * both. One prompt at a time (requests queue), single key answers: y yes, n no (also Enter, Esc,
 * Ctrl-C), a always for this box. Raw mode is entered only for the prompt and the terminal's
 * previous mode (the agent may have its own raw mode) is restored after.
 */
export class TerminalApprover implements Approver {
  readonly name = "terminal";
  private queue: Promise<unknown> = Promise.resolve();

  /** `probe` is true when a terminal exists; the fd is reopened per prompt. */
  static available(): boolean {
    const fd = openTerminal();
    if (fd === undefined) return false;
    closeSync(fd);
    return true;
  }

  ask(request: GateRequest, signal: AbortSignal): Promise<ApproverAnswer> {
    const turn = this.queue.then(() => (signal.aborted ? ("no" as const) : this.prompt(request, signal)));
    this.queue = turn.catch(() => {});
    return turn;
  }

  private prompt(request: GateRequest, signal: AbortSignal): Promise<ApproverAnswer> {
    const fd = openTerminal();
    if (fd === undefined) return Promise.reject(new Error("no terminal"));
    const input = new tty.ReadStream(fd);
    const output = new tty.WriteStream(fd);
    const { title, lines } = describeRequest(request);
    const keys = request.alwaysAllowed ? "[y]es  [n]o  [a]lways for this box" : "[y]es  [n]o";
    const text = [
      "",
      pc.yellow(`┌ ${printable(title)}`),
      ...lines.map(([k, v]) => `${pc.yellow("│")} ${pc.dim(k.padEnd(8))} ${printable(v)}`),
      `${pc.yellow("└")} ${pc.bold("allow?")} ${keys} ${pc.dim("(no answer = no)")} `,
    ].join("\r\n");
    return new Promise<ApproverAnswer>((resolve) => {
      let done = false;
      const finish = (answer: ApproverAnswer, shown: string) => {
        if (done) return;
        done = true;
        signal.removeEventListener("abort", onAbort);
        input.off("data", onData);
        try {
          input.setRawMode(false);
        } catch {}
        output.write(`${shown}\r\n`, () => {
          input.destroy();
          output.destroy();
        });
        resolve(answer);
      };
      const onAbort = () => finish("no", pc.dim("(answered elsewhere)"));
      const onData = (chunk: Buffer) => {
        for (const byte of chunk) {
          const c = String.fromCharCode(byte).toLowerCase();
          if (c === "y") return finish("yes", pc.green("yes"));
          if (c === "a" && request.alwaysAllowed) return finish("always", pc.green("always (this box)"));
          if (c === "n" || byte === 0x0d || byte === 0x0a || byte === 0x1b || byte === 0x03)
            return finish("no", pc.red("no"));
        }
      };
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        input.setRawMode(true);
      } catch {}
      input.on("data", onData);
      input.on("error", () => finish("no", ""));
      output.write(text);
    });
  }

  settled(_id: string, _answer: GateAnswer): void {}
}
