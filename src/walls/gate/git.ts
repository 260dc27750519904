import { strictest } from "./rules.js";
import type { Decision } from "./schema.js";

/**
 * Git as git sees it: the change-set's view of `.git/refs/**`, `.git/packed-refs`, `.git/HEAD` and
 * `.git/logs/**` is a list of files, but what matters is what happened to the history. This module
 * compares the refs before the run (the real workdir) with the refs after it (the layer over it)
 * and judges each ref move the way a reviewer would:
 *   - a fast-forward (the new commit descends from the old) flows, as does a new branch or tag, a
 *     symbolic switch of HEAD (checkout), and a reflog that was only appended to;
 *   - a branch moved backwards or sideways, a deleted ref, a moved tag, a reflog rewritten or
 *     truncated ask, each described as what it is ("branch main moved backwards …");
 *   - a move that brings commits the host's history never had (made in this run) asks when the
 *     run's other changes were held (the commits may carry exactly what was refused: a denied edit
 *     committed must not reach the branch), or when those commits change files that existed
 *     before and that the policy does not allow changing (the edit committed, then undone in the
 *     working tree, would otherwise slip past as history);
 *   - anything git cannot decide (missing or corrupt objects, no git) asks.
 * Pure: the files come through `GitFiles`, ancestry through `GitOracle` (real git in git-oracle.ts,
 * fakes in unit tests).
 */

/** One side of the repository's `.git` directory; paths are relative to it. */
export interface GitFiles {
  /** A regular file's bytes, or undefined (absent, a directory, unreadable). */
  read(rel: string): Buffer | undefined;
  /** The entries of a directory ([] when absent). */
  list(rel: string): { name: string; dir: boolean }[];
}

/** What only git can answer, against the objects of the real repository plus the layer's. */
export interface GitOracle {
  /** Is commit `a` an ancestor of (or the same as) `b`? undefined: git could not tell. */
  isAncestor(a: string, b: string): boolean | undefined;
  /** How many commits are reachable from `from` but from none of `not`. */
  count(from: string, not: readonly string[]): number | undefined;
  /** The paths of `base`'s tree that `tip`'s tree changes or removes (additions are left out). */
  changedPaths(base: string, tip: string): { path: string; op: "overwrite" | "delete" }[] | undefined;
}

export type RefValue = { sha: string } | { symbolic: string } | { invalid: string };

/** One ref whose value the run changed, judged. */
export interface RefMove {
  ref: string;
  from?: RefValue;
  to?: RefValue;
  decision: Decision;
  /** What happened, for the human: "branch main moved backwards from abc1234 to def5678 (drops 3 commits)". */
  detail: string;
}

/** One reflog the run changed, judged. */
export interface LogChange {
  /** Relative to `.git/logs` ("HEAD", "refs/heads/main"). */
  log: string;
  decision: Decision;
  detail: string;
}

export interface GitVerdict {
  moves: RefMove[];
  logs: LogChange[];
  /** Changes of files that re-parent or cut commits (grafts, shallow): `log` is their path in .git. */
  views: LogChange[];
  /** Refs whose entry in packed-refs differs (the file that carries them). */
  packedChanged: string[];
  /** Some other change of the run (outside git's bookkeeping) was not allowed outright. */
  othersHeld: boolean;
}

export interface GitInput {
  before: GitFiles;
  after: GitFiles;
  oracle: GitOracle;
  othersHeld: boolean;
  /** The policy's decision for a change of a workdir path (the commits' own changes are judged by it). */
  pathDecision: (rel: string, op: "overwrite" | "delete") => Decision;
}

const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

export function parseRef(text: string): RefValue {
  const t = text.replace(/\n$/, "");
  if (SHA.test(t)) return { sha: t };
  const m = /^ref: (refs\/\S+|HEAD)$/.exec(t);
  if (m) return { symbolic: m[1]! };
  return { invalid: t.slice(0, 60) };
}

/** packed-refs: "<sha> <ref>" lines, "^<sha>" peeled lines and a "#" header. */
export function parsePackedRefs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#") || line.startsWith("^")) continue;
    const sp = line.indexOf(" ");
    const sha = line.slice(0, sp);
    // An unparsable line is kept as an invalid value: it cannot be judged, so it asks.
    out.set(sp > 0 ? line.slice(sp + 1) : line, SHA.test(sha) ? sha : `invalid:${sha}`);
  }
  return out;
}

