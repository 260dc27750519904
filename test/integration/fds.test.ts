/**
 * Only descriptors fourwall passes on purpose reach the box. The launching shell holds a root-only
 * secret open on fds 7, 42 and 200 (not close-on-exec, as `exec 7</secret` leaves it); inside the
 * box a program reads every descriptor from 3 up and must find none of them: `fourwall run` on the
 * namespaces runtime (both launch modes) and gVisor, and `fourwall exec` into a persistent box
 * (bin/fourwall execs native/fourwall-enter straight from the caller's shell). The broken variants
 * show the same check catching the leak: the box built without fourwall's start-up close (user
 * mode, test/helpers/weak-box.ts), and fourwall-enter compiled with the hole back in
 * (-DFOURWALL_KEEP_INHERITED_FDS).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { type Fixture, MODES, makeFixture, ROOT, SECRET, userArgs, WEAK_BOX } from "../helpers/box.js";

const SHIM = path.join(ROOT, "bin", "fourwall");
const TSX_LOADER = pathToFileURL(path.join(ROOT, "node_modules", "tsx", "dist", "loader.mjs")).href;

// A root-only secret (0600 in a 0700 directory): the box's uid cannot open it by its path.
const secretDir = mkdtempSync(path.join(os.tmpdir(), "fourwall-fds-"));
chmodSync(secretDir, 0o700);
const secret = path.join(secretDir, "secret");
writeFileSync(secret, `${SECRET} held-fd\n`, { mode: 0o600 });
after(() => rmSync(secretDir, { recursive: true, force: true }));

/** Reads every descriptor from 3 up and prints what it got. */
const READ_ALL_FDS = [
  "python3",
  "-c",
  "import os\nfor fd in range(3, 1024):\n    try:\n        print(fd, os.pread(fd, 200, 0))\n    except OSError:\n        pass",
];

/** A policy whose gate holds nothing (its layer then only carries the placeholders, docs/gate.md). */
function noLayerPolicy(fx: Fixture): string {
  const file = path.join(fx.base, "no-layer.yaml");
  writeFileSync(file, "gate:\n  fs:\n    default: allow\n    rules: []\n");
  return file;
}

/** `argv` started by a root shell that holds the secret on fds 7, 42 and 200, as the mode's user. */
function fromCallerHoldingSecret(fx: Fixture, argv: string[], env: Record<string, string> = {}) {
  const r = spawnSync(
    "bash",
    ["-c", 'exec 7<"$1" 42<"$1" 200<"$1"; shift; exec "$@"', "caller", secret, ...userArgs(fx.mode), ...argv],
    { cwd: fx.workdir, env: { ...fx.env, ...env }, encoding: "utf8", timeout: 60_000 },
  );
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

for (const mode of MODES)
  describe(`descriptors the caller holds stay out of the box (${mode})`, () => {
    it("fourwall run (namespaces, gvisor; with and without the gate's layer): no inherited descriptor is readable in the box", () => {
      const fx = makeFixture(mode);
      const noLayer = noLayerPolicy(fx);
      for (const runtime of ["namespaces", "gvisor"])
        for (const policy of [[], ["-p", noLayer]]) {
          const r = fromCallerHoldingSecret(fx, [
            SHIM,
            "run",
            "-r",
            runtime,
            ...policy,
            "--",
            ...READ_ALL_FDS,
          ]);
          const what = `${runtime} ${policy.join(" ")}`;
          assert.equal(r.code, 0, `${what}: ${r.out}`);
          assert.doesNotMatch(r.out, new RegExp(SECRET), `${what}: a held descriptor reached the box`);
        }
    });

    if (mode === "user")
      it("broken variant: a box built without fourwall's start-up close leaks the caller's fd", () => {
        const fx = makeFixture(mode);
        const r = fromCallerHoldingSecret(
          fx,
          // bwrap straight from Node, no native launcher in between (user mode, no gate layer: an
          // allow-all policy still gets one to carry the placeholders, which this box stands on the host)
          [
            process.execPath,
            ...["--import", TSX_LOADER, WEAK_BOX, "--weaken", "rlimits,host-placeholders"],
            ...["--policy", noLayerPolicy(fx)],
            ...["--", ...READ_ALL_FDS],
          ],
          { NODE_PATH: path.join(ROOT, "node_modules") },
        );
        assert.match(r.out, new RegExp(SECRET), `the check sees the leak: ${r.out}`);
      });

    it("fourwall exec into a persistent box: none either; fourwall-enter without its close leaks", () => {
      const fx = makeFixture(mode);
      const name = `fds-${mode}-${process.pid}`;
      const fw = (args: string[]) => {
        const [program, ...rest] = [...userArgs(mode), SHIM, ...args];
        return spawnSync(program!, rest, { cwd: fx.workdir, env: fx.env, encoding: "utf8", timeout: 30_000 });
      };
      const up = fw(["up", "--name", name]);
      assert.equal(up.status, 0, up.stderr);
      const broken = mkdtempSync(path.join(os.tmpdir(), "fourwall-fds-enter-"));
      try {
        const r = fromCallerHoldingSecret(fx, [SHIM, "exec", name, "--", ...READ_ALL_FDS]);
        assert.equal(r.code, 0, r.out);
        assert.doesNotMatch(r.out, new RegExp(SECRET), "a held descriptor reached the box through exec");

        // the same entry with the hole compiled back in
        chmodSync(broken, 0o755);
        const enter = path.join(broken, "fourwall-enter");
        const cc = spawnSync(
          "gcc",
          [
            "-O2",
            "-DFOURWALL_KEEP_INHERITED_FDS",
            "-o",
            enter,
            path.join(ROOT, "native", "fourwall-enter.c"),
          ],
          { encoding: "utf8" },
        );
        assert.equal(cc.status, 0, cc.stderr);
        const boxDir =
          mode === "root"
            ? path.join("/run/fourwall/boxes", name)
            : path.join(fx.home, ".local/state/fourwall/boxes", name);
        const leak = fromCallerHoldingSecret(fx, [enter, boxDir, "--", ...READ_ALL_FDS]);
        assert.match(leak.out, new RegExp(SECRET), `the check sees the leak: ${leak.out}`);
      } finally {
        rmSync(broken, { recursive: true, force: true });
        assert.equal(fw(["down", name]).status, 0);
      }
    });
  });
