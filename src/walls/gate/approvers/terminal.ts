import { closeSync, openSync } from "node:fs";
import tty from "node:tty";
import pc from "picocolors";
import type { Approver, ApproverAnswer, GateAnswer, GateRequest } from "../types.js";
import { FileReview } from "./file-review.js";
import { describeRequest } from "./render.js";
import { fitDisplay, promptScreen, redrawScreen } from "./screen.js";

/** Opens the controlling terminal, or undefined when there is none (CI, a service, nohup). */
export function openTerminal(): number | undefined {
  try {
    return openSync("/dev/tty", "r+");
  } catch {
    return undefined;
  }
}

/** The answers offered. */
export const promptKeys = (request: GateRequest): string =>
  FileReview.overviewKeys(
    request,
    request.alwaysAllowed ? "[y]es  [n]o  [a]lways for this box" : "[y]es  [n]o",
  );

/** Keeps the box from drawing on the terminal while a question is on it (fourwall-pty's pause). */
export interface ScreenHold {
  /** Resolves once the box's output is held; rejects when it cannot be (then nothing is asked). */
  hold(): Promise<void>;
  release(): void;
}

/**
 * The terminal approver: asks on /dev/tty, not stdin/stdout, so it works while the agent owns
 * both. One prompt at a time (requests queue), single key answers: y yes, n no (also Enter, Esc,
 * Ctrl-C), a always for this box; a change-set also offers r, a review file by file with each
 * change's diff (file-review.ts), answered with the paths chosen. Raw mode is entered only for the prompt and the terminal's
 * previous mode (the agent may have its own raw mode) is restored after.
 *
 * Nobody can forge the question: the box's output is held for as long as it is on screen (and
 * released after the answer), keys typed before it appeared are dropped, the terminal is reset
 * (scroll region, modes, attributes, charset, palette) and the question starts on a clean screen,
 * and everything the box chose is shown escaped (`visible`).
 */
export class TerminalApprover implements Approver {
  readonly name = "terminal";
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly screen?: ScreenHold) {}

  /** `probe` is true when a terminal exists; the fd is reopened per prompt. */
  static available(): boolean {
    const fd = openTerminal();
    if (fd === undefined) return false;
    closeSync(fd);
    return true;
  }

  ask(request: GateRequest, signal: AbortSignal): Promise<ApproverAnswer> {
    const turn = this.queue.then(() => (signal.aborted ? ("no" as const) : this.held(request, signal)));
    this.queue = turn.catch(() => {});
    return turn;
  }

  /** The box's output is held from before the question is drawn until after the answer is. */
  protected async held(request: GateRequest, signal: AbortSignal): Promise<ApproverAnswer> {
    if (!this.screen) return this.prompt(request, signal);
    await this.screen.hold(); // cannot hold the box's output: no question on a screen it may draw on
    try {
      return await this.prompt(request, signal);
    } finally {
      this.screen.release();
    }
  }

  /** The question as written to the terminal: reset, clean screen, escaped values that fit. */
  protected compose(request: GateRequest, rows: number, cols: number): string {
    const display = fitDisplay((items) => describeRequest(request, items), rows, cols);
    return promptScreen(display, promptKeys(request), rows);
  }

  private prompt(request: GateRequest, signal: AbortSignal): Promise<ApproverAnswer> {
    const fd = openTerminal();
    if (fd === undefined) return Promise.reject(new Error("no terminal"));
    const input = new tty.ReadStream(fd);
    const output = new tty.WriteStream(fd);
    const text = this.compose(request, output.rows || 24, output.columns || 80);
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
          resolve(answer);
        });
      };
      const onAbort = () => finish("no", pc.dim("(answered elsewhere)"));
      const review = new FileReview(request);
      const onData = (chunk: Buffer) => {
        for (const byte of chunk) {
          const answer = review.key(byte);
          if (answer === "ignore") continue;
          if (answer === undefined) {
            // the next screen of the review (keys typed ahead of it in the same chunk are dropped)
            const next = review.screen(output.rows || 24, output.columns || 80);
            output.write(redrawScreen(next.display, next.keys, next.question));
            return;
          }
          if (answer === "yes") return finish("yes", pc.green("yes"));
          if (answer === "always") return finish("always", pc.green("always (this box)"));
          if (answer === "no") return finish("no", pc.red("no"));
          return finish(
            answer,
            pc.yellow(`yes to ${answer.approve.length} of ${request.changes?.length ?? 0}, no to the rest`),
          );
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
