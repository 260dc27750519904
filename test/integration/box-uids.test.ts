/**
 * A uid of its own per root-launched box (issue 12): two boxes running at once get different host
 * uids, and box A's uid (what an escape from A's namespaces would be on the host) can neither
 * signal, ptrace nor read /proc of box B's processes, nor enter B's proxy-socket directory. The same
 * checks against two boxes that share one uid (isolation.rootModeUid pinned, as every root box was
 * before) see each of those holes. Root only: an ordinary user's boxes are that user.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { makeFixture, runDirs, startInBox, waitFor } from "../helpers/box.js";

const root = process.getuid?.() === 0;

/** The host pid of the box's `sleep MARKER`, and its uid. */
function sleeper(marker: string): { pid: number; uid: number } | undefined {
  const pid = Number(spawnSync("pgrep", ["-x", "-f", `sleep ${marker}`], { encoding: "utf8" }).stdout.trim());
  if (!pid) return undefined;
  const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  return { pid, uid };
}

/** What `uid` manages against process `pid` and directory `dir` (expected: nothing). One line per success. */
function attemptsAs(uid: number, pid: number, dir: string): string {
  const script = `
kill -0 ${pid} 2>/dev/null && echo "REACHED: signal"
cat /proc/${pid}/environ >/dev/null 2>&1 && echo "REACHED: /proc/pid/environ"
ls /proc/${pid}/fd >/dev/null 2>&1 && echo "REACHED: /proc/pid/fd"
# PTRACE_SEIZE: attaches without stopping the process (a stopped box would not end on SIGTERM)
python3 -c 'import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); sys.exit(0 if l.ptrace(0x4206,${pid},0,0)==0 else 1)' && echo "REACHED: ptrace"
ls ${dir} >/dev/null 2>&1 && echo "REACHED: its proxy socket dir"
true`;
  return spawnSync("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sh", "-c", script], {
    encoding: "utf8",
  }).stdout;
}

async function twoBoxes(flags: string[]) {
  const fx = makeFixture("root");
  const markers = [4000, 4001].map((m) => String(m + Math.floor(Math.random() * 3000) * 2));
  const before = new Set(runDirs());
  const boxes = markers.map((m) => startInBox(fx, flags, `echo ready; exec sleep ${m}`));
  try {
    for (const b of boxes) assert.ok(await waitFor(() => b.out().includes("ready"), 60_000), "box started");
    const [a, b] = markers.map(sleeper);
    assert.ok(a && b, "both boxes' processes on the host");
    // B's run dir: the new one whose reaper is not A's (both are in the temp dir, 0711)
    const fresh = runDirs().filter((d) => !before.has(d));
    const netDirs = fresh.map((d) => path.join(os.tmpdir(), d, "net"));
    const bNet = netDirs.find((d) => {
      const owner = Number(spawnSync("stat", ["-c", "%u", d], { encoding: "utf8" }).stdout.trim());
      return owner === b.uid;
    });
    return { a, b, bNet: bNet ?? netDirs[1]!, attempts: attemptsAs(a.uid, b.pid, bNet ?? netDirs[1]!) };
  } finally {
    for (const box of boxes) box.child.kill("SIGTERM");
    await Promise.all(boxes.map((b) => b.closed));
  }
}

describe("a uid of its own per root box", { skip: !root && "root only" }, () => {
  it("two root boxes at once: different uids; A's uid cannot signal, ptrace or read B", async () => {
    const { a, b, attempts } = await twoBoxes([]);
    assert.notEqual(a.uid, b.uid, "two boxes, two uids");
    for (const u of [a.uid, b.uid]) assert.ok(u >= 70000 && u < 71000, `${u} in the documented range`);
    assert.equal(attempts, "", `box A's uid reached box B:\n${attempts}`);
  });

  it("two boxes pinned to one uid (as before): the same checks see the holes", async () => {
    const fx = makeFixture("root");
    const policy = path.join(fx.base, "pinned.yaml");
    writeFileSync(policy, "isolation:\n  rootModeUid: 70999\n");
    const { a, b, attempts } = await twoBoxes(["--policy", policy]);
    assert.equal(a.uid, b.uid);
    assert.match(attempts, /REACHED: signal/);
    assert.match(attempts, /REACHED: \/proc\/pid\/environ/);
    assert.match(attempts, /REACHED: its proxy socket dir/);
  });
});
