import { statSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "./paths.js";

/**
 * The files that make one build of fourwall: the bundle and the native helpers, relative to the
 * package root. native/fourwall-run.c keys its daemon by the same list, in the same order.
 */
export const BUILD_FILES = [
  "dist/fourwall.js",
  ...["run", "pty", "netns", "drop", "overlay", "pause", "splice", "enter", "bridge", "reaper"].map(
    (n) => `native/build/fourwall-${n}`,
  ),
] as const;

/** FNV-1a, 64 bits, as 16 hex digits: a name, not a defence (the socket's dir is private). */
export function fnv1a64(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, "utf8")) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, "0");
}

/**
 * This build's key: the identity of each build file (device, inode, size, mtime in ns; "-" when
 * missing), hashed. Identity, not content: the client computes it on every `run` without reading
 * the bundle, and a rebuilt, upgraded or second copy of fourwall has new inodes or mtimes. The box
 * daemon's sockets carry it, so a client reaches only a daemon of its own build.
 */
export function buildKey(root = packageRoot()): string {
  let text = "";
  for (const file of BUILD_FILES) {
    const s = statSync(path.join(root, file), { bigint: true, throwIfNoEntry: false });
    text += s
      ? `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs / 1_000_000_000n}.${s.mtimeNs % 1_000_000_000n};`
      : "-;";
  }
  return fnv1a64(text);
}