export interface RefTable {
  loose: Map<string, RefValue>;
  packed: Map<string, string>;
}

export function readRefTable(files: GitFiles): RefTable {
  const loose = new Map<string, RefValue>();
  const walk = (rel: string) => {
    for (const e of files.list(rel)) {
      const r = `${rel}/${e.name}`;
      if (e.dir) walk(r);
      else if (!e.name.endsWith(".lock")) {
        const b = files.read(r);
        if (b) loose.set(r, parseRef(b.toString("utf8")));
      }
    }
  };
  walk("refs");
  const head = files.read("HEAD");
  if (head) loose.set("HEAD", parseRef(head.toString("utf8")));
  const packed = files.read("packed-refs");
  return { loose, packed: packed ? parsePackedRefs(packed.toString("utf8")) : new Map() };
}

/** The value git uses: the loose file wins over packed-refs. */
export function effective(t: RefTable, ref: string): RefValue | undefined {
  const loose = t.loose.get(ref);
  if (loose) return loose;
  const p = t.packed.get(ref);
  if (p === undefined) return undefined;
  return p.startsWith("invalid:") ? { invalid: p } : { sha: p };
}

function resolve(t: RefTable, ref: string): string | undefined {
  let v = effective(t, ref);
  for (let depth = 0; v && "symbolic" in v && depth < 5; depth++) v = effective(t, v.symbolic);
  return v && "sha" in v ? v.sha : undefined;
}

const short = (sha: string) => sha.slice(0, 12);

const shown = (v: RefValue | undefined) =>
  !v ? "nothing" : "sha" in v ? short(v.sha) : "symbolic" in v ? v.symbolic : `unreadable "${v.invalid}"`;

/** "branch main", "tag v1", "remote-tracking branch origin/main", "HEAD". */
export function refLabel(ref: string): string {
  if (ref.startsWith("refs/heads/")) return `branch ${ref.slice(11)}`;
  if (ref.startsWith("refs/tags/")) return `tag ${ref.slice(10)}`;
  if (ref.startsWith("refs/remotes/")) return `remote-tracking branch ${ref.slice(13)}`;
  return ref;
}

const same = (a: RefValue | undefined, b: RefValue | undefined) =>
  JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** How many changed refs are judged one by one (beyond: all ask). */
export const MAX_JUDGED = 256;

const CANNOT_TELL = "git could not tell (missing or corrupt objects, or no git on the host)";

