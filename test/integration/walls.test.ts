/**
 * The isolation and filesystem walls, attacked from inside a real box: one catalogue of checks
 * (test/helpers/wall-checks.ts) run as a matrix of runtime (namespaces, gVisor, docker+runsc) ×
 * launch mode (root, an ordinary user) × the whole box or a deliberately broken one
 * (test/helpers/weak-box.ts), which each check must catch: a check that cannot fail proves nothing.
 * Docker runs as root only: its daemon is root and fourwall refuses to drive it for an ordinary
 * user (that refusal is tested in docker.test.ts). A runtime's cells are skipped, with the reason,
 * where it is not installed here. Checks that share a box (WallCheck.sharedRun) run in one box per
 * cell and weakening, so a column costs a handful of boxes, not one per check.
 */
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { which } from "../../src/core/paths.js";
import {
  type Fixture,
  MODES,
  type Mode,
  makeFixture,
  type Result,
  runInBox,
  USER_UID,
} from "../helpers/box.js";
import {
  type DockerBoxes,
  dockerdUnavailable,
  dockerFixture,
  startDockerBoxes,
} from "../helpers/docker-box.js";
import { type HostCanaries, startHostCanaries } from "../helpers/host-canaries.js";
import {
  type Cell,
  notApplicable,
  WALL_CHECKS,
  type WallCheck,
  type WallRuntime,
} from "../helpers/wall-checks.js";

