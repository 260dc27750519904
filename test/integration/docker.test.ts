/**
 * What only `--runtime docker` has: the exit status through the docker client, its refusals (a
 * root-owned workdir, an ordinary user), the tiny default image built on first use, and what a
 * SIGKILLed fourwall leaves (no container, no gate layer mounted on the host, no run dir). Run as
 * root against the docker daemon the host already runs (when it is fit for fourwall) or a private
 * one started here and removed after. The walls themselves are attacked in the wall catalogue
 * (walls.test.ts: docker is a column of its matrix, whole box and broken box), the egress wall and
 * the real clients in egress-box.test.ts, and `fourwall prove -r docker` in prove.test.ts.
 * The uid-65534 mode is refused by design (the daemon is root; rootless Docker is out of scope):
 * that refusal is tested, nothing else runs as 65534.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import { after, before, describe, it } from "node:test";
import {
  type Fixture,
  FOURWALL,
  fixtureBases,
  makeFixture,
  type Result,
  runDirs,
  sh,
  waitFor,
} from "../helpers/box.js";
import {
  type DockerBoxes,
  dockerdUnavailable,
  dockerFixture as fixture,
  fourwallContainers,
  startDockerBoxes,
} from "../helpers/docker-box.js";

const skip = dockerdUnavailable() ?? false;
let boxes: DockerBoxes | undefined;

before(async () => {
  if (skip) return;
  boxes = await startDockerBoxes();
});
after(async () => {
  await boxes?.stop();
});

const D = () => ({ flags: ["-r", "docker", ...boxes!.imageFlags], timeoutMs: 60_000, env: boxes!.env });
const run = (fx: Fixture, script: string, flags: string[] = []): Promise<Result> => {
  const o = D();
  return sh(fx, script, { ...o, flags: [...o.flags, ...flags] });
};

describe("docker: the box's life (root)", { skip }, () => {
  it("passes the command's exit status", async () => {
    const fx = fixture();
    const r = await run(fx, "exit 7");
    assert.equal(r.code, 7, r.stderr);
  });
});

describe("docker: refusals", { skip }, () => {
  it("refuses a root-owned workdir (exit 125, the fix named): the box must not run as root", async () => {
    const fx = makeFixture("root");
    const r = await run(fx, "true");
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, /owned by root/);
    assert.match(r.stderr, /chown/);
  });

  it("refuses fourwall run by an ordinary user (uid 65534) with exit 125 and the fix", async () => {
    const fx = makeFixture("user");
    const r = await run(fx, "true");
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, /run fourwall as root/);
  });

  it("runs the tiny default image (built on first use) and leaves no container, no mounted gate layer and no run dir behind when fourwall is killed with SIGKILL", async () => {
    const fx = fixture();
    const marker = String(4000 + Math.floor(Math.random() * 4000));
    const before = new Set(runDirs());
    // no --image: fourwall's own busybox + socat image
    const child = spawn(process.execPath, [FOURWALL, "run", "-r", "docker", "--", "sleep", marker], {
      cwd: fx.workdir,
      env: { ...fx.env, DOCKER_HOST: boxes!.host },
      stdio: "ignore",
    });
    const host = boxes!.host;
    // this file's boxes only: the daemon may be the whole run's, with other files' boxes on it
    const mine = () => fourwallContainers(host, fixtureBases());
    assert.ok(await waitFor(() => mine().length > 0, 20_000), "the container started");
    // the gate's copy-on-write layer, mounted on the host for the daemon (in this box's run dir)
    const layers = () =>
      readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .filter((l) => / overlay .*upperdir=upper,workdir=work/.test(l) && l.includes("/workdir "));
    const myLayers = layers();
    assert.equal(myLayers.length >= 1, true, "the gate layer is mounted while the box runs");
    const dirs = runDirs().filter((d) => !before.has(d));
    child.kill("SIGKILL");
    assert.ok(await waitFor(() => mine().length === 0, 20_000), `left behind: ${mine().join(", ")}`);
    assert.ok(
      await waitFor(() => layers().every((l) => !myLayers.includes(l)), 10_000),
      "the gate layer is unmounted",
    );
    assert.ok(await waitFor(() => runDirs().every((d) => !dirs.includes(d)), 10_000), "the run dir is gone");
  });

  it("leaves no container behind", () => {
    assert.deepEqual(fourwallContainers(boxes!.host, fixtureBases()), []);
  });
});

/**
 * Docker boxes run as the workdir owner's uid (no per-box uid: see docs/THREAT-MODEL.md); what makes
 * that safe is that no path leads to a docker box's layer but root's. While box A holds an edit of
 * a pre-existing file in its layer, the workdir's owner on the host (uid 65534: /proc/PID/root of
 * every process, the layers directory, the run dirs) and another docker box of the same owner
 * cannot read it; root, probing the same paths, can (the probe finds what is there).
 */
