import {
  chmodSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { shellQuote } from "../../core/shell.js";
import { Applier, type ApplyHow, type HeldChange, opaqueDirs, readChangeSet } from "./changeset.js";
import { factsAt, factsOf, sameFacts } from "./facts.js";
import { openDir } from "./fsat.js";
import { layersDir, removeLayer } from "./layer.js";
import type { FsChange } from "./types.js";

/**
 * Nothing lost: a change-set that was not (all) applied — refused by a human or the policy,
 * unanswered, failed to apply, or the layer of a run whose fourwall was killed — is kept here
 * instead of deleted, for `fourwall changes ls | show | diff | apply | drop`.
 *
 * One entry = the box's frozen layer directory itself (upper/, work/), renamed into the store,
 * plus meta.json. The store is `kept/` inside fourwall's layers directory (layer.ts:
 * `/run/fourwall/layers/kept` as root, the user's own state dir otherwise), so it has every
 * protection a layer has: every directory 0700 and the launching user's (the box uid and other
 * users cannot walk to it; it holds what the box wrote: setuid files, hooks), hidden from a
 * user-mode box with the layers (--hide), on the same mount (a rename, atomic, also from the
 * reaper's shell; and a layers mount made nosuid,nodev covers the store too).
 */

export interface KeptChange extends FsChange {
  how: ApplyHow;
  /** Who said no (policy, terminal, inbox, approver-command, timeout, no-approver, apply-failed). */
  refusedBy: string;
}

export interface KeptChangeSet {
  id: string;
  box: string;
  workdir: string;
  /** When it was kept (ISO). */
  kept: string;
  /** One sentence: why it was not applied. */
  reason: string;
  /** The run was killed (or its review failed): the changes are read from the layer on first use; no host facts. */
  unreviewed?: boolean;
  /** Root mode: who owns what is written into the workdir (its owner, not root). */
  owner?: { uid: number; gid: number };
  changes: KeptChange[];
  /** New paths not yet in the workdir (a killed run's, or ones that failed to apply). */
  creates: string[];
}

/** An id names an entry, never a path. */
export const isKeptId = (id: string): boolean => /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/.test(id);

/** The store: 0700 and fourwall's own, or an error (never a weaker one). */
export function changesDir(): string {
  const dir = path.join(layersDir(), "kept");
  mkdirSync(dir, { mode: 0o700, recursive: true });
  const s = lstatSync(dir);
  if (!s.isDirectory() || s.uid !== process.getuid!())
    throw new Error(`${dir} is not fourwall's own directory`);
  if ((s.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  return dir;
}

const entryDir = (id: string) => {
  if (!isKeptId(id)) throw new Error(`${JSON.stringify(id)} is not a change-set id (fourwall changes ls)`);
  return path.join(changesDir(), id);
};

const writeMeta = (dir: string, meta: KeptChangeSet) =>
  writeFileSync(path.join(dir, "meta.json.tmp"), `${JSON.stringify(meta, null, 1)}\n`, { mode: 0o600 });
const commitMeta = (dir: string) => renameSync(path.join(dir, "meta.json.tmp"), path.join(dir, "meta.json"));

/**
 * Moves a frozen layer (its directory: upper/, work/) into the store with its record. Returns the
 * id. Throws when it cannot (the caller names the layer where it stays).
 */
export function keepLayer(layerDir: string, meta: Omit<KeptChangeSet, "id" | "kept">): KeptChangeSet {
  const id = path.basename(layerDir);
  const dir = entryDir(id);
  const full: KeptChangeSet = { id, kept: new Date().toISOString(), ...meta };
  writeMeta(layerDir, full);
  renameSync(layerDir, dir);
  chmodSync(dir, 0o700);
  commitMeta(dir);
  return full;
}

/**
 * The reaper's line for a killed run (sh, run as fourwall's uid when fourwall is gone): a layer
 * the box wrote into is frozen (fourwall's, 0700, like freezeLayer) and renamed into the store
 * with a record saying it was never reviewed; an empty one is removed.
 */
export function keepOnKillLine(
  layer: { dir: string; upper: string; work: string },
  meta: Omit<KeptChangeSet, "id" | "kept" | "changes" | "creates" | "unreviewed">,
): string {
  const id = path.basename(layer.dir);
  const dest = path.join(changesDir(), id);
  const record = JSON.stringify({ id, kept: "", ...meta, unreviewed: true, changes: [], creates: [] });
  const q = shellQuote;
  const uid = process.getuid!();
  const gid = process.getgid!();
  return [
    `if rmdir -- ${q(layer.upper)} 2>/dev/null; then chmod -R u+rwx -- ${q(layer.dir)}; rm -rf --one-file-system -- ${q(layer.dir)};`,
    `elif [ -d ${q(layer.dir)} ]; then chown ${uid}:${gid} -- ${q(layer.dir)} ${q(layer.upper)} ${q(layer.work)};`,
    `chmod 700 -- ${q(layer.dir)} ${q(layer.upper)} ${q(layer.work)};`,
    `printf '%s\\n' ${q(record)} > ${q(path.join(layer.dir, "meta.json"))} && chmod 600 -- ${q(path.join(layer.dir, "meta.json"))};`,
    `mv -T -- ${q(layer.dir)} ${q(dest)}; fi`,
  ].join(" ");
}

/** Reads an entry's record (and, for a killed run, reads its layer once and records what it holds). */
export function loadKept(id: string, helper: string): KeptChangeSet & { dir: string; upper: string } {
  const dir = entryDir(id);
  const s = lstatSync(dir);
  if (!s.isDirectory() || s.uid !== process.getuid!()) throw new Error(`${dir} is not fourwall's own`);
  const meta = JSON.parse(readFileSync(path.join(dir, "meta.json"), "utf8")) as KeptChangeSet;
  const upper = path.join(dir, "upper");
  if (meta.unreviewed && meta.changes.length === 0 && meta.creates.length === 0 && existsSync(meta.workdir)) {
    // Never reviewed: what the box did, against the workdir as it is now. Every change to an
    // existing file is shown with no "before" (no record of what the human would have seen).
    const set = readChangeSet(upper, meta.workdir, opaqueDirs(upper, helper), { default: "ask", rules: [] });
    // what the box left is known (the layer is frozen); what the host had is not
    meta.changes = set.held.map(({ decision: _d, ...c }) => ({
      ...c,
      refusedBy: "unreviewed",
      ...(c.how === "none"
        ? {}
        : { after: c.how === "delete" ? { kind: "missing" as const } : factsOf(upper, c.to ?? c.path) }),
    }));
    meta.creates = set.creates;
    if (!meta.kept) meta.kept = new Date(s.mtimeMs).toISOString();
    writeMeta(dir, meta);
    commitMeta(dir);
  }
  return { ...meta, id, dir, upper };
}

export function listKept(helper: string): KeptChangeSet[] {
  const root = changesDir();
  return readdirSync(root)
    .filter(isKeptId)
    .flatMap((id) => {
      try {
        return [loadKept(id, helper)];
      } catch {
        return [];
      }
    })
    .map(({ dir: _d, upper: _u, ...m }) => m)
    .sort((a, b) => a.kept.localeCompare(b.kept));
}

/** Removes an entry (a `rm -rf` by fd; a layer's work/ may hold a directory without permissions). */
export function dropKept(id: string): string | undefined {
  const dir = entryDir(id);
  if (!existsSync(dir)) return `no change-set ${id}`;
  return removeLayer(dir);
}

/**
 * Drops every change-set of a workdir at or under `dir` (prove's throwaway home: its gate probes
 * are refused on purpose, and what they leave is not the user's to review). Returns the ids.
 */
export function dropKeptUnder(dir: string): string[] {
  const root = changesDir();
  const dropped: string[] = [];
  for (const id of readdirSync(root).filter(isKeptId)) {
    let workdir: unknown;
    try {
      workdir = (JSON.parse(readFileSync(path.join(root, id, "meta.json"), "utf8")) as { workdir?: unknown })
        .workdir;
    } catch {
      continue; // not a record (yet): not ours to judge
    }
    if (typeof workdir !== "string" || !(workdir === dir || workdir.startsWith(`${dir}/`))) continue;
    const failed = dropKept(id);
    if (failed) throw new Error(`change-set ${id}: ${failed}`);
    dropped.push(id);
  }
  return dropped;
}

/** Does `p` (as typed) select this change: its path or its rename target, or a directory above them. */
const selects = (p: string, rel: string | undefined) => {
  const norm = p.replace(/^\.\/+/, "").replace(/\/+$/, "");
  return rel !== undefined && (rel === norm || rel.startsWith(`${norm}/`));
};

export interface ApplyKeptResult {
  applied: (FsChange | { op: "create"; path: string })[];
  /** Not applied: the host file moved on since the review (or no record of it), without --force. */
  refused: { path: string; why: string }[];
  failures: string[];
  /** Paths asked for that name nothing in the change-set. */
  unknown: string[];
  /** The change-set is now empty and was removed. */
  dropped: boolean;
}

/**
 * `fourwall changes apply ID [PATH…]`: the user's yes to kept changes (all, or those under the
 * given paths). Each lands exactly as an approved change at the end of a run (the Applier: by fd,
 * modes masked, no setuid/setgid/sticky) — unless the host entry is not the one recorded at the
 * review (edited since, or a killed run with no record): then it is refused unless `force`.
 * What was applied leaves the record; an empty change-set is removed.
 */
export function applyKept(
  id: string,
  o: { helper: string; paths?: string[]; force?: boolean },
): ApplyKeptResult {
  const kept = loadKept(id, o.helper);
  const want = (rel: string, to?: string) =>
    !o.paths?.length || o.paths.some((p) => selects(p, rel) || selects(p, to));
  const unknown = (o.paths ?? []).filter(
    (p) =>
      !kept.changes.some((c) => selects(p, c.path) || selects(p, c.to)) &&
      !kept.creates.some((c) => selects(p, c)),
  );
  const result: ApplyKeptResult = { applied: [], refused: [], failures: [], unknown, dropped: false };
  const workRoot = openDir(kept.workdir);
  const hostMovedOn = (c: KeptChange): string | undefined => {
    if (o.force || c.how === "none") return undefined; // "none": git history, described only
    const now = factsAt(workRoot, c.path);
    if (c.to !== undefined && factsAt(workRoot, c.to).kind !== "missing")
      return `${c.to} exists on the host now`;
    if (!c.before)
      return now.kind === "missing" ? undefined : "no record of the host file (the run was not reviewed)";
    return sameFacts(c.before, now) ? undefined : "the host file changed since the review";
  };
  // New symlinks out and new repositories inside new trees: left out unless chosen themselves.
  const skip = new Set(
    kept.changes
      .filter(
        (c) =>
          (c.op === "symlink-out" || c.op === "new-repo" || c.op === "tool-config") &&
          kept.creates.some((n) => selects(n, c.path)),
      )
      .map((c) => c.path),
  );
  const applier = new Applier({ upper: kept.upper, workdir: kept.workdir, owner: kept.owner, skip });
  const remaining: KeptChange[] = [];
  const remainingCreates: string[] = [];
  try {
    for (const rel of kept.creates) {
      if (!want(rel)) {
        remainingCreates.push(rel);
        continue;
      }
      const why = o.force || factsAt(workRoot, rel).kind === "missing" ? undefined : "exists on the host now";
      if (why) {
        result.refused.push({ path: rel, why });
        remainingCreates.push(rel);
        continue;
      }
      const before = applier.failures.length;
      applier.create(rel);
      if (applier.failures.length > before) remainingCreates.push(rel);
      else result.applied.push({ op: "create", path: rel });
    }
    for (const c of kept.changes) {
      if (!want(c.path, c.to)) {
        remaining.push(c);
        continue;
      }
      const why = hostMovedOn(c);
      if (why) {
        result.refused.push({ path: c.path, why });
        remaining.push(c);
        continue;
      }
      const before = applier.failures.length;
      const held: HeldChange = { ...c, decision: "allow" };
      applier.apply(held);
      if (applier.failures.length > before) remaining.push(c);
      else result.applied.push(c);
    }
  } finally {
    applier.close();
    closeSync(workRoot);
  }
  result.failures = applier.failures;
  if (remaining.length === 0 && remainingCreates.length === 0) {
    const failure = dropKept(id);
    if (failure) result.failures.push(failure);
    result.dropped = failure === undefined;
  } else {
    const { dir, upper: _u, ...meta } = kept;
    writeMeta(dir, { ...meta, unreviewed: false, changes: remaining, creates: remainingCreates });
    commitMeta(dir);
  }
  return result;
}
