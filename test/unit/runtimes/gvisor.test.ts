/**
 * How the gVisor runtime starts runsc (src/runtimes/gvisor.ts, pure parts): never without
 * --network=none, always rootless on ptrace, as the box uid under the root-mode launcher.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dropHelperPath } from "../../../src/core/paths.js";
import type { BoxPlan } from "../../../src/plan/plan.js";
import { gvisorLayout, runscCommand, runscFlags } from "../../../src/runtimes/gvisor.js";
import type { BoxSession } from "../../../src/runtimes/runtime.js";
import { overlayHelperPath } from "../../../src/walls/gate/paths.js";

const session: BoxSession = {
  runDir: "/tmp/fourwall-ab-1",
  emptyFile: "/tmp/fourwall-ab-1/empty",
  netDir: "/tmp/fourwall-ab-1/net",
  cgroupDirs: ["/sys/fs/cgroup/memory/fourwall-ab"],
};
const plan = (identity: BoxPlan["identity"]) =>
  ({ id: "ab", identity, filesystem: { cwd: "/home/a/proj" } }) as BoxPlan;

describe("runsc command line", () => {
  it("always asks for no network, rootless, ptrace, gVisor's seccomp, no cgroups of runsc's own", () => {
    const flags = runscFlags("/x/state");
    for (const f of [
      "--network=none",
      "--rootless",
      "--platform=ptrace",
      "--oci-seccomp",
      "--ignore-cgroups",
      "--host-uds=open",
    ])
      assert.ok(flags.includes(f), f);
    assert.ok(!flags.some((f) => /--network=(host|sandbox)/.test(f)));
    assert.deepEqual(flags.slice(0, 2), ["--root", "/x/state"]);
  });

  it("keeps its state and bundle inside the run dir, under a per-box container id", () => {
    const layout = gvisorLayout(plan({ mode: "user", uid: 1000, gid: 1000 }), session);
    assert.ok(layout.bundleDir.startsWith(`${session.runDir}/`));
    assert.ok(layout.stateDir.startsWith(`${session.runDir}/`));
    assert.ok(layout.pidFile.startsWith(`${layout.stateDir}/`));
    assert.equal(layout.containerId, "fourwall-ab");
  });

  it("launched by a user: runsc as that user, tied to fourwall by a parent-death signal", () => {
    const p = plan({ mode: "user", uid: 1000, gid: 1000 });
    const argv = runscCommand(p, session, gvisorLayout(p, session), "/usr/bin/runsc");
    assert.deepEqual(argv.slice(0, 5), ["setpriv", "--pdeathsig", "KILL", "--", "/usr/bin/runsc"]);
    assert.deepEqual(argv.slice(-6), [
      "run",
      "--bundle",
      `${session.runDir}/gvisor`,
      "--pid-file",
      `${session.runDir}/gvisor/state/container.pid`,
      "fourwall-ab",
    ]);
  });

  it("approval gate: runsc starts inside the copy-on-write layer's mount namespace, as bwrap does", () => {
    const p = plan({ mode: "user", uid: 1000, gid: 1000 });
    const overlay = {
      lower: "/home/a/proj",
      upper: "/tmp/l/upper",
      work: "/tmp/l/work",
      helperArgs: ["/home/a/proj", "/tmp/l"],
      dropArgs: [],
    };
    const argv = runscCommand(p, { ...session, overlay }, gvisorLayout(p, session), "/usr/bin/runsc");
    assert.deepEqual(argv.slice(4, 9), [
      overlayHelperPath(),
      overlay.lower,
      "/tmp/l",
      "--",
      "/usr/bin/runsc",
    ]);
  });

  it("launched by root: runsc under the launcher, as the box uid, in the box cgroup, with the idmaps", () => {
    const p = plan({
      mode: "root",
      uid: 70000,
      gid: 70000,
      idmaps: [{ path: "/home/a/proj", ownerUid: 0, ownerGid: 0 }],
    });
    const argv = runscCommand(p, session, gvisorLayout(p, session), "/usr/bin/runsc");
    assert.deepEqual(argv.slice(0, 11), [
      dropHelperPath(),
      "70000",
      "70000",
      "--idmap",
      "0:0:/home/a/proj",
      "--cgroup",
      session.cgroupDirs[0],
      "--reach",
      "/home/a/proj",
      "--",
      "/usr/bin/runsc",
    ]);
    assert.ok(argv.includes("--network=none"));
  });
});
