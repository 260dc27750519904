/**
 * The native launchers (fourwall-drop, fourwall-overlay) hand on descriptors 3 up to
 * FOURWALL_LAUNCH_FDS_END (native/common.h) and mark every other one close-on-exec: the
 * namespaces runtime's setup pipes must all lie below that bound, or bwrap would lose one.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";

const ROOT = path.resolve(import.meta.dirname, "../../..");

test("the namespaces runtime's setup pipes lie below the launchers' bound", () => {
  const header = readFileSync(path.join(ROOT, "native/common.h"), "utf8");
  const end = Number(/#define FOURWALL_LAUNCH_FDS_END (\d+)/.exec(header)?.[1]);
  assert.ok(end > 3, "the bound is defined");
  const runtime = readFileSync(path.join(ROOT, "src/runtimes/namespaces.ts"), "utf8");
  const fds = [...runtime.matchAll(/^const (\w+_FD) = (\d+);/gm)].map((m) => [m[1]!, Number(m[2])] as const);
  assert.ok(fds.length >= 5, "SECCOMP_FD, STATUS_FD, BLOCK_FD, READY_FD, STDERR_FD");
  for (const [name, fd] of fds) assert.ok(fd >= 3 && fd < end, `${name} = ${fd} must be in 3..${end - 1}`);
});
