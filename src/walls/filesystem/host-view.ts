import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, statSync } from "node:fs";

export type EntryKind = "file" | "dir" | "symlink" | "socket" | "other" | "missing";

/**
 * What the planners may ask about the host's filesystem. The real one reads the disk; unit tests
 * give a fake tree, so planning stays pure and testable without root.
 */
export interface HostView {
  /** The kind of the entry itself (a symlink is "symlink"). */
  kind(path: string): EntryKind;
  /** The kind of what the path leads to, following symlinks. */
  targetKind(path: string): EntryKind;
  readdir(path: string): string[];
  readlink(path: string): string;
  owner(path: string): { uid: number; gid: number } | undefined;
  /**
   * The first `maxBytes` of a regular file (a git config, a `.git` pointer file), or undefined when
   * it is not a readable regular file. Bounded: the planners never slurp a file the box planted.
   */
  readText(path: string, maxBytes: number): string | undefined;
}

function kindOf(stat: {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isSocket(): boolean;
}): EntryKind {
  if (stat.isSymbolicLink()) return "symlink";
  if (stat.isDirectory()) return "dir";
  if (stat.isFile()) return "file";
  if (stat.isSocket()) return "socket";
  return "other";
}

export const realHost: HostView = {
  kind(path) {
    try {
      const stat = lstatSync(path, { throwIfNoEntry: false });
      return stat ? kindOf(stat) : "missing";
    } catch {
      return "missing"; // not searchable by us: not reachable from the box either (same uid or less)
    }
  },
  targetKind(path) {
    try {
      const stat = statSync(path, { throwIfNoEntry: false });
      return stat ? kindOf(stat) : "missing";
    } catch {
      return "missing";
    }
  },
  readdir(path) {
    try {
      return readdirSync(path).sort();
    } catch {
      return [];
    }
  },
  readlink: (path) => readlinkSync(path),
  owner(path) {
    try {
      const stat = statSync(path, { throwIfNoEntry: false });
      return stat ? { uid: stat.uid, gid: stat.gid } : undefined;
    } catch {
      return undefined;
    }
  },
  readText(path, maxBytes) {
    try {
      if (!statSync(path).isFile()) return undefined; // never block on a FIFO
      const fd = openSync(path, "r");
      try {
        const buffer = Buffer.alloc(maxBytes);
        const n = readSync(fd, buffer, 0, maxBytes, 0);
        return buffer.subarray(0, n).toString("utf8");
      } finally {
        closeSync(fd);
      }
    } catch {
      return undefined;
    }
  },
};
