/**
 * Golden argv of every runtime (test/unit/runtimes/golden/*.json), built from fixed plans against
 * the fake host: bwrap's (the most security-critical argv), runsc's and its OCI bundle, `docker
 * run`'s, QEMU's and the guest's script. Any change to them shows up as a diff to review; to
 * accept an intended one: npm run golden (FOURWALL_GOLDEN=update node --import import tsx --test test/unit/runtimes/golden.test.ts)
 * The security-relevant flags are also asserted one by one, so a regenerated golden file cannot
 * quietly drop them.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { shellQuote } from "../../../src/core/shell.js";
import type { BoxPlan } from "../../../src/plan/plan.js";
import { dockerLaunchSpec, dockerRunArgs } from "../../../src/runtimes/docker.js";
import { gvisorLaunchSpec, gvisorLayout } from "../../../src/runtimes/gvisor.js";
import type { LaunchSpec } from "../../../src/runtimes/launch.js";
import { BRIDGE_IN_BOX, bwrapArgs, namespacesLaunchSpec } from "../../../src/runtimes/namespaces.js";
import { ociBundle } from "../../../src/runtimes/oci.js";
import type { BoxSession } from "../../../src/runtimes/runtime.js";
import { guestScript, guestView, qemuArgs, vmLaunchSpec } from "../../../src/runtimes/vm.js";
import { layerLaunchArgs } from "../../../src/walls/gate/layer.js";
import { assertGolden } from "../../helpers/golden.js";
import { HOME, TEST_SESSION, testPlan, WORK } from "../../helpers/plan.js";

const HOST = [
  `${HOME}/.ssh/id_ed25519`,
  `${HOME}/.aws/credentials`,
  `${HOME}/.bashrc`,
  `${WORK}/src/main.ts`,
  `${WORK}/.env`,
  `${WORK}/.git/hooks/`,
  "/run/docker.sock=socket",
  "/tmp/",
  "/var/tmp/",
];
const COMMAND = ["claude", "--print", "it's $HOME"];
const userPlan = (): BoxPlan => testPlan({ host: HOST, command: COMMAND });
const rootPlan = (): BoxPlan => testPlan({ host: HOST, command: COMMAND, hostUid: 0, owner: 1000 });
const BRIDGE = "/opt/fourwall/native/build/fourwall-bridge";
/** The namespaces runtime's session as its launch makes it: with the native egress bridge. */
const NS_SESSION: BoxSession = { ...TEST_SESSION, bridge: BRIDGE };
/** Root mode with the box cgroup and the approval gate's copy-on-write layer, pause and hook settings. */
const ROOT_SESSION: BoxSession = {
  ...TEST_SESSION,
  cgroupDirs: ["/sys/fs/cgroup/fourwall/abcd1234"],
  overlay: {
    lower: WORK,
    upper: "/run/fourwall/layers/abcd1234-x/upper",
    work: "/run/fourwall/layers/abcd1234-x/work",
    ...layerLaunchArgs(
      { lower: WORK, dir: "/run/fourwall/layers/abcd1234-x", parent: "/run/fourwall/layers" },
      "root",
    ),
  },
  gateFiles: [{ source: "/tmp/fourwall-x/claude-settings.json", target: `${HOME}/.claude/settings.json` }],
  pause: { helper: "/opt/fourwall/native/build/fourwall-pause" },
  bridge: BRIDGE,
};
const IMAGE = { kernel: "/k/vmlinuz", initrd: "/k/initrd.img" };

/** A spec as data: the functions named, the bytes handed over counted. */
const specData = (spec: LaunchSpec) => ({
  ...spec,
  extraFds: spec.extraFds.map((x) => (x.use === "input" ? { ...x, data: `${x.data.length} bytes` } : x)),
  failure: "(function)",
});

/** The value after `flag` (each occurrence). */
const after = (args: string[], flag: string) => args.flatMap((a, i) => (args[i - 1] === flag ? [a] : []));

