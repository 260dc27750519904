import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { WallError } from "../core/errors.js";
import { nativeHelperPath } from "../core/paths.js";
import { privateStateDir } from "../core/state-dir.js";
import type { Placeholder } from "../walls/filesystem/index.js";

/**
 * Leaving nothing behind, even when fourwall is SIGKILLed, and even with several boxes on one
 * workdir at once.
 *
 * The reaper is a tiny process in its own session, one per box, that lives as long as the box and
 * waits on a pipe from fourwall: "ok" when fourwall ends normally, end-of-file when it was killed.
 * Either way it then removes the run dir and the box's cgroups. It is native/fourwall-reaper.c
 * (one exec, the locks taken with flock(2)); the shell script below, with flock(1), does the same
 * where that helper is not built.
 *
 * Placeholders (read-only mount points for persistence files that do not exist yet) are shared by
 * every box on the same workdir: each reaper holds a shared flock on the workdir's lock file for
 * its box's whole life; a new placeholder is listed in the workdir's placeholder list; and only a
 * reaper that can take the lock exclusively — no other box is on this workdir — removes the listed
 * placeholders (each only if still what fourwall put there). A box never loses a placeholder its
 * mounts stand on because another box ended.
 */
export const REAPER_SCRIPT = `
trap '' INT TERM HUP QUIT
lock=$1 list=$2 run_dir=$3; shift 3
# the lock on the file still named $lock (the last reaper unlinks it while holding it)
while :; do
  exec 9>>"$lock"
  flock -s 9 || exit 1
  [ "$(stat -Lc %d:%i /proc/$$/fd/9)" = "$(stat -c %d:%i -- "$lock" 2>/dev/null)" ] && break
done
uid=
if [ -n "$FOURWALL_UIDS" ]; then
  # a uid of the box's own: the first whose lock nobody holds; held (fd 8) for the reaper's life,
  # so a box killed with fourwall frees it when its reaper ends, and no stale lock outlives them
  read -r uids_dir first count <<EOF_UIDS
$FOURWALL_UIDS
EOF_UIDS
  u=$first
  while [ "$u" -lt $((first + count)) ]; do
    exec 8>"$uids_dir/$u.lock"
    if flock -x -n 8; then uid=$u; break; fi
    u=$((u + 1))
  done
  [ -n "$uid" ] || exit 2
fi
echo "locked $uid"
IFS= read -r line
if [ "$line" != ok ]; then
  # killed: what a runtime left outside the box's process tree (a docker container) goes first
  sleep 0.2
  [ -f "$run_dir/on-kill" ] && sh "$run_dir/on-kill" >/dev/null 2>&1
fi
# (on a normal exit fourwall has removed these itself: builtin tests only, no process started)
for d in "$@"; do for t in 1 2 3 4 5 6 7 8 9 10; do [ -d "$d" ] || break; rmdir -- "$d" 2>/dev/null && break; sleep 0.2; done; done
[ -d "$run_dir" ] && rm -rf --one-file-system -- "$run_dir"
# squid's own dir (outside the run dir, so the run dir stays closed to squid's uid)
[ -n "$FOURWALL_REAP_ALSO" ] && [ -d "$FOURWALL_REAP_ALSO" ] && rm -rf --one-file-system -- "$FOURWALL_REAP_ALSO"
flock -x -n 9 || exit 0
if [ -s "$list" ]; then
  # Every path is data: one entry per line, "KIND PATH" with PATH's backslashes and newlines
  # escaped (encodeListPath); each is decoded with printf %b and used only inside double quotes,
  # never split or globbed. Files only while still what fourwall put there (empty, or "{}");
  # directories after, newest first (a later placeholder may stand inside an earlier one).
  decode() { p=$(printf '%bx' "$1"); p=\${p%x}; }
  dirs=
  while IFS= read -r line; do
    kind=\${line%% *} enc=\${line#* }
    if [ "$kind" = dir ]; then dirs="$enc
$dirs"; continue; fi
    decode "$enc"
    [ -f "$p" ] && [ ! -L "$p" ] || continue
    first= second=
    { IFS= read -r first; IFS= read -r second; } < "$p"
    if [ ! -s "$p" ] || { [ "$first" = "{}" ] && [ -z "$second" ]; }; then rm -f -- "$p"; fi
  done < "$list"
  printf '%s' "$dirs" | while IFS= read -r enc; do
    [ -n "$enc" ] || continue
    decode "$enc"
    [ -d "$p" ] && [ ! -L "$p" ] && rmdir -- "$p" 2>/dev/null
  done
fi
# the last box on this workdir: the list and the lock file go too (unlinked while held)
rm -f -- "$list" "$lock"
`;

