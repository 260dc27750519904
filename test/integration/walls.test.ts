/**
 * The isolation and filesystem walls, attacked from inside a real box: one catalogue of checks
 * (test/helpers/wall-checks.ts) run as a matrix of runtime (namespaces, gVisor) × launch mode
 * (root, an ordinary user) × the whole box or a deliberately broken one (test/helpers/weak-box.ts),
 * which each check must catch: a check that cannot fail proves nothing. gVisor's cells are skipped,
 * with the reason, where runsc is not installed. The docker runtime's walls run in docker.test.ts
 * (its daemon and image are that file's to start).
 */
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { which } from "../../src/core/paths.js";
import { type Fixture, MODES, makeFixture, type Result, runInBox, USER_UID } from "../helpers/box.js";
import { type HostCanaries, startHostCanaries } from "../helpers/host-canaries.js";
import {
  type Cell,
  notApplicable,
  WALL_CHECKS,
  type WallCheck,
  type WallRuntime,
} from "../helpers/wall-checks.js";

const RUNSC = which("runsc", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");

/** How each runtime's cells run: whether they can here, and how long a box may take. */
const RUNTIMES: { runtime: WallRuntime; skip: string | false; timeoutMs: number }[] = [
  { runtime: "namespaces", skip: false, timeoutMs: 40_000 },
  {
    runtime: "gvisor",
    skip: RUNSC ? false : "runsc is not installed (apt-get install runsc, or npm run setup)",
    timeoutMs: 90_000,
  },
];

let canaries: HostCanaries;
before(async () => {
  canaries = await startHostCanaries("walls");
});
after(() => canaries.close());

/** Box runs that several checks share (WallCheck.sharedRun), by cell, weakening and key. */
const sharedRuns = new Map<string, Promise<{ fx: Fixture; r: Result }>>();

/** `check`'s script in a fresh fixture and box of `cell` (whole, or without `weaken`), or the run it shares. */
function attack(check: WallCheck, cell: Cell, timeoutMs: number, weaken?: string[]) {
  const run = async () => {
    const fx = makeFixture(cell.mode);
    return { fx, r: await inBox(fx, cell, check.script(fx, cell, canaries), timeoutMs, weaken) };
  };
  if (!check.sharedRun) return run();
  const key = [cell.runtime, cell.mode, weaken?.join("+") ?? "whole", check.sharedRun].join("/");
  if (!sharedRuns.has(key)) sharedRuns.set(key, run());
  return sharedRuns.get(key)!;
}

/** The script in `cell`'s box: fourwall's own, or with `weaken`, the broken one of the same runtime. */
function inBox(
  fx: Fixture,
  cell: Cell,
  script: string,
  timeoutMs: number,
  weaken?: string[],
): Promise<Result> {
  const command = ["/bin/sh", "-c", script];
  if (weaken)
    return runInBox(fx, command, {
      weaken,
      ...(cell.runtime === "namespaces" ? {} : { weakRuntime: cell.runtime }),
      timeoutMs,
    });
  return runInBox(fx, command, { flags: ["-r", cell.runtime], timeoutMs });
}

// Two cells at a time, two boxes in each: the boxes mostly wait (runsc's start, sleeping children).
// The whole matrix is one suite: its own timeout, not the per-test one of scripts/test.sh.
const matrix = { concurrency: 2, timeout: 30 * 60_000 };
describe("the wall catalogue, runtime × launch mode × whole or broken box", matrix, () => {
  for (const { runtime, skip, timeoutMs } of RUNTIMES)
    for (const mode of MODES) {
      const cell: Cell = { runtime, mode };
      const who = mode === "root" ? "launched as root" : `launched as uid ${USER_UID}`;
      describe(`walls hold: ${runtime}, ${who}`, { skip, concurrency: 2 }, () => {
        for (const check of WALL_CHECKS) {
          const why = notApplicable(check, cell);
          if (why) {
            it(check.name, (t) => t.skip(why));
            continue;
          }
          it(check.name, async () => {
            const { fx, r } = await attack(check, cell, timeoutMs);
            assert.notEqual(r.code, null, `the box timed out\n${r.stdout}\n${r.stderr}`);
            assert.doesNotMatch(r.stderr, /fourwall: the /, `fourwall failed: ${r.stderr}`);
            assert.equal(check.hole(r, fx, cell), undefined, `${check.name}\n${r.stdout}\n${r.stderr}`);
          });
          const weaken = check.weaken[runtime]?.[mode];
          if (weaken) {
            it(`${check.name} — the check sees the hole in a box without ${weaken.join(" + ")}`, async () => {
              const { fx, r } = await attack(check, cell, timeoutMs, weaken);
              assert.notEqual(
                r.code,
                null,
                `the broken box timed out: nothing is shown\n${r.stdout}\n${r.stderr}`,
              );
              // a broken box that did not start shows no hole: it must not pass for one
              assert.doesNotMatch(r.stderr, /^\s+at .*file:/m, `the broken box crashed\n${r.stderr}`);
              assert.notEqual(
                check.hole(r, fx, cell),
                undefined,
                `the broken box was not caught\n${r.stdout}\n${r.stderr}`,
              );
            });
          }
        }

        it("writes in the workdir land on the host, owned by the workdir's owner", async () => {
          const fx = makeFixture(mode);
          const r = await inBox(
            fx,
            cell,
            "echo made-in-box > out.txt && mkdir -p sub && echo y > sub/f && cat out.txt",
            timeoutMs,
          );
          assert.equal(r.code, 0, r.stderr);
          assert.equal(readFileSync(path.join(fx.workdir, "out.txt"), "utf8"), "made-in-box\n");
          for (const made of ["out.txt", "sub/f"])
            assert.equal(statSync(path.join(fx.workdir, made)).uid, mode === "root" ? 0 : USER_UID);
        });
      });
    }
});
