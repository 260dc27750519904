// The pause at the action, host side: starts native/fourwall-pause's supervisor, answers the
// syscalls it reports (policy, then a human through the broker), and after a yes applies exactly
// the approved change from the copy-on-write layer to the host at once (pause-apply.ts).
import { spawn } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import type { AuditLog } from "../../audit/log.js";
import type { Broker } from "./broker.js";
import { summarise } from "./changeset.js";
import {
  type EntryFacts,
  isAtOrUnder,
  judgePause,
  type PauseExpect,
  type PauseNotice,
  parsePauseLine,
  pauseGroupOf,
  pauseSyscallName,
  reviewKeysOf,
} from "./pause.js";
import { AtOnceApply, recordAsked } from "./pause-apply.js";
import { buildPauseFilter } from "./pause-filter.js";
import type { GatePolicy } from "./schema.js";

/** Inside the box, next to the proxy's socket (the run dir's net/ is bound at /run/fourwall). */
export const PAUSE_IN_BOX = {
  helper: "/run/fourwall/pause-helper",
  socket: "/run/fourwall/pause.sock",
  program: "/run/fourwall/pause.bpf",
} as const;

/** The command prefix that installs the pause inside the box (before the command, after the bridge). */
export const pauseInstallArgs = (): string[] => [
  PAUSE_IN_BOX.helper,
  "install",
  PAUSE_IN_BOX.socket,
  PAUSE_IN_BOX.program,
  "--",
];

/** How long fourwall looks in the layer for the change a human approved (the syscall runs after the yes). */
const APPLY_WITHIN_MS = 2000;
const POLL_MS = 5;

export interface PauseOptions {
  box: string;
  /** The native helper (host path); bound into the box at PAUSE_IN_BOX.helper. */
  helper: string;
  /** The real workdir: the layer's lower dir, and the workdir's path inside the box. */
  workdir: string;
  upper: string;
  /** The run dir's net/ (bound into the box at /run/fourwall). */
  netDir: string;
  /**
   * Persistent boxes: where `fourwall exec` hands its command's listener (in the box's 0700 state
   * dir on the host, never in the box); the filter program is written next to it as pause.bpf.
   */
  execSocket?: string;
  policy: GatePolicy["fs"];
  broker: Broker;
  audit: AuditLog;
  /** Owner of what fourwall writes into the workdir (root mode). */
  owner?: { uid: number; gid: number };
  notify: (line: string) => void;
  /**
   * The workdir paths this run made (the live layer put them on the host, unchanged since): not
   * pre-existing files, so a call on them continues at once.
   */
  madeInRun?: () => ReadonlySet<string>;
}

export interface PauseSession {
  /** (op, path[, to]) of every change a human approved at the action: the review at exit does not ask again. */
  approved: { op: string; path: string; to?: string }[];
  /** After the box has exited: ends the supervisor, withdraws open questions, waits for the applies. */
  close(): Promise<void>;
}

/**
 * Starts the supervisor and writes what the box's install half reads (the filter program, the
 * mount point of the helper) into net/. Resolves once the supervisor listens.
 */
