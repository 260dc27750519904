import path from "node:path";
import type { EntryKind, HostView } from "../../src/walls/filesystem/host-view.js";

/**
 * An in-memory host for the planners: paths ending in "/" are directories, "->target" makes a
 * symlink, "=socket" a socket; parents are implied. `contents` gives files their text (a path
 * listed there exists as a file even when `entries` does not name it).
 */
export function fakeHost(
  entries: string[],
  owners: Record<string, number> = {},
  contents: Record<string, string> = {},
): HostView {
  const kinds = new Map<string, EntryKind>([["/", "dir"]]);
  entries = [...entries, ...Object.keys(contents)];
  const links = new Map<string, string>();
  for (const raw of entries) {
    let entry = raw;
    let kind: EntryKind = "file";
    if (entry.includes("->")) {
      const [p, target] = entry.split("->") as [string, string];
      entry = p;
      kind = "symlink";
      links.set(path.resolve(p), target);
    } else if (entry.endsWith("=socket")) {
      entry = entry.slice(0, -"=socket".length);
      kind = "socket";
    } else if (entry.endsWith("/")) kind = "dir";
    const full = path.resolve(entry);
    kinds.set(full, kind);
    for (let dir = path.dirname(full); !kinds.has(dir); dir = path.dirname(dir)) kinds.set(dir, "dir");
  }
  const resolveLinks = (p: string): string => {
    const target = links.get(p);
    return target === undefined ? p : resolveLinks(path.resolve(path.dirname(p), target));
  };
  return {
    kind: (p) => kinds.get(path.resolve(p)) ?? "missing",
    targetKind: (p) => kinds.get(resolveLinks(path.resolve(p))) ?? "missing",
    readdir: (dir) =>
      [...kinds.keys()]
        .filter((p) => p !== "/" && path.dirname(p) === path.resolve(dir))
        .map((p) => path.basename(p))
        .sort(),
    readlink: (p) => links.get(path.resolve(p)) ?? "",
    owner: (p) =>
      kinds.has(path.resolve(p))
        ? { uid: owners[path.resolve(p)] ?? 0, gid: owners[path.resolve(p)] ?? 0 }
        : undefined,
    readText: (p, maxBytes) =>
      kinds.get(path.resolve(p)) === "file"
        ? (contents[path.resolve(p)] ?? "").slice(0, maxBytes)
        : undefined,
  };
}
