import { closeSync, readdirSync, readFileSync } from "node:fs";

/** O_CLOEXEC as /proc/self/fdinfo prints it (octal flags). */
const O_CLOEXEC = 0o2000000;

/**
 * Closes every descriptor fourwall inherited beyond stdin, stdout and stderr, first thing at
 * start: one the caller held open without close-on-exec (`exec 7</root/secret` in the launching
 * shell) would otherwise pass through every process fourwall spawns, into the box. Node and libuv
 * open all their own descriptors close-on-exec (and Node marks inherited 0-15 so at start, which
 * leaves higher ones such as 42 open across exec), so at start those without it are exactly the
 * inherited ones (and the IPC channel of a Node parent, which is kept). The native launchers mark
 * the same again before they exec (native/common.h).
 */
export function closeInheritedFds(): void {
  const keep = new Set([0, 1, 2]);
  const channel = Number(process.env.NODE_CHANNEL_FD);
  if (Number.isInteger(channel)) keep.add(channel);
  let names: string[];
  try {
    names = readdirSync("/proc/self/fd");
  } catch {
    return; // no /proc: the launchers' own close_range still stands
  }
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || keep.has(fd)) continue;
    let flags: number;
    try {
      const m = /^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
      if (!m) continue;
      flags = Number.parseInt(m[1]!, 8);
    } catch {
      continue; // gone already (the directory listing's own descriptor)
    }
    if ((flags & O_CLOEXEC) !== 0) continue;
    try {
      closeSync(fd);
    } catch {
      // not ours to close after all: nothing more to do
    }
  }
}