describe("golden argv", () => {
  it("namespaces, user mode: bwrap's launch", () =>
    assertGolden("namespaces-user", specData(namespacesLaunchSpec(userPlan(), NS_SESSION))));
  it("namespaces, root mode with the gate: the drop helper, the overlay helper, bwrap", () =>
    assertGolden("namespaces-root-gate", specData(namespacesLaunchSpec(rootPlan(), ROOT_SESSION))));
  it("gvisor, user mode: runsc's launch", () => {
    const plan = userPlan();
    const host = {
      runsc: "/usr/bin/runsc",
      stdio: ["inherit", "inherit", "inherit"] as const,
      stdinTerminal: false,
    };
    assertGolden(
      "gvisor-user",
      specData(
        gvisorLaunchSpec(plan, TEST_SESSION, gvisorLayout(plan, TEST_SESSION), {
          ...host,
          stdio: [...host.stdio],
        }),
      ),
    );
  });
  it("gvisor, root mode with the gate: runsc's launch", () => {
    const plan = rootPlan();
    const host = {
      runsc: "/usr/bin/runsc",
      stdio: ["inherit", "inherit", "inherit"] as "inherit"[],
      stdinTerminal: true,
    };
    assertGolden(
      "gvisor-root-gate",
      specData(gvisorLaunchSpec(plan, ROOT_SESSION, gvisorLayout(plan, ROOT_SESSION), host)),
    );
  });
  it("gvisor: the OCI bundle (seccomp rules counted: oci-seccomp.test.ts checks them)", () => {
    const { spec } = ociBundle(userPlan(), TEST_SESSION, {
      user: { uid: 0, gid: 0 },
      terminal: false,
      netDirOnHost: false,
    });
    const seccomp = spec.linux.seccomp;
    assertGolden("gvisor-oci", {
      ...spec,
      linux: { ...spec.linux, seccomp: { ...seccomp, syscalls: `${seccomp.syscalls.length} rules` } },
    });
  });
  it("docker: `docker run`", () => assertGolden("docker", specData(dockerSpec())));
  it("vm: QEMU in its outer namespaces box", () =>
    assertGolden(
      "vm-outer",
      specData(
        vmLaunchSpec(userPlan(), TEST_SESSION, {
          image: IMAGE,
          accel: "tcg",
          qemu: "/usr/bin/qemu-system-x86_64",
        }),
      ),
    ));
  it("vm: the guest's script (the box inside the guest)", () =>
    assertGolden("vm-guest", guestScript(userPlan(), []).split("\n")));
});

function dockerSpec(): LaunchSpec {
  const plan = rootPlan();
  const args = dockerRunArgs(plan, TEST_SESSION, {
    image: "fourwall-box:golden",
    engine: "runsc",
    seccompFile: "/tmp/fourwall-x/docker-seccomp.json",
    user: { uid: 1000, gid: 1000 },
    name: "fourwall-abcd1234",
    tty: false,
  });
  return dockerLaunchSpec(plan, {
    bin: "/usr/bin/docker",
    args,
    name: "fourwall-abcd1234",
    clientEnv: { PATH: "/usr/bin:/bin" },
  });
}

