import type { ApproverAnswer, FileFacts, FsChange, GateRequest } from "../types.js";
import { diffLines } from "./diff.js";
import { type RequestDisplay, visible } from "./render.js";

/**
 * The terminal's review of a change-set, file by file (pure: a key in, the next screen or the
 * answer out; the terminal approver draws and reads). Screens:
 *   overview  the usual question: y yes to all, n no to all, r review file by file
 *   file      one change, both sides (mode, size, hash), the diff's size: y apply, n keep the
 *             original, d the diff, a all the rest, x none of the rest
 *   diff      the unified diff, a page at a time, every line through `visible`
 *   summary   what will be applied and what kept: y confirm, r review again, n none
 * Esc and Ctrl-C are "no to everything" on every screen (fail closed), and only a confirmed
 * summary answers with a subset.
 */
export type ReviewView = "overview" | "file" | "diff" | "summary";

export interface ReviewScreen {
  display: RequestDisplay;
  /** The last line: the question and its keys. */
  question: string;
  keys: string;
}

const ESC = 0x1b;
const CTRL_C = 0x03;
const ENTER = [0x0d, 0x0a];

export const factsText = (f: FileFacts | undefined): string => {
  if (!f) return "—";
  if (f.kind === "missing") return "absent";
  if (f.kind === "symlink") return `symlink → ${visible(f.target ?? "", 120)}`;
  if (f.kind !== "file") return `${f.kind}${f.mode ? ` ${f.mode}` : ""}`;
  return `file ${f.mode}, ${f.size} bytes, sha256 ${f.sha256?.slice(0, 16)}…`;
};

export class FileReview {
  view: ReviewView = "overview";
  index = 0;
  /** Per change: true apply, false keep the original, undefined not yet answered. */
  readonly choice: (boolean | undefined)[];
  private diffTop = 0;
  private readonly changes: FsChange[];

  constructor(private readonly request: GateRequest) {
    this.changes = request.changes ?? [];
    this.choice = this.changes.map(() => undefined);
  }

  /** Whether a file-by-file review is offered (a change-set with more than nothing in it). */
  get offered(): boolean {
    return this.request.kind === "fs" && this.changes.length > 0;
  }

  /** The overview's keys (the terminal's `promptKeys`, plus review). */
  static overviewKeys(request: GateRequest, base: string): string {
    return request.kind === "fs" && (request.changes?.length ?? 0) > 0
      ? "[y]es  [n]o (all of them)  [r]eview file by file"
      : base;
  }

  /** A key: the answer when the review is over, undefined when the screen changes (redraw). */
  key(byte: number): ApproverAnswer | undefined | "ignore" {
    const c = String.fromCharCode(byte).toLowerCase();
    // ESC starts every report a terminal sends on its own (mouse, focus, keyboard protocols);
    // a byte >= 0x80 may be a C1 CSI of one in 8-bit mode, whose payload could hold a "y"
    if (byte === ESC || byte === CTRL_C || byte >= 0x80) return "no";
    switch (this.view) {
      case "overview":
        if (c === "y") return "yes";
        if (c === "a" && this.request.alwaysAllowed) return "always";
        if (c === "n" || ENTER.includes(byte)) return "no";
        if (c === "r" && this.offered) {
          this.view = "file";
          this.index = 0;
          return undefined;
        }
        return "ignore";
      case "file":
        if (c === "y" || c === "n" || ENTER.includes(byte)) return this.answerFile(c === "y");
        if (c === "d" && this.changes[this.index]?.diff) {
          this.view = "diff";
          this.diffTop = 0;
          return undefined;
        }
        if (c === "a" || c === "x") {
          for (let i = this.index; i < this.choice.length; i++) this.choice[i] = c === "a";
          this.view = "summary";
          return undefined;
        }
        return "ignore";
      case "diff":
        if (c === " " || c === "j") {
          this.diffTop += this.page;
          return undefined;
        }
        if (c === "k" || c === "-") {
          this.diffTop = Math.max(0, this.diffTop - this.page);
          return undefined;
        }
        if (c === "b" || c === "q" || c === "d") {
          this.view = "file";
          return undefined;
        }
        if (c === "y" || c === "n") return this.answerFile(c === "y");
        return "ignore";
      case "summary":
        if (c === "y") return this.final();
        if (c === "r") {
          this.view = "file";
          this.index = 0;
          return undefined;
        }
        if (c === "n" || ENTER.includes(byte)) return "no";
        return "ignore";
    }
  }