/**
 * A path as one line of the placeholder list: backslashes and newlines escaped, so a name holding
 * a newline stays one entry; the reaper decodes it with printf %b (which knows only these two
 * escapes once every backslash is doubled).
 */
export const encodeListPath = (p: string): string => p.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");

export interface Reaper {
  /** fourwall is done with the box: the reaper cleans up; resolves when it has. */
  release(): Promise<void>;
}

/** Starts the box's reaper; resolves once it holds the workdir's shared lock. */
export async function startReaper(
  workdir: string,
  runDir: string,
  cgroupDirs: string[],
  /** Tests only: a shell script instead (the broken reaper the path tests must catch). */
  script?: string,
  /** Root mode: allocate the box a uid of its own from [first, first + count), held while the reaper lives. */
  uids?: { first: number; count: number },
  /** One more dir of the box's to remove with the run dir (squid's). */
  alsoRemove?: string,
): Promise<{ reaper: Reaper; list: string; uid?: number }> {
  const dir = privateStateDir("locks");
  const key = createHash("sha256").update(workdir).digest("hex").slice(0, 32);
  const lock = path.join(dir, `${key}.lock`);
  const list = path.join(dir, `${key}.placeholders`);
  const native = nativeHelperPath("reaper");
  const args = [lock, list, runDir, ...cgroupDirs];
  // argv[0] "fourwall-reaper" either way: the reaper of a workdir is found by its arguments
  const [program, argv] =
    script === undefined && existsSync(native)
      ? [native, args]
      : ["/bin/sh", ["-c", script ?? REAPER_SCRIPT, "fourwall-reaper", ...args]];
  const child: ChildProcess = spawn(program, argv, {
    ...(program === native ? { argv0: "fourwall-reaper" } : {}),
    detached: true,
    stdio: ["pipe", "pipe", "ignore"],
    env: {
      ...process.env,
      FOURWALL_UIDS: uids ? `${privateStateDir("uids")} ${uids.first} ${uids.count}` : "",
      FOURWALL_REAP_ALSO: alsoRemove ?? "",
    },
  });
  child.stdin!.on("error", () => {});
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const locked = await new Promise<string | undefined>((resolve) => {
    child.stdout!.once("data", (d: Buffer) => resolve(d.toString()));
    child.once("exit", () => resolve(undefined));
    child.once("error", () => resolve(undefined));
  });
  if (locked === undefined)
    throw uids
      ? new WallError(
          "isolation",
          `no free box uid in ${uids.first}-${uids.first + uids.count - 1} (one per running root box), or the reaper could not take the workdir's lock`,
          "bring some boxes down (fourwall ls), or pin one uid for all with isolation.rootModeUid",
        )
      : new WallError(
          "filesystem",
          "the reaper could not take the workdir's lock",
          "check that flock (util-linux) is installed",
        );
  const uid = /^locked (\d+)/.exec(locked)?.[1];
  child.stdout!.destroy();
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  return {
    list,
    uid: uid === undefined ? undefined : Number(uid),
    reaper: {
      async release() {
        child.ref(); // keep fourwall alive until the reaper has cleaned up
        child.stdin!.end("ok\n");
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 3000)))]);
        clearTimeout(timer);
      },
    },
  };
}

/**
 * Stands the placeholders (under the workdir's shared lock, held by the reaper). One that another
 * box made in the meantime is already standing: fine. A new one is added to the list the last
 * reaper out removes.
 */
export function standPlaceholders(placeholders: Placeholder[], list: string): void {
  for (const p of placeholders) {
    try {
      if (p.kind === "dir") mkdirSync(p.path, { mode: 0o755 });
      else writeFileSync(p.path, p.content, { flag: "wx", mode: 0o644 });
      appendFileSync(list, `${p.kind} ${encodeListPath(p.path)}\n`, { mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw new WallError(
        "filesystem",
        `cannot stand the read-only placeholder ${p.path}: ${(error as Error).message}`,
        "the workdir must be writable by you",
      );
    }
  }
}