/** bwrap's security flags, wherever its argv is: the host's box, the microVM's outer box, the guest's box. */
function assertBwrapWalls(args: string[], where: string): void {
  for (const flag of [
    "--unshare-user",
    "--unshare-ipc",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--disable-userns",
    "--die-with-parent",
  ])
    assert.ok(args.includes(flag), `${where}: ${flag}`);
  assert.deepEqual(after(args, "--cap-drop"), ["ALL"], `${where}: --cap-drop ALL`);
  assert.deepEqual(after(args, "--seccomp"), ["3"], `${where}: --seccomp 3`);
  for (const flag of ["--share-net", "--cap-add", "--unshare-all"])
    assert.ok(!args.includes(flag), `${where}: no ${flag}`);
  // the workdir is the one writable place; HOME and / are read-only. Other writable binds may only
  // pin a directory of the workdir onto itself (so it cannot be renamed away): they add no write.
  const binds = args.flatMap((a, i) => (a === "--bind" ? [[args[i + 1]!, args[i + 2]!] as const] : []));
  assert.ok(
    binds.some(([src, dst]) => src === WORK && dst === WORK),
    `${where}: the workdir is bound writable`,
  );
  for (const [src, dst] of binds)
    assert.ok(
      src === dst && (src === WORK || src.startsWith(`${WORK}/`)),
      `${where}: ${src} → ${dst} adds a writable place`,
    );
  assert.ok(after(args, "--ro-bind").includes("/"), `${where}: the host's / read-only`);
  // the secrets are covered
  const covered = args.flatMap((a, i) =>
    args[i - 2] === "--ro-bind" && args[i - 1]?.endsWith("/empty") ? [a] : [],
  );
  for (const secret of [`${HOME}/.ssh/id_ed25519`, `${WORK}/.env`])
    assert.ok(
      covered.includes(secret) ||
        !args.includes(secret) ||
        after(args, "--tmpfs").some((t) => secret.startsWith(`${t}/`)),
      `${where}: ${secret} covered or absent`,
    );
  assert.ok(!args.some((a) => a.includes("docker.sock")), `${where}: no docker.sock`);
  // the rlimits are set before the command
  assert.ok(args.includes("/usr/bin/prlimit"), `${where}: prlimit`);
}

