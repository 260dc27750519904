import type { FsOp } from "./schema.js";

export type GateKind = "exec" | "fs" | "net";

/**
 * One change the copy-on-write layer holds: of a file that existed before the run, or a new
 * symlink leading out of the workdir. `exec` (a file made executable) and `symlink-out` are kinds
 * of their own, always asked about (only a deny rule is stricter).
 */
export interface FsChange {
  /**
   * create: a new file held because it carries history; history: a ref move or reflog rewrite
   * (history.ts); exec: a file made executable; symlink-out: a new symlink leading out of the workdir;
   * new-repo: a new git repository (`.git` dir or pointer file), whose hooks and config would run
   * when the user works there (a `.git`, or a directory shaped like a git dir: a bare repository);
   * tool-config: a new file a host tool reads as config that runs a program (`.npmrc`, ...).
   */
  op: FsOp | "replace" | "create" | "history" | "exec" | "symlink-out" | "new-repo" | "tool-config";
  /** Relative to the workdir. */
  path: string;
  /** For a rename: where the content went (paired by content). */
  to?: string;
  detail?: string;
  /** What the host's entry was when the change-set was reviewed (facts.ts): size, sha256, mode. */
  before?: FileFacts;
  /** What the box left (for a rename: at `to`). */
  after?: FileFacts;
  /** A unified diff for a text file, bounded (approvers/diff.ts); raw box content: escape to show. */
  diff?: string;
  /** Why there is no diff: binary, too large, not a file. */
  diffNote?: string;
}

/** One side of a change: what an entry is, and for a file its size and content hash. */
export interface FileFacts {
  kind: "file" | "dir" | "symlink" | "missing" | "other";
  size?: number;
  sha256?: string;
  /** Permission bits, octal text ("644"). */
  mode?: string;
  /** A symlink's target. */
  target?: string;
}

/** What the broker asks a human about. Everything an approver shows comes from here. */
export interface GateRequest {
  id: string;
  box: string;
  kind: GateKind;
  /** One line: the command, "delete 2 files, overwrite 1", "CONNECT example.com:443". */
  summary: string;
  /** The working directory the action happens in. */
  cwd: string;
  /** Why it is gated, one line each. */
  why: string[];
  /** Who asked: gate-exec, claude-hook, codex-hook, egress, change-set. */
  via: string;
  command?: string;
  changes?: FsChange[];
  /** fs: a file (fourwall's, 0600) listing every change asked about, while the question is open. */
  listFile?: string;
  host?: string;
  port?: number;
  method?: string;
  /** Whether "always for this box" may be offered. */
  alwaysAllowed: boolean;
  /** ISO time of the request. */
  time: string;
}

/**
 * yes, no, always; or, for a change-set, yes to these paths only (the rest are kept, not applied):
 * what a per-file review (terminal, inbox) or an approver printing `{"approve": [paths]}` answers.
 */
export type ApproverAnswer = "yes" | "no" | "always" | { approve: string[] };

/** Someone (or something) that can say yes or no. `ask` must settle "no" on abort. */
export interface Approver {
  /** Shown in the audit log as `by`: terminal, approver-command, inbox. */
  readonly name: string;
  ask(request: GateRequest, signal: AbortSignal): Promise<ApproverAnswer>;
  close?(): Promise<void> | void;
  /** Called when another approver (or the timeout) settled a request this one was showing. */
  settled?(id: string, answer: GateAnswer): void;
}

export interface GateAnswer {
  decision: "allow" | "deny";
  /** policy | always | terminal | approver-command | inbox | timeout | no-approver | error */
  by: string;
  /** A sentence for the agent and the log. */
  reason: string;
  /** A change-set answered file by file: only these paths are allowed (decision "allow" if any). */
  paths?: string[];
}
