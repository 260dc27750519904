/**
 * BoxPlan → OCI spec (src/runtimes/oci.ts): every protection of the plan is carried over, the
 * order runsc applies mounts in keeps the plan's meaning, and what cannot be carried is an error.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BoxPlan } from "../../../src/plan/plan.js";
import {
  OciError,
  type OciMount,
  ociBundle,
  ociMounts,
  preludeScript,
  resolveThrough,
} from "../../../src/runtimes/oci.js";
import type { Mount } from "../../../src/walls/filesystem/mounts.js";
import { HOME, TEST_SESSION as session, testPlan, WORK } from "../../helpers/plan.js";

const HOST = [
  `${HOME}/.ssh/id_ed25519`,
  `${HOME}/.aws/credentials`,
  `${HOME}/.config/gcloud/credentials.db`,
  `${HOME}/.bashrc`,
  `${HOME}/.netrc`,
  `${HOME}/.dotfiles-link->/srv/dotfiles`,
  `${WORK}/src/main.ts`,
  `${WORK}/.env`,
  `${WORK}/.git/hooks/`,
  `${WORK}/.git/config`,
  "/run/docker.sock=socket",
  "/tmp/",
  "/var/tmp/",
  "/srv/dotfiles/",
];

// HOME is an allowlist: these tests want a nested secret (.config/gcloud) and a home symlink in view
const SHOWN = { filesystem: { homeVisible: [".config", ".dotfiles-link"] } };
const makePlan = (policy: object = SHOWN, hostUid = 1000): BoxPlan =>
  testPlan({ host: HOST, policy, hostUid });

const bundle = (plan = makePlan(), terminal = false) =>
  ociBundle(plan, session, { user: { uid: 0, gid: 0 }, terminal });
const at = (mounts: OciMount[], destination: string) => mounts.filter((m) => m.destination === destination);
const depth = (p: string) => p.split("/").length - 1;

describe("OCI spec from a plan", () => {
  it("keeps the host read-only as the root and gives the command no privilege", () => {
    const { spec } = bundle();
    assert.deepEqual(spec.root, { path: "/", readonly: true });
    for (const set of Object.values(spec.process.capabilities)) assert.deepEqual(set, []);
    assert.equal(spec.process.noNewPrivileges, true);
    assert.deepEqual(spec.process.user, { uid: 0, gid: 0 });
    assert.equal(spec.process.terminal, false);
    assert.equal(spec.hostname, "fourwall");
    assert.equal(spec.process.cwd, WORK);
  });

  it("has its own pid, ipc, uts, mount and network namespaces, and no user namespace in the spec", () => {
    const types = bundle()
      .spec.linux.namespaces.map((n) => n.type)
      .sort();
    assert.deepEqual(types, ["ipc", "mount", "network", "pid", "uts"]);
  });

  it("passes only the plan's environment, proxy variables included", () => {
    const plan = makePlan();
    const env = bundle(plan).spec.process.env;
    assert.deepEqual(
      env,
      Object.entries(plan.env).map(([k, v]) => `${k}=${v}`),
    );
    assert.ok(env.includes("HTTPS_PROXY=http://127.0.0.1:3128"));
    assert.ok(!env.some((e) => e.startsWith("GITHUB_TOKEN=")));
  });

  it("sets every rlimit of the plan with soft = hard", () => {
    const plan = makePlan({ isolation: { limits: { pids: 64, cpuSeconds: 30 } } });
    const rl = bundle(plan).spec.process.rlimits;
    assert.deepEqual(
      rl.find((r) => r.type === "RLIMIT_NPROC"),
      { type: "RLIMIT_NPROC", soft: 64, hard: 64 },
    );
    assert.deepEqual(
      rl.find((r) => r.type === "RLIMIT_CPU"),
      { type: "RLIMIT_CPU", soft: 30, hard: 30 },
    );
    assert.deepEqual(
      rl.find((r) => r.type === "RLIMIT_CORE"),
      { type: "RLIMIT_CORE", soft: 0, hard: 0 },
    );
    assert.equal(rl.length, plan.rlimits.length);
  });

  it("runs the bridge script first, then the command itself", () => {
    const { spec } = bundle();
    const [sh, dashC, script, argv0, ...command] = spec.process.args;
    assert.deepEqual([sh, dashC, argv0], ["/bin/sh", "-c", "fourwall-bridge"]);
    assert.deepEqual(command, ["claude", "--help"]);
    assert.match(script!, /socat TCP-LISTEN:3128,bind=127\.0\.0\.1/);
    assert.match(script!, /exec "\$@"/);
    // the documented in-box socket path points at the directory runsc binds
    assert.match(script!, /ln -s -- '\/tmp\/fourwall-x\/net' '\/run\/fourwall'/);
  });

  it("with the native bridge: one static exec makes the same symlinks, listens, then runs the command", () => {
    const { spec } = ociBundle(makePlan(), session, {
      user: { uid: 0, gid: 0 },
      terminal: false,
      bridgeInNetDir: "fourwall-bridge",
    });
    const args = spec.process.args;
    const sep = args.indexOf("--");
    assert.equal(args[0], "/tmp/fourwall-x/net/fourwall-bridge");
    assert.deepEqual(args.slice(1, 4), ["--link", "/run/fourwall", "/tmp/fourwall-x/net"]);
    assert.deepEqual(args.slice(sep - 3, sep), ["--listen", "3128", "/run/fourwall/proxy.sock"]);
    assert.deepEqual(args.slice(sep + 1), ["claude", "--help"]);
    // the socket directory holding the bridge is bound read-only: the box cannot replace it
    const net = spec.mounts.find((m) => m.source === "/tmp/fourwall-x/net");
    assert.ok(net?.options.includes("ro"));
  });

  it("carries over every mount of the plan: binds, tmpfs (size, read-only), covers, proc, dev", () => {
    const plan = makePlan();
    const { spec, symlinks } = bundle(plan);
    const planned = plan.filesystem.mounts.slice(1).filter((m) => m.type !== "symlink");
    // one OCI mount per path the plan mounts (the last one there), plus the proxy socket's directory
    assert.equal(spec.mounts.length, new Set(planned.map((m) => m.target)).size + 1);
    assert.equal(symlinks.length, plan.filesystem.mounts.filter((m) => m.type === "symlink").length);
    const work = at(spec.mounts, WORK).at(-1)!;
    assert.deepEqual(work, { destination: WORK, type: "bind", source: WORK, options: ["rbind", "rw"] });
    const tmp = at(spec.mounts, "/tmp")[0]!;
    assert.equal(tmp.type, "tmpfs");
    assert.ok(tmp.options.includes(`size=${1024 ** 3}`), tmp.options.join());
    const gcloud = at(spec.mounts, `${HOME}/.config/gcloud`)[0]!;
    assert.equal(gcloud.type, "tmpfs");
    assert.ok(gcloud.options.includes("ro"));
    const env = at(spec.mounts, `${WORK}/.env`)[0]!;
    assert.deepEqual(env, {
      destination: `${WORK}/.env`,
      type: "bind",
      source: session.emptyFile,
      options: ["rbind", "ro"],
    });
    assert.equal(at(spec.mounts, "/proc")[0]!.type, "proc");
    assert.equal(at(spec.mounts, "/dev")[0]!.type, "tmpfs");
    assert.deepEqual(at(spec.mounts, session.netDir), [
      { destination: session.netDir, type: "bind", source: session.netDir, options: ["rbind", "ro"] },
    ]);
    // what is on top of each path in the plan is what the spec mounts there, alone
    for (const target of new Set(planned.map((m) => m.target))) {
      const top = planned.filter((m) => m.target === target).at(-1)!;
      const oci = at(spec.mounts, target);
      assert.equal(oci.length, 1, target);
      if (top.type === "bind") assert.ok(oci[0]!.options.includes(top.writable ? "rw" : "ro"), target);
    }
  });

  it("emits mounts in depth order, one per path (runsc sorts by depth, unstably)", () => {
    const { spec } = bundle();
    for (let i = 1; i < spec.mounts.length; i++)
      assert.ok(depth(spec.mounts[i - 1]!.destination) <= depth(spec.mounts[i]!.destination));
    assert.equal(new Set(spec.mounts.map((m) => m.destination)).size, spec.mounts.length);
    // a read-only home entry and the writable workdir on the same path: only the workdir is emitted
    assert.deepEqual(at(spec.mounts, WORK), [
      { destination: WORK, type: "bind", source: WORK, options: ["rbind", "rw"] },
    ]);
  });

  it("a secret cover on a writable path is the only mount there (never under the writable bind)", () => {
    const plan = makePlan();
    const secret = `${HOME}/.config/gh`;
    plan.filesystem.mounts.push(
      { type: "bind", source: secret, target: secret, writable: true, why: "writable by policy" },
      { type: "tmpfs", target: secret, readOnly: true, why: "secret hidden" },
    );
    assert.deepEqual(
      at(bundle(plan).spec.mounts, secret).map((m) => [m.type, m.options.at(-1)]),
      [["tmpfs", "ro"]],
    );
  });

  it("makes the plan's symlinks in the box's first process", () => {
    const { spec, symlinks } = bundle();
    assert.deepEqual(symlinks, [{ target: `${HOME}/.dotfiles-link`, linkTo: "/srv/dotfiles" }]);
    assert.match(
      spec.process.args[2]!,
      /ln -s -- '\/srv\/dotfiles' '\/home\/alice\/\.dotfiles-link' \|\| \{ echo .* exit 125; \}/,
    );
  });

  it("binds the socket directory straight at /run/fourwall when that exists on the host (no link to make)", () => {
    const { spec } = ociBundle(makePlan(), session, {
      user: { uid: 0, gid: 0 },
      terminal: false,
      netDirOnHost: true,
    });
    assert.deepEqual(at(spec.mounts, "/run/fourwall"), [
      { destination: "/run/fourwall", type: "bind", source: session.netDir, options: ["rbind", "ro"] },
    ]);
    assert.equal(at(spec.mounts, session.netDir).length, 0);
    assert.doesNotMatch(spec.process.args[2]!, /ln -s -- '\/tmp\/fourwall-x\/net'/);
    assert.match(spec.process.args[2]!, /^ln -s -- '\/srv\/dotfiles'/);
  });

  it("terminal follows the option", () => {
    assert.equal(bundle(makePlan(), true).spec.process.terminal, true);
  });
});

describe("mount order and symlinks", () => {
  const withMounts = (extra: Mount[]): BoxPlan => {
    const plan = makePlan();
    plan.filesystem.mounts = [...plan.filesystem.mounts, ...extra];
    return plan;
  };

  it("refuses a later mount meant to cover a deeper, earlier one (runsc would reverse them)", () => {
    const plan = withMounts([{ type: "bind", source: HOME, target: HOME, writable: true, why: "test" }]);
    assert.throws(
      () => ociMounts(plan, session),
      (e: unknown) =>
        e instanceof OciError &&
        e.wall === "filesystem" &&
        /runsc would apply them the other way round/.test(e.message),
    );
  });

  it("accepts a later mount on the same path (stable order keeps it on top)", () => {
    const plan = withMounts([{ type: "empty-file", target: `${HOME}/.bashrc`, why: "test" }]);
    const { mounts } = ociMounts(plan, session);
    assert.equal(at(mounts, `${HOME}/.bashrc`).at(-1)!.source, session.emptyFile);
  });

  it("resolves a mount target through a symlink the plan made earlier, like bwrap does", () => {
    const plan = withMounts([
      { type: "tmpfs", target: `${HOME}/.dotfiles-link/secrets`, readOnly: true, why: "secret hidden" },
    ]);
    const { mounts } = ociMounts(plan, session);
    assert.equal(at(mounts, "/srv/dotfiles/secrets").length, 1);
    assert.equal(at(mounts, `${HOME}/.dotfiles-link/secrets`).length, 0);
  });

  it("resolves relative links and chains", () => {
    const links = [
      { target: "/home/a/.cfg", linkTo: "dots/cfg" },
      { target: "/home/a/dots", linkTo: "/srv/dots" },
    ];
    assert.equal(resolveThrough("/home/a/.cfg/gh", links), "/srv/dots/cfg/gh");
    assert.equal(resolveThrough("/home/a/.cfgx", links), "/home/a/.cfgx");
    assert.throws(
      () =>
        resolveThrough("/a/x", [
          { target: "/a", linkTo: "/a/b" },
          { target: "/a/b", linkTo: "/a" },
        ]),
      OciError,
    );
  });

  it("refuses a symlink the box would have to make over a mount", () => {
    const plan = makePlan();
    const i = plan.filesystem.mounts.findIndex((m) => m.type === "symlink");
    plan.filesystem.mounts.splice(i, 0, {
      type: "bind",
      source: "/srv/dotfiles/x",
      target: `${HOME}/.dotfiles-link/x`,
      writable: false,
      why: "test",
    });
    assert.throws(() => ociMounts(plan, session), /symlink .* would be made over the mount/);
  });

  it("refuses a plan whose first mount is not the read-only root, or a second mount on /", () => {
    const plan = makePlan();
    plan.filesystem.mounts[0] = { type: "bind", source: "/", target: "/", writable: true, why: "x" };
    assert.throws(() => ociMounts(plan, session), /read-only root/);
    assert.throws(
      () => ociMounts(withMounts([{ type: "tmpfs", target: "/", why: "x" }]), session),
      /second mount on \//,
    );
  });

  it("refuses a mount that would hide the proxy socket's directory", () => {
    assert.throws(
      () => bundle(withMounts([{ type: "tmpfs", target: "/run/fourwall", why: "x" }])),
      /hide the proxy socket/,
    );
    assert.throws(
      () => bundle(withMounts([{ type: "tmpfs", target: session.netDir, why: "x" }])),
      /hide the proxy socket/,
    );
  });

  it("a custom root becomes the OCI root", () => {
    const plan = makePlan({ filesystem: { root: "/srv/rootfs" } });
    assert.equal(ociMounts(plan, session).root, "/srv/rootfs");
  });
});

describe("prelude script", () => {
  it("quotes hostile names and stops at the first failure", () => {
    const script = preludeScript([{ target: "/home/a/it's", linkTo: "$(reboot)" }], "/tmp/x/net");
    assert.match(script, /ln -s -- '\$\(reboot\)' '\/home\/a\/it'\\''s'/);
    assert.equal(
      script.split("\n").every((line) => line.endsWith("exit 125; }")),
      true,
    );
  });
});
