/**
 * BoxPlan → `docker run` arguments (src/runtimes/docker.ts): every wall the runtime promises is in
 * the argument list, the host is not, and what cannot run safely is refused.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WallError } from "../../../src/core/errors.js";
import type { BoxPlan } from "../../../src/plan/plan.js";
import {
  dockerMounts,
  dockerRunArgs,
  dockerSeccomp,
  dockerUser,
  engineSocket,
} from "../../../src/runtimes/docker.js";
import { runscPidsMax } from "../../../src/runtimes/gvisor.js";
import { ociSeccomp } from "../../../src/runtimes/oci.js";
import { HOME, TEST_SESSION as session, testPlan, WORK } from "../../helpers/plan.js";

const HOST = [
  `${HOME}/.ssh/id_ed25519`,
  `${HOME}/.bashrc`,
  `${WORK}/src/main.ts`,
  `${WORK}/.env`,
  `${WORK}/.git/hooks/`,
  "/run/docker.sock=socket",
  "/tmp/",
];

const makePlan = (hostUid = 0, owner = 1000): BoxPlan => testPlan({ host: HOST, hostUid, owner });
const opts = {
  image: "img:1",
  engine: "runsc" as const,
  seccompFile: "/tmp/fourwall-x/s.json",
  user: { uid: 1000, gid: 1000 },
  name: "fourwall-abcd1234",
  tty: false,
};

describe("docker run arguments", () => {
  const plan = makePlan();
  const args = dockerRunArgs(plan, session, opts);
  const joined = args.join(" ");

  it("carries the isolation wall: runsc, read-only root, no capabilities, no new privileges, the seccomp profile, a non-root user, limits", () => {
    for (const a of ["--runtime=runsc", "--read-only", "--rm", "-i"]) assert.ok(args.includes(a), a);
    assert.match(joined, /--cap-drop ALL/);
    assert.match(joined, /--security-opt no-new-privileges/);
    assert.match(joined, /--security-opt seccomp=\/tmp\/fourwall-x\/s\.json/);
    assert.match(joined, /--user 1000:1000/);
    // runsc's own host tasks count against the container's pids cgroup: room for them (gvisor.ts)
    assert.match(joined, new RegExp(`--pids-limit ${runscPidsMax(plan.boxLimits.pids)}`));
    assert.match(joined, new RegExp(`--memory ${plan.boxLimits.memoryBytes}`));
    for (const r of plan.rlimits)
      assert.match(joined, new RegExp(`--ulimit ${r.name}=${r.value}:${r.value}`));
    assert.ok(!args.includes("--privileged"));
  });

  it("has no network but the proxy socket's directory, and no docker.sock", () => {
    assert.match(joined, /--network none/);
    assert.match(joined, /type=bind,source=\/tmp\/fourwall-x\/net,target=\/run\/fourwall,readonly/);
    assert.doesNotMatch(joined, /docker\.sock/);
    assert.match(joined, /socat TCP-LISTEN:3128,bind=127\.0\.0\.1/);
  });

  it("binds the workdir writable, covers its secrets, and nothing else of the host", () => {
    const mounts = dockerMounts(plan, session);
    const binds = mounts.filter((m) => m.type === "bind");
    assert.ok(binds.some((m) => m.destination === WORK && m.source === WORK && m.options.includes("rw")));
    assert.ok(
      binds.some(
        (m) => m.destination === `${WORK}/.env` && m.source === session.emptyFile && m.options.includes("ro"),
      ),
    );
    assert.ok(
      binds.every((m) => m.destination.startsWith(`${WORK}`)),
      JSON.stringify(binds),
    );
    assert.ok(!mounts.some((m) => m.destination === "/" || m.destination.startsWith(`${HOME}/.ssh`)));
    assert.match(joined, /--tmpfs \/tmp:[^ ]*mode=1777/);
  });

  it("names the environment without its values (they ride in the client's env), secrets dropped, then runs the command", () => {
    assert.ok(args.includes("FOURWALL"));
    assert.ok(args.includes(`HOME=${plan.env.HOME}`));
    assert.doesNotMatch(joined, /GITHUB_TOKEN/);
    assert.deepEqual(args.slice(-3), ["fourwall-bridge", "claude", "--help"]);
    assert.ok(args.includes("img:1"));
  });

  it("with the native bridge, the entrypoint is the static bridge in the read-only socket directory (no sh or socat in the image)", () => {
    const native = dockerRunArgs(plan, session, { ...opts, bridgeInNetDir: "fourwall-bridge" });
    const at = native.indexOf("--entrypoint");
    assert.deepEqual(native.slice(at, at + 3), ["--entrypoint", "/run/fourwall/fourwall-bridge", "img:1"]);
    assert.deepEqual(native.slice(at + 3), [
      "--listen",
      "3128",
      "/run/fourwall/proxy.sock",
      "--",
      "claude",
      "--help",
    ]);
    assert.match(native.join(" "), /target=\/run\/fourwall,readonly/);
  });

  it("reuses oci.ts's seccomp profile; under runc it adds clone3 (gVisor answered it before)", () => {
    assert.deepEqual(dockerSeccomp("runsc"), ociSeccomp().seccomp);
    assert.ok(dockerSeccomp("runc").syscalls.some((s) => s.names.includes("clone3") && s.errnoRet === 38));
  });
});

describe("docker box user", () => {
  it("is the non-root owner of the workdir in root mode", () => {
    assert.deepEqual(dockerUser(makePlan(0, 1000)), { uid: 1000, gid: 1000 });
  });
  it("refuses a root-owned workdir and a non-root fourwall", () => {
    assert.throws(
      () => dockerUser(makePlan(0, 0)),
      (e: unknown) => e instanceof WallError && /owned by root/.test(e.message),
    );
    assert.throws(
      () => dockerUser(makePlan(1000, 1000)),
      (e: unknown) => e instanceof WallError && /root/.test(e.message),
    );
  });
});

describe("the engine API shortcut (docker info and image inspect without the client)", () => {
  it("is taken only where the client's socket is certain: DOCKER_HOST=unix://, or nothing set (the default socket)", () => {
    assert.equal(engineSocket({ DOCKER_HOST: "unix:///tmp/d/docker.sock" }), "/tmp/d/docker.sock");
    assert.equal(engineSocket({ HOME: "/nonexistent-home" }), "/var/run/docker.sock");
    // tcp, ssh, a context, a config of its own: the client decides, so the client is asked
    assert.equal(engineSocket({ DOCKER_HOST: "tcp://127.0.0.1:2375" }), undefined);
    assert.equal(engineSocket({ DOCKER_HOST: "ssh://u@h" }), undefined);
    assert.equal(engineSocket({ DOCKER_HOST: "unix:///x", DOCKER_CONTEXT: "other" }), undefined);
    assert.equal(engineSocket({ HOME: "/nonexistent-home", DOCKER_CONTEXT: "other" }), undefined);
    assert.equal(engineSocket({ HOME: "/nonexistent-home", DOCKER_CONFIG: "/etc/dc" }), undefined);
  });
});