describe("security flags, one by one", () => {
  it("bwrap, user mode: every namespace new, no capability, no user namespaces, dies with fourwall, seccomp on fd 3", () => {
    const spec = namespacesLaunchSpec(userPlan(), NS_SESSION);
    assert.equal(spec.argv[0], "bwrap");
    assertBwrapWalls(spec.argv, "bwrap");
    const seccomp = spec.extraFds.find((x) => x.fd === 3);
    assert.ok(
      seccomp?.use === "input" && seccomp.data.equals(userPlan().seccomp),
      "the seccomp program on fd 3",
    );
    assert.deepEqual(after(spec.argv, "--json-status-fd"), ["4"]);
    assert.equal(spec.exitFrom, "json-status");
    assert.equal(spec.readiness.kind, "ready-fd");
    assert.deepEqual(spec.env, userPlan().env, "the box's environment is the plan's, not fourwall's");
  });

  it("bwrap, root mode: started by the drop helper as the unprivileged box uid, in the box cgroup", () => {
    const plan = rootPlan();
    const spec = namespacesLaunchSpec(plan, ROOT_SESSION);
    assert.match(spec.argv[0]!, /fourwall-drop$/);
    assert.notEqual(plan.identity.uid, 0);
    assert.deepEqual(spec.argv.slice(1, 3), [String(plan.identity.uid), String(plan.identity.gid)]);
    assert.deepEqual(after(spec.argv, "--cgroup"), ROOT_SESSION.cgroupDirs);
    assert.ok(spec.argv.includes("bwrap"));
    assertBwrapWalls(spec.argv, "bwrap (root)");
    // the gate's settings are bound read-only over the agent's own
    const gate = ROOT_SESSION.gateFiles![0]!;
    assert.ok(
      spec.argv.some(
        (a, i) => a === gate.target && spec.argv[i - 1] === gate.source && spec.argv[i - 2] === "--ro-bind",
      ),
    );
  });

  it("bwrap, native bridge: bound read-only over its mount point, the box's first process, before the pause and prlimit", () => {
    for (const [plan, session] of [
      [userPlan(), NS_SESSION],
      [rootPlan(), ROOT_SESSION],
    ] as const) {
      const args = namespacesLaunchSpec(plan, session).argv;
      const at = (a: string, b: string) => args.findIndex((x, i) => x === a && args[i + 1] === b);
      const bind = at(BRIDGE, BRIDGE_IN_BOX);
      assert.equal(args[bind - 1], "--ro-bind", "the bridge is bound read-only");
      assert.ok(bind > at(session.netDir, "/run/fourwall"), "after the socket directory (not hidden by it)");
      const chain = args.slice(args.indexOf("--chdir") + 3);
      assert.deepEqual(chain.slice(0, chain.indexOf("--") + 1), [
        BRIDGE_IN_BOX,
        "--stderr",
        "7",
        "--listen",
        "3128",
        "/run/fourwall/proxy.sock",
        "--ready",
        "6",
        "--",
      ]);
      assert.ok(!chain.includes("/bin/sh") && !chain.join(" ").includes("socat"), "no shell, no socat");
      assert.ok(chain.indexOf("/usr/bin/prlimit") > chain.indexOf("--"), "prlimit after the bridge");
    }
  });

  it("bwrap, sh + socat: without the native bridge, and for transparent egress's forwarders", () => {
    const transparent = testPlan({
      host: HOST,
      command: COMMAND,
      policy: { egress: { allow: ["a.example.com"], transparent: true } },
    });
    for (const [plan, session] of [
      [userPlan(), TEST_SESSION],
      [transparent, NS_SESSION],
    ] as const) {
      const args = namespacesLaunchSpec(plan, session).argv;
      assert.ok(!args.includes(BRIDGE_IN_BOX), "the native bridge is not bound");
      const chain = args.slice(args.indexOf("--chdir") + 3);
      assert.deepEqual(chain.slice(0, 2), ["/bin/sh", "-c"]);
      assert.match(chain[2]!, /socat TCP-LISTEN:3128/);
    }
  });

  it("runsc: rootless, ptrace, no network, seccomp from the bundle, killed with fourwall", () => {
    const plan = userPlan();
    const host = {
      runsc: "/usr/bin/runsc",
      stdio: ["inherit", "inherit", "inherit"] as "inherit"[],
      stdinTerminal: false,
    };
    const spec = gvisorLaunchSpec(plan, TEST_SESSION, gvisorLayout(plan, TEST_SESSION), host);
    for (const flag of ["--rootless", "--platform=ptrace", "--network=none", "--oci-seccomp"])
      assert.ok(spec.argv.includes(flag), flag);
    assert.ok(!spec.argv.some((a) => /^--network=(host|sandbox)$/.test(a)));
    assert.deepEqual(spec.argv.slice(0, 4), ["setpriv", "--pdeathsig", "KILL", "--"]);
    assert.deepEqual(spec.env, { PATH: spec.env.PATH }, "runsc gets no environment but PATH");
    const root = rootPlan();
    const rootSpec = gvisorLaunchSpec(root, ROOT_SESSION, gvisorLayout(root, ROOT_SESSION), host);
    assert.match(rootSpec.argv[0]!, /fourwall-drop$/);
    assert.deepEqual(rootSpec.argv.slice(1, 3), [String(root.identity.uid), String(root.identity.gid)]);
  });

  it("OCI bundle: no capability, no new privileges, read-only root, seccomp rules, new namespaces", () => {
    const { spec } = ociBundle(userPlan(), TEST_SESSION, {
      user: { uid: 0, gid: 0 },
      terminal: false,
      netDirOnHost: false,
    });
    for (const set of Object.values(spec.process.capabilities)) assert.deepEqual(set, []);
    assert.equal(spec.process.noNewPrivileges, true);
    assert.equal(spec.root.readonly, true);
    assert.ok(spec.linux.seccomp.syscalls.length > 0);
    for (const ns of ["pid", "network", "mount", "ipc", "uts"])
      assert.ok(
        spec.linux.namespaces.some((n) => n.type === ns),
        ns,
      );
    assert.equal(
      spec.process.env.find((e) => e.startsWith("GITHUB_TOKEN=")),
      undefined,
    );
  });

  it("docker run: runsc, read-only, no network, no capability, no new privileges, seccomp, non-root", () => {
    const args = dockerSpec().argv;
    const joined = args.join(" ");
    for (const a of ["--runtime=runsc", "--read-only", "--rm"]) assert.ok(args.includes(a), a);
    assert.deepEqual(after(args, "--network"), ["none"]);
    assert.deepEqual(after(args, "--cap-drop"), ["ALL"]);
    assert.deepEqual(after(args, "--security-opt"), [
      "no-new-privileges",
      "seccomp=/tmp/fourwall-x/docker-seccomp.json",
    ]);
    assert.deepEqual(after(args, "--user"), ["1000:1000"]);
    for (const bad of ["--privileged", "--cap-add", "--pid", "--ipc", "--userns", "--device"])
      assert.ok(!args.includes(bad), bad);
    assert.doesNotMatch(joined, /docker\.sock|seccomp=unconfined|--network host/);
  });

  it("QEMU: its outer box has bwrap's walls; no default device, no monitor, its own seccomp, restricted network, read-only host share", () => {
    const spec = vmLaunchSpec(userPlan(), TEST_SESSION, {
      image: IMAGE,
      accel: "tcg",
      qemu: "/usr/bin/qemu-system-x86_64",
    });
    assertBwrapWalls(spec.argv.slice(0, spec.argv.indexOf("/usr/bin/qemu-system-x86_64")), "the outer box");
    const qemu = qemuArgs(userPlan(), "/run/fourwall/vm", IMAGE, "tcg", "/usr/bin/qemu-system-x86_64");
    assert.ok(spec.argv.join("\0").endsWith(qemu.join("\0")), "QEMU is the outer box's command");
    for (const flag of ["-nodefaults", "-no-user-config"]) assert.ok(qemu.includes(flag), flag);
    assert.deepEqual(after(qemu, "-sandbox"), ["on,obsolete=deny"]);
    assert.ok(!qemu.includes("-monitor"));
    assert.match(after(qemu, "-netdev")[0]!, /restrict=on/);
    assert.ok(
      after(qemu, "-fsdev").some((f) => f.includes("id=fwroot,path=/,") && f.endsWith("readonly=on")),
    );
  });

  it("the guest's box: the namespaces runtime's own bwrap flags, as an unprivileged uid", () => {
    const plan = userPlan();
    const script = guestScript(plan, []);
    const guestArgs = bwrapArgs(guestView(plan), {
      runDir: "/run/fourwall",
      emptyFile: "/run/fourwall/empty",
      netDir: "/run/fourwall/net",
      cgroupDirs: [],
    });
    assertBwrapWalls(guestArgs, "the guest's bwrap");
    // the script runs exactly these arguments, each quoted for the guest's shell
    assert.ok(script.includes(guestArgs.map(shellQuote).join(" \\\n    ")), "the guest runs bwrapArgs");
    assert.match(
      script,
      new RegExp(
        `setpriv --reuid=${plan.identity.uid} --regid=${plan.identity.gid} --clear-groups --inh-caps=-all --bounding-set=-all`,
      ),
    );
  });
});