  private answerFile(yes: boolean): undefined {
    this.choice[this.index] = yes;
    this.index++;
    this.view = this.index >= this.changes.length ? "summary" : "file";
    return undefined;
  }

  /** The confirmed answer: all, none, or the paths chosen. */
  final(): ApproverAnswer {
    const yes = this.changes.filter((_, i) => this.choice[i] === true).map((c) => c.path);
    if (yes.length === this.changes.length) return "yes";
    if (yes.length === 0) return "no";
    return { approve: yes };
  }

  /** Diff lines per page (set by the last screen drawn). */
  private page = 20;

  /** The screen for the current view (not the overview: the terminal draws that itself). */
  screen(rows: number, cols: number): ReviewScreen {
    const title = `fourwall gate · box ${visible(this.request.box)} · review the change-set file by file`;
    const n = this.changes.length;
    const c = this.changes[Math.min(this.index, n - 1)]!;
    const head = `${this.index + 1} of ${n}: ${c.op} ${visible(c.path)}${c.to ? ` → ${visible(c.to)}` : ""}`;
    if (this.view === "diff") {
      const all = diffLines(c.diff ?? "", Math.max(20, cols - 12));
      this.page = Math.max(1, rows - 4);
      this.diffTop = Math.min(this.diffTop, Math.max(0, all.length - 1));
      const shown = all.slice(this.diffTop, this.diffTop + this.page);
      const lines: [string, string][] = [["diff", head], ...shown.map((l): [string, string] => ["", l])];
      const left = all.length - this.diffTop - shown.length;
      return {
        display: { title, lines },
        question: left > 0 ? `${left} more line(s):` : "end of diff:",
        keys: "[space] more  [k] back a page  [b]ack to the file  [y] apply  [n] keep original",
      };
    }
    if (this.view === "summary") {
      const yes = this.changes.filter((_, i) => this.choice[i]);
      const no = this.changes.filter((_, i) => !this.choice[i]);
      const room = Math.max(2, rows - 6);
      const list = (what: FsChange[], k: number) => [
        ...what.slice(0, k).map((x): [string, string] => ["", `${x.op.padEnd(9)} ${visible(x.path)}`]),
        ...(what.length > k ? [["", `… and ${what.length - k} more`] as [string, string]] : []),
      ];
      const half = Math.max(1, Math.floor(room / 2) - 1);
      return {
        display: {
          title,
          lines: [
            ["apply", `${yes.length} of ${n}`],
            ...list(yes, half),
            ["keep", `${no.length} of ${n} (the originals stay; kept as a change-set: fourwall changes)`],
            ...list(no, half),
          ],
        },
        question: "confirm?",
        keys: "[y] confirm  [r]eview again  [n]o to everything",
      };
    }
    const chosen = this.choice.filter((x) => x !== undefined).length;
    return {
      display: {
        title,
        lines: [
          ["file", head],
          ...(c.detail ? [["", visible(c.detail)] as [string, string]] : []),
          ["before", factsText(c.before)],
          ["after", factsText(c.after)],
          [
            "diff",
            c.diff ? `${diffLines(c.diff).length} lines — d to read it` : visible(c.diffNote ?? "none"),
          ],
          ["so far", `${chosen} of ${n} answered`],
        ],
      },
      question: "apply this one?",
      keys: `[y] apply  [n] keep original${c.diff ? "  [d]iff" : ""}  [a]ll the rest  [x] none of the rest`,
    };
  }
}
