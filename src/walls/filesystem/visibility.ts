import path from "node:path";
import { isUnder } from "../../core/paths.js";
import type { HostView } from "./host-view.js";
import type { Mount } from "./mounts.js";

/** What the box sees at a path, per the mount plan: the host file behind it, or why nothing. */
export type BoxSight =
  | { seen: true; hostPath: string | undefined }
  | { seen: false; why: string; under: string };

/**
 * Which host file the box sees at `p` (pure): the last mount at or above `p` decides (later
 * mounts cover earlier ones). A tmpfs above `p` (private /tmp, the rebuilt HOME, a scratch dir)
 * means the box does not see the host's file there; a generated or covered file is not the host's.
 */
export function boxSight(mounts: readonly Mount[], p: string): BoxSight {
  let last: Mount | undefined;
  for (const m of mounts) if (isUnder(p, m.target)) last = m;
  if (!last) return { seen: false, why: "nothing is mounted there", under: "/" };
  switch (last.type) {
    case "bind":
      return { seen: true, hostPath: path.join(last.source, path.relative(last.target, p)) };
    case "tmpfs":
      return p === last.target
        ? { seen: true, hostPath: undefined }
        : { seen: false, why: last.why, under: last.target };
    case "proc":
    case "dev":
    case "file":
    case "symlink":
      return { seen: true, hostPath: undefined };
    case "empty-file":
      return { seen: false, why: last.why, under: last.target };
  }
}

/** `p` with symlinks of its last component followed on the host (at most 16 hops). */
export function followLinks(host: HostView, p: string): string {
  let at = p;
  for (let hops = 0; hops < 16 && host.kind(at) === "symlink"; hops++)
    at = path.resolve(path.dirname(at), host.readlink(at));
  return at;
}