describe("write-through overlays (placeholders outside the workdir): which helper mounts them", () => {
  const through = (carrier: "overlay" | "drop", args: string[]) => ({
    carrier,
    args,
    hide: "/L",
    mounts: [{ dir: "/h/.codex", sub: "/L/0" }],
  });
  it("user mode: fourwall-overlay's --through, before bwrap", () => {
    const args = ["--through", "/h/.codex", "/L/0"];
    const spec = namespacesLaunchSpec(userPlan(), { ...NS_SESSION, through: through("overlay", args) });
    const at = spec.argv.indexOf("--through");
    assert.match(spec.argv[0]!, /fourwall-overlay$/);
    assert.deepEqual(spec.argv.slice(at, at + 3), args);
    assert.ok(at < spec.argv.indexOf("bwrap"));
  });
  it("root mode: fourwall-drop's (as root, before the drop), never fourwall-overlay's (the box uid cannot reach the layers)", () => {
    const args = ["--through", "0:0:/L/0", "/h/.codex"];
    const spec = namespacesLaunchSpec(rootPlan(), { ...TEST_SESSION, through: through("drop", args) });
    assert.match(spec.argv[0]!, /fourwall-drop$/);
    const at = spec.argv.indexOf("--through");
    assert.deepEqual(spec.argv.slice(at, at + 3), args);
    assert.ok(at < spec.argv.indexOf("--"), "an option of fourwall-drop's");
    assert.equal(spec.argv.filter((a) => a === "--through").length, 1);
    assert.ok(
      !spec.argv.some((a) => a.endsWith("fourwall-overlay")),
      "no overlay helper without a gate layer",
    );
  });
});