export function judgeHistory(input: GitInput): GitVerdict {
  const { oracle } = input;
  const before = readRefTable(input.before);
  const after = readRefTable(input.after);
  const oldTips = [
    ...new Set([
      ...[...before.loose.values()].flatMap((v) => ("sha" in v ? [v.sha] : [])),
      ...[...before.packed.values()].filter((s) => SHA.test(s)),
    ]),
  ];
  const oldHead = resolve(before, "HEAD");

  /** A move to `to` that may bring commits the host's history never had. */
  const judgeNew = (
    label: string,
    verb: string,
    to: string,
    base: string | undefined,
  ): [Decision, string] => {
    const fresh = oracle.count(to, oldTips);
    if (fresh === undefined) return ["ask", `${label} ${verb} ${short(to)}: ${CANNOT_TELL}`];
    if (fresh === 0) return ["allow", `${label} ${verb} ${short(to)}`];
    const what = `${label} ${verb} ${short(to)}, ${plural(fresh, "commit")} made in this run`;
    if (input.othersHeld)
      return ["ask", `${what}; other changes of this run are held, and these commits may carry them`];
    if (!base) return ["allow", what];
    const paths = oracle.changedPaths(base, to);
    if (paths === undefined) return ["ask", `${what}: ${CANNOT_TELL}`];
    const gated = paths
      .map((p) => ({ ...p, decision: input.pathDecision(p.path, p.op) }))
      .filter((p) => p.decision !== "allow");
    if (gated.length === 0) return ["allow", what];
    const decision = strictest(
      gated.map((p) => p.decision),
      "ask",
    );
    const list = gated
      .slice(0, 3)
      .map((p) => `${p.op} ${p.path}`)
      .join(", ");
    return [decision, `${what}; they ${list}${gated.length > 3 ? ", …" : ""} (not allowed without a yes)`];
  };

  const judge = (ref: string, from: RefValue | undefined, to: RefValue | undefined): [Decision, string] => {
    const label = refLabel(ref);
    if (!to) return ["ask", `${label} deleted (was ${shown(from)})`];
    if ("invalid" in to) return ["ask", `${label} now holds ${shown(to)}, which git cannot read`];
    // Replace refs change what git shows as any commit's history: never created or moved unasked.
    if (ref.startsWith("refs/replace/"))
      return [
        "ask",
        `${label} ${from ? "changed" : "created"}: git would show another object in place of ${ref.slice(13, 25)}`,
      ];
    // HEAD (and a remote's HEAD) name a branch; a branch or tag that turns symbolic takes another
    // ref's history as its own, which is a rewrite.
    if ("symbolic" in to)
      return ref === "HEAD" || ref.endsWith("/HEAD")
        ? ["allow", `${label} now points at ${to.symbolic}`]
        : [
            "ask",
            `${label} made a symbolic ref to ${to.symbolic} (it would show that ref's history as its own)`,
          ];
    if (from && "invalid" in from) return ["ask", `${label} was ${shown(from)}, now ${short(to.sha)}`];
    if (!from || "symbolic" in from)
      return judgeNew(label, from ? "detached at" : "created at", to.sha, oldHead);
    if (ref.startsWith("refs/tags/"))
      return [
        "ask",
        `${label} moved from ${short(from.sha)} to ${short(to.sha)} (a tag is not meant to move)`,
      ];
    const ff = oracle.isAncestor(from.sha, to.sha);
    if (ff === undefined)
      return ["ask", `${label} moved from ${short(from.sha)} to ${short(to.sha)}: ${CANNOT_TELL}`];
    if (ff) return judgeNew(label, `fast-forwarded from ${short(from.sha)} to`, to.sha, from.sha);
    const dropped = oracle.count(from.sha, [to.sha]);
    const back = oracle.isAncestor(to.sha, from.sha);
    const how = back ? "moved backwards" : "moved to a commit that does not descend from it,";
    const drops = dropped === undefined ? "drops commits" : `drops ${plural(dropped, "commit")}`;
    return ["ask", `${label} ${how} from ${short(from.sha)} to ${short(to.sha)} (${drops})`];
  };

  const moves: RefMove[] = [];
  const names = new Set([
    ...before.loose.keys(),
    ...before.packed.keys(),
    ...after.loose.keys(),
    ...after.packed.keys(),
  ]);
  const changed = [...names].sort().filter((ref) => !same(effective(before, ref), effective(after, ref)));
  // Each judgement is a git process or two: a box that makes thousands of refs must not stall the
  // review for minutes. Past the limit nothing is judged one by one: every move asks.
  const tooMany = changed.length > MAX_JUDGED;
  for (const ref of changed) {
    const from = effective(before, ref);
    const to = effective(after, ref);
    const [decision, detail]: [Decision, string] = tooMany
      ? ["ask", `${refLabel(ref)} changed (${changed.length} refs changed: too many to judge one by one)`]
      : judge(ref, from, to);
    moves.push({ ref, from, to, decision, detail });
  }
  // A switch (HEAD → another branch) goes with that branch: were the branch held and the switch
  // applied, the host's HEAD would point at a branch it does not have.
  for (const m of moves) {
    if (!m.to || !("symbolic" in m.to)) continue;
    const target = moves.find((t) => t.ref === (m.to as { symbolic: string }).symbolic);
    if (target && target.decision !== "allow") {
      m.decision = strictest([m.decision, target.decision], "allow");
      m.detail = `${m.detail}, which is held`;
    }
  }

  // Files that rewrite what git shows as history without touching a ref: grafts and the shallow
  // list cut or re-parent commits. Any change asks.
  const views: LogChange[] = [];
  for (const rel of VIEW_FILES) {
    const old = input.before.read(rel);
    const now = input.after.read(rel);
    if ((old === undefined) !== (now === undefined) || (old && now && !old.equals(now)))
      views.push({
        log: rel,
        decision: "ask",
        detail: `${rel} ${now ? (old ? "changed" : "created") : "deleted"}: it changes which commits git shows as history`,
      });
  }

  const packedChanged = [...new Set([...before.packed.keys(), ...after.packed.keys()])].filter(
    (ref) => before.packed.get(ref) !== after.packed.get(ref),
  );

  const logs: LogChange[] = [];
  const logNames = new Set([...listFiles(input.before, "logs"), ...listFiles(input.after, "logs")]);
  for (const name of [...logNames].sort()) {
    const rel = `logs/${name}`;
    const old = input.before.read(rel);
    const now = input.after.read(rel);
    if (old && now && old.equals(now)) continue;
    const label = `reflog of ${name === "HEAD" ? "HEAD" : refLabel(name)}`;
    if (!now) logs.push({ log: name, decision: "ask", detail: `${label} deleted` });
    else if (!old) logs.push({ log: name, decision: "allow", detail: `${label} started` });
    else if (now.length >= old.length && now.subarray(0, old.length).equals(old))
      logs.push({ log: name, decision: "allow", detail: `${label} appended to` });
    else
      logs.push({
        log: name,
        decision: "ask",
        detail: `${label} rewritten: ${entries(old)} entries before, ${entries(now)} now, not an append`,
      });
  }
  return { moves, logs, views, packedChanged, othersHeld: input.othersHeld };
}