export async function startPause(o: PauseOptions): Promise<PauseSession> {
  writeFileSync(path.join(o.netDir, "pause.bpf"), buildPauseFilter(), { mode: 0o444 });
  writeFileSync(path.join(o.netDir, "pause-helper"), "", { mode: 0o444 }); // bwrap binds the helper over it
  if (o.execSocket)
    writeFileSync(path.join(path.dirname(o.execSocket), "pause.bpf"), buildPauseFilter(), { mode: 0o600 });
  const supervise = ["supervise", path.join(o.netDir, "pause.sock"), o.workdir];
  const child = spawn(o.helper, o.execSocket ? [...supervise, o.execSocket] : supervise, {
    stdio: ["pipe", "pipe", "inherit"],
  });
  child.stdin!.on("error", () => {}); // the supervisor gone: the exit path says so
  const approved: { op: string; path: string; to?: string }[] = [];
  const inFlight = new Set<Promise<void>>();
  const withdraw = new AbortController();
  const exited = new Promise<void>((resolve) => {
    child.once("close", () => resolve());
    child.once("error", () => resolve());
  });
  let listening: () => void = () => {};
  const ready = new Promise<boolean>((resolve) => {
    listening = () => resolve(true);
    void exited.then(() => resolve(false));
  });

  /**
   * Trees asked about once: a delete by a process walking a pre-existing directory (pauseGroupOf)
   * asks "delete DIR/ (N entries)?" and the answer, yes or no, settles every later delete at or
   * under DIR for this box's life that the policy would ask about (a policy allow or deny still
   * decides on its own). Nothing outside DIR, and nothing but a delete, is ever covered.
   */
  const trees = new Map<string, Promise<boolean>>();
  const treeAnswer = (
    n: PauseNotice,
  ): { dir: string; answer: Promise<boolean>; first: boolean } | undefined => {
    const target = n.paths.find((p) => p.role === "target");
    if ((n.sys !== "unlink" && n.sys !== "rmdir") || !target?.inWorkdir) return undefined;
    const covering = [...trees.keys()]
      .filter((dir) => isAtOrUnder(target.path, dir))
      .sort((a, b) => a.length - b.length)[0];
    if (covering !== undefined) return { dir: covering, answer: trees.get(covering)!, first: false };
    const dir = pauseGroupOf(n);
    if (dir === undefined) return undefined;
    const count = countUnder(o.workdir, dir);
    const asking = o.broker
      .decide(
        {
          kind: "fs",
          summary: `delete ${dir}/ (${count})`,
          changes: [
            {
              op: "delete",
              path: dir,
              detail: `directory, ${count}: the box is removing this tree; the answer covers every delete under ${dir}/ for the rest of this box's life`,
            },
          ],
          cwd: o.workdir,
          why: [
            `the box is removing a directory that existed before the run (first: ${pauseSyscallName(n)} of ${target.path}); its deletes wait for this one answer (no: each fails with EACCES, the files stay)`,
          ],
          via: "pause",
        },
        "ask",
        withdraw.signal,
      )
      .then((r) => r.decision === "allow");
    trees.set(dir, asking);
    return { dir, answer: asking, first: true };
  };
  const answer = (id: string, yes: boolean) => {
    if (!child.stdin!.destroyed) child.stdin!.write(`${id} ${yes ? "c" : "d"}\n`);
  };
  const onNotice = async (n: PauseNotice) => {
    const made = o.madeInRun?.();
    if (made && n.paths.every((p) => !p.exists || (p.inWorkdir && made.has(p.path))))
      return answer(n.id, true);
    const verdict = judgePause(n, o.policy);
    if (verdict.decision === "allow") return answer(n.id, true);
    // the host entries as asked about, before the call can continue: what an approval covers
    const recorded = verdict.decision === "ask" ? recordAsked(o.workdir, o.upper, verdict.expect) : new Map();
    // A tree being removed (rm -r) is asked about once, as a whole (groups, below).
    const tree = verdict.decision === "ask" ? treeAnswer(n) : undefined;
    if (tree) {
      const yes = await tree.answer;
      answer(n.id, yes);
      if (!tree.first)
        o.audit.write({
          box: o.box,
          wall: "gate",
          event: "pause-tree",
          tree: tree.dir,
          path: verdict.changes[0]?.path,
          decision: yes ? "allow" : "deny",
        });
      if (!yes) return;
      approved.push(...reviewKeysOf(verdict));
      return applyWhenSeen(o, verdict.expect, recorded);
    }
    const asked = verdict.changes.filter((c) => c.decision !== "allow");
    const result = await o.broker.decide(
      {
        kind: "fs",
        // one change (the usual case) is named: the line fourwall prints when nobody can answer says which file
        summary: asked.length === 1 ? `${asked[0]!.op} ${asked[0]!.path}` : summarise(asked),
        changes: asked.map(({ decision: _d, ...c }) => c),
        cwd: o.workdir,
        why: [
          `the box is changing a file that existed before the run: its ${pauseSyscallName(n)} waits for the answer (no: it fails with EACCES, the file stays)`,
        ],
        via: "pause",
      },
      verdict.decision,
      withdraw.signal,
    );
    const yes = result.decision === "allow";
    answer(n.id, yes);
    if (!yes || verdict.decision !== "ask") return;
    approved.push(...reviewKeysOf(verdict));
    await applyWhenSeen(o, verdict.expect, recorded);
  };
  let done = false; // every box process has exited: the supervisor ends on its own
  const lines = createInterface({ input: child.stdout! });
  lines.on("line", (line) => {
    const parsed = parsePauseLine(line);
    if (!parsed) return;
    if (parsed.kind === "event") {
      if (parsed.event === "listening") listening();
      return;
    }
    if (parsed.kind === "done") {
      done = true;
      const { kind: _k, ...counts } = parsed;
      o.audit.write({ box: o.box, wall: "gate", event: "pause-summary", ...counts });
      return;
    }
    const job = onNotice(parsed.notice).catch((error: unknown) => {
      answer(parsed.notice.id, false); // fail closed
      o.notify(`fourwall gate: the pause failed (${(error as Error).message}); the call was refused`);
    });
    inFlight.add(job);
    void job.finally(() => inFlight.delete(job));
  });

  if (!(await ready)) throw new Error(`the pause supervisor ${o.helper} did not start`);
  let closing = false;
  // Gone while the box runs: its paused calls fail with ENOSYS (closed), and the human should know why.
  void exited.then(() => {
    if (!closing && !done)
      o.notify(
        "fourwall gate: the pause supervisor ended early; the box's destructive calls now fail (ENOSYS)",
      );
  });
  return {
    approved,
    async close() {
      closing = true;
      withdraw.abort();
      child.stdin!.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
      await Promise.all([...inFlight]);
    },
  };
}

/**
 * The syscall runs after the yes, in the layer: look for its effect there for a short while, and
 * apply it to the host only if the layer shows exactly the approved change on the object asked
 * about (AtOnceApply). Anything else — not seen in time, a symlink or a tree in its place, another
 * file, more mode bits — stays in the layer for the review at exit, classified like any change.
 */
async function applyWhenSeen(
  o: PauseOptions,
  expect: readonly PauseExpect[],
  asked: ReadonlyMap<string, EntryFacts>,
): Promise<void> {
  if (expect.length === 0) return;
  const once = new AtOnceApply({ upper: o.upper, workdir: o.workdir, owner: o.owner }, expect, asked);
  const end = Date.now() + APPLY_WITHIN_MS;
  let failure: string | undefined;
  while (Date.now() < end) {
    try {
      if (once.tryApply()) return;
      failure = undefined;
    } catch (error) {
      failure = (error as Error).message;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  if (failure)
    o.notify(
      `fourwall gate: could not apply ${expect[0]!.path} at once (${failure}); it waits for the review`,
    );
}

/** "N files" under a workdir directory, for the question (a display count: capped, never followed through symlinks). */
function countUnder(workdir: string, dir: string): string {
  try {
    const n = readdirSync(path.join(workdir, dir), { recursive: true }).length;
    return n === 1 ? "1 entry" : `${n} entries`;
  } catch {
    return "its entries";
  }
}