describe("docker: the layer is out of reach of the workdir's owner and of other docker boxes", {
  skip,
}, () => {
  for (const engine of ["runsc", "runc"] as const)
    it(
      engine === "runsc"
        ? "the owner uid and another docker box of the same owner cannot read box A's layer"
        : "under runc (FOURWALL_DOCKER_RUNTIME=runc, the broken box) the owner uid reaches it through /proc/PID/root",
      async () => {
        const fx = fixture();
        const mark = `box-edit-${process.pid}-${Date.now()}`;
        const a = spawn(
          process.execPath,
          [
            FOURWALL,
            "run",
            "-r",
            "docker",
            ...boxes!.imageFlags,
            "--approver",
            "exit 0",
            "--",
            "sh",
            "-c",
            `echo ${mark} > README.md && echo edited && sleep 60`,
          ],
          {
            cwd: fx.workdir,
            env: { ...fx.env, DOCKER_HOST: boxes!.host, FOURWALL_DOCKER_RUNTIME: engine },
            stdio: ["ignore", "pipe", "pipe"],
          },
        );
        let out = "";
        a.stdout.on("data", (d) => (out += d));
        const closed = new Promise((resolve) => a.on("close", resolve));
        try {
          assert.ok(await waitFor(() => out.includes("edited"), 60_000), "box A edited README.md");
          const probe = `for p in /proc/[0-9]*; do cat "$p/root${fx.workdir}/README.md"; done; cat /run/fourwall/layers/*/upper/README.md /tmp/fourwall-*/workdir/README.md; true`;
          const asOwner = spawnSync(
            "setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", probe],
            {
              encoding: "utf8",
              stdio: ["ignore", "pipe", "ignore"],
            },
          );
          const asRoot = spawnSync("sh", ["-c", probe], {
            encoding: "utf8",
            stdio: ["ignore", "pipe", "ignore"],
          });
          assert.ok(asRoot.stdout.includes(mark), "root finds the edit through the same paths");
          if (engine === "runc") {
            assert.ok(asOwner.stdout.includes(mark), "runc: the box's processes are the owner's on the host");
            return;
          }
          assert.ok(!asOwner.stdout.includes(mark), "the workdir's owner reached box A's layer");
          const other = fixture();
          const b = await run(
            other,
            `for p in /proc/[0-9]*; do cat "$p/root${fx.workdir}/README.md"; done 2>/dev/null; cat ${fx.workdir}/README.md /run/fourwall/*/README.md 2>/dev/null; true`,
          );
          assert.equal(b.code, 0, b.stderr);
          assert.ok(!b.stdout.includes(mark), "another docker box reached box A's layer");
        } finally {
          a.kill("SIGTERM");
          await closed;
        }
      },
    );
});

// the image builds' temp dirs go too (another process on the machine may be building one right
// now: a leak is a dir that stays)
after(async () => {
  if (skip) return;
  const left = () => readdirSync(os.tmpdir()).filter((n) => n.startsWith("fourwall-image-"));
  await waitFor(() => left().length === 0, 60_000);
  assert.deepEqual(left(), []);
});