/** `.git` files that change git's view of the history without being refs (relative to `.git`). */
export const VIEW_FILES = ["shallow", "info/grafts"] as const;

const entries = (b: Buffer) => b.toString("utf8").split("\n").filter(Boolean).length;

function listFiles(files: GitFiles, rel: string): string[] {
  const out: string[] = [];
  const walk = (r: string, shownAs: string) => {
    for (const e of files.list(r)) {
      const name = shownAs ? `${shownAs}/${e.name}` : e.name;
      if (e.dir) walk(`${r}/${e.name}`, name);
      else out.push(name);
    }
  };
  walk(rel, "");
  return out;
}

const under = (name: string, prefix: string) =>
  prefix === "" || name === prefix || name.startsWith(`${prefix}/`);

/**
 * The decision the history gives a change of `rel` (relative to the workdir), or undefined when
 * `rel` is not git's bookkeeping. A file carries every ref (or reflog) it holds: a loose ref file
 * its ref, packed-refs the refs whose packed entry changed, a directory everything under it.
 */
export function historyDecision(v: GitVerdict, rel: string): Decision | undefined {
  if (rel !== ".git" && !rel.startsWith(".git/")) return undefined;
  const p = rel.slice(5);
  const anyAsk = v.moves.some((m) => m.decision !== "allow");
  const of = (ds: Decision[]) => strictest(ds, "allow");
  const refsUnder = (prefix: string) => v.moves.filter((m) => under(m.ref, prefix)).map((m) => m.decision);
  const logsUnder = (prefix: string) => v.logs.filter((l) => under(l.log, prefix)).map((l) => l.decision);
  if (p === "HEAD") return of(refsUnder("HEAD"));
  if ((VIEW_FILES as readonly string[]).includes(p) || p === "info")
    return of(
      v.views.filter((w) => (p === "info" ? w.log.startsWith("info/") : w.log === p)).map((w) => w.decision),
    );
  if (p === "packed-refs")
    return of(v.moves.filter((m) => v.packedChanged.includes(m.ref)).map((m) => m.decision));
  if (p === "refs" || p.startsWith("refs/")) return of(refsUnder(p));
  // HEAD's reflog records whatever HEAD pointed at during the run: it goes with every ref move.
  if (p === "logs/HEAD") return of([...logsUnder("HEAD"), ...v.moves.map((m) => m.decision)]);
  if (p === "logs" || p.startsWith("logs/")) {
    const sub = p === "logs" ? "" : p.slice(5);
    return of([...logsUnder(sub), ...refsUnder(sub), ...(sub === "" ? v.moves.map((m) => m.decision) : [])]);
  }
  // The index is the next commit: it may stage what was refused, or the tree of a refused move.
  if (p === "index") return anyAsk || v.othersHeld ? "ask" : "allow";
  return undefined;
}