const RUNSC = which("runsc", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");

/** How each runtime's cells run: whether they can here (per mode), and how long a box may take. */
const RUNTIMES: { runtime: WallRuntime; skip: (mode: Mode) => string | false; timeoutMs: number }[] = [
  { runtime: "namespaces", skip: () => false, timeoutMs: 40_000 },
  {
    runtime: "gvisor",
    skip: () => (RUNSC ? false : "runsc is not installed (apt-get install runsc, or npm run setup)"),
    timeoutMs: 90_000,
  },
  {
    runtime: "docker",
    skip: (mode) =>
      mode === "user"
        ? "docker runs as root only: its daemon is root, so fourwall refuses an ordinary user (docker.test.ts)"
        : (dockerdUnavailable() ?? false),
    timeoutMs: 90_000,
  },
];

/** FOURWALL_WALL_RUNTIMES=docker,gvisor runs those columns only (node 20's name patterns do not select suites). */
const ONLY = process.env.FOURWALL_WALL_RUNTIMES?.split(",");
const skipOf = (runtime: (typeof RUNTIMES)[number], mode: Mode) =>
  ONLY && !ONLY.includes(runtime.runtime) ? "not in FOURWALL_WALL_RUNTIMES" : runtime.skip(mode);

let canaries: HostCanaries;
before(async () => {
  canaries = await startHostCanaries("walls");
});
/** The docker daemon and the tools image, started on first use (only docker's cells need them). */
let docker: Promise<DockerBoxes> | undefined;
const dockerBoxes = () => {
  docker ??= startDockerBoxes();
  return docker;
};
after(async () => {
  canaries.close();
  await (await docker?.catch(() => undefined))?.stop();
});

/** A fixture for `cell`: docker's workdir belongs to an unprivileged user (the box runs as its owner). */
const fixture = (cell: Cell): Fixture =>
  cell.runtime === "docker" ? dockerFixture() : makeFixture(cell.mode);

/** The weakening a check asks of `cell` (undefined: the whole box). */
const weakeningOf = (check: WallCheck, cell: Cell) => check.weaken[cell.runtime]?.[cell.mode];
const same = (a: string[] | undefined, b: string[] | undefined) => a?.join("+") === b?.join("+");

/** Runs of shared boxes (WallCheck.sharedRun), by cell, weakening and key. */
const sharedRuns = new Map<string, Promise<{ fx: Fixture; r: Result; sections: Map<WallCheck, number> }>>();
const SECTION = "@@fourwall-wall-check";

/**
 * `check`'s script in a fresh fixture and box of `cell` (whole, or without `weaken`); a check with
 * a sharedRun key runs in the one box of its key, cell and weakening, and is judged on its section.
 */
async function attack(check: WallCheck, cell: Cell, timeoutMs: number, weaken?: string[]) {
  if (!check.sharedRun) {
    const fx = fixture(cell);
    return { fx, r: await inBox(fx, cell, check.script(fx, cell, canaries), timeoutMs, weaken) };
  }
  const key = [cell.runtime, cell.mode, weaken?.join("+") ?? "whole", check.sharedRun].join("/");
  if (!sharedRuns.has(key)) {
    const members = WALL_CHECKS.filter(
      (c) =>
        c.sharedRun === check.sharedRun &&
        !notApplicable(c, cell) &&
        (weaken === undefined || same(weakeningOf(c, cell), weaken)),
    );
    sharedRuns.set(key, sharedRun(members, cell, timeoutMs, weaken));
  }
  const { fx, r, sections } = await sharedRuns.get(key)!;
  const at = sections.get(check)!;
  const part = r.stdout.split(new RegExp(`^${SECTION} \\d+@@$`, "m"))[at + 1] ?? "";
  return { fx, r: { ...r, stdout: part } };
}

/** One box running the members' scripts one after the other (an identical script once), each section marked. */
async function sharedRun(members: WallCheck[], cell: Cell, timeoutMs: number, weaken?: string[]) {
  const fx = fixture(cell);
  const scripts: string[] = [];
  const sections = new Map<WallCheck, number>();
  for (const c of members) {
    const script = c.script(fx, cell, canaries);
    if (!scripts.includes(script)) scripts.push(script);
    sections.set(c, scripts.indexOf(script));
  }
  const whole = scripts.map((s, i) => `echo '${SECTION} ${i}@@'\n( ${s}\n)`).join("\n");
  // each script gets the time a box of its own would have had
  return { fx, r: await inBox(fx, cell, whole, timeoutMs * scripts.length, weaken), sections };
}

/** The script in `cell`'s box: fourwall's own, or with `weaken`, the broken one of the same runtime. */
async function inBox(
  fx: Fixture,
  cell: Cell,
  script: string,
  timeoutMs: number,
  weaken?: string[],
): Promise<Result> {
  const command = ["/bin/sh", "-c", script];
  const d = cell.runtime === "docker" ? await dockerBoxes() : undefined;
  if (weaken)
    return runInBox(fx, command, {
      weaken,
      ...(cell.runtime === "namespaces" ? {} : { weakRuntime: cell.runtime }),
      ...(d ? { weakFlags: d.imageFlags, env: d.env } : {}),
      timeoutMs,
    });
  return runInBox(fx, command, {
    flags: ["-r", cell.runtime, ...(d?.imageFlags ?? [])],
    ...(d ? { env: d.env } : {}),
    timeoutMs,
  });
}

/** Who owns what the box writes in the workdir: the workdir's owner (docker's is unprivileged). */
const workdirOwner = (cell: Cell) => (cell.mode === "root" && cell.runtime !== "docker" ? 0 : USER_UID);

// Two cells at a time, two boxes in each: the boxes mostly wait (runsc's start, sleeping children).
// The whole matrix is one suite: its own timeout, not the per-test one of scripts/test.sh.
const matrix = { concurrency: 2, timeout: 30 * 60_000 };
describe("the wall catalogue, runtime × launch mode × whole or broken box", matrix, () => {
  for (const column of RUNTIMES)
    for (const mode of MODES) {
      const { runtime, timeoutMs } = column;
      const cell: Cell = { runtime, mode };
      const who = mode === "root" ? "launched as root" : `launched as uid ${USER_UID}`;
      describe(`walls hold: ${runtime}, ${who}`, { skip: skipOf(column, mode), concurrency: 2 }, () => {
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
          const weaken = weakeningOf(check, cell);
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
          const fx = fixture(cell);
          const r = await inBox(
            fx,
            cell,
            "echo made-in-box > out.txt && mkdir -p sub && echo y > sub/f && cat out.txt",
            timeoutMs,
          );
          assert.equal(r.code, 0, r.stderr);
          assert.equal(readFileSync(path.join(fx.workdir, "out.txt"), "utf8"), "made-in-box\n");
          for (const made of ["out.txt", "sub/f"])
            assert.equal(statSync(path.join(fx.workdir, made)).uid, workdirOwner(cell));
        });
      });
    }
});
