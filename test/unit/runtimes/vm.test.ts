/**
 * BoxPlan → microVM (src/runtimes/vm.ts), pure: QEMU gets no device and no network but what the
 * plan allows, and the guest runs the box with the namespaces runtime's very own arguments.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import type { BoxPlan } from "../../../src/plan/plan.js";
import {
  GUEST_NET,
  guestMemoryMiB,
  guestScript,
  qemuArgs,
  writableShares,
} from "../../../src/runtimes/vm.js";
import { classifyAddress } from "../../../src/walls/egress/rules/addresses.js";
import { HOME, testPlan, WORK } from "../../helpers/plan.js";

const IMAGE = { kernel: "/k/vmlinuz", initrd: "/k/initrd.img" };

const makePlan = (policy: object = {}, hostUid = 1000): BoxPlan =>
  testPlan({
    host: [`${HOME}/.ssh/id_ed25519`, `${WORK}/src/main.ts`, `${WORK}/.env`, "/tmp/", "/var/tmp/"],
    policy,
    hostUid,
    command: ["sh", "-c", "echo 'it''s' \"$HOME\""],
  });

const option = (args: string[], flag: string) => args.flatMap((a, i) => (args[i - 1] === flag ? [a] : []));

describe("qemuArgs", () => {
  const plan = makePlan();
  const args = qemuArgs(plan, "/run/fourwall/vm", IMAGE);

  it("a path in an option string is data: a comma in it is doubled, never a new option", () => {
    const odd = "/w/a,readonly=off,security_model=passthrough";
    const withOdd: BoxPlan = {
      ...plan,
      filesystem: {
        ...plan.filesystem,
        mounts: [
          ...plan.filesystem.mounts,
          { type: "bind", source: odd, target: odd, writable: true, why: "test" },
        ],
      },
    };
    const fsdevs = option(qemuArgs(withOdd, "/run/x,y", IMAGE), "-fsdev");
    const share = fsdevs.find((f) => f.includes("/w/a"))!;
    assert.match(share, /path=\/w\/a,,readonly=off,,security_model=passthrough,security_model=none,/);
    assert.ok(
      option(qemuArgs(withOdd, "/run/x,y", IMAGE), "-chardev").every((c) => c.includes("/run/x,,y/")),
    );
  });

  it("no default devices, no display, no monitor, no reboot", () => {
    for (const flag of ["-nodefaults", "-no-user-config", "-no-reboot"]) assert.ok(args.includes(flag), flag);
    assert.deepEqual(option(args, "-display"), ["none"]);
    assert.ok(!args.includes("-monitor") && !args.includes("-nographic"));
  });

  it("one network: user mode, restricted, its only exits the guestfwd relays to the box's own sockets", () => {
    const netdevs = option(args, "-netdev");
    assert.equal(netdevs.length, 1);
    const parts = netdevs[0]!.split(",");
    assert.equal(parts[0], "user");
    assert.ok(parts.includes("restrict=on"));
    assert.ok(!parts.some((p) => p.startsWith("hostfwd")), "no port of the guest is forwarded to the host");
    const forwards = parts.filter((p) => p.startsWith("guestfwd="));
    assert.deepEqual(
      forwards.map((f) => f.replace(/^guestfwd=tcp:[\d.]+:\d+-cmd:/, "")),
      [
        "/usr/bin/socat STDIO UNIX-CONNECT:/run/fourwall/proxy.sock",
        "/usr/bin/socat STDIO UNIX-CONNECT:/run/fourwall/gate.sock",
      ],
    );
    const devices = option(args, "-device").filter((d) => /net/.test(d));
    assert.deepEqual(devices, ["virtio-net-pci,netdev=net0,romfile="]);
  });

  it("the guest's network lives in the test and benchmark range (never a routed or private one)", () => {
    for (const address of [GUEST_NET.guest, GUEST_NET.relay])
      assert.equal(classifyAddress(address), "benchmarking", address);
  });

  it("the root share is read-only; the only writable shares are the plan's writable paths", () => {
    const fsdevs = option(args, "-fsdev");
    const root = fsdevs.find((f) => f.includes("id=fwroot,"))!;
    assert.match(root, /path=\/,.*readonly=on/);
    const writable = fsdevs.filter((f) => !f.includes("readonly=on"));
    assert.deepEqual(
      writable.map((f) => /path=([^,]+)/.exec(f)![1]),
      plan.filesystem.mounts.filter((m) => m.type === "bind" && m.writable).map((m) => m.target),
    );
    assert.ok(writable.some((f) => f.includes(`path=${WORK},`)));
    assert.ok(!fsdevs.some((f) => f.includes(`path=${HOME},`) || f.includes(".ssh")));
  });

  it("guest memory: half the box's cap, between 256 MiB and 1 GiB", () => {
    assert.equal(guestMemoryMiB(4 * 2 ** 30), 1024);
    assert.equal(guestMemoryMiB(1 * 2 ** 30), 512);
    assert.equal(guestMemoryMiB(128 * 2 ** 20), 256);
  });
});

describe("guestScript", () => {
  it("parses as a shell script, with every value quoted", () => {
    const script = `fail() { :; }; port() { :; }; run_box() { :; }\n${guestScript(makePlan(), [])}`;
    const parsed = spawnSync("sh", ["-n", "-c", script], { encoding: "utf8" });
    assert.equal(parsed.status, 0, parsed.stderr);
  });

  it("runs the box with the namespaces runtime's own protections, as the box uid, with no capability", () => {
    const script = guestScript(makePlan({}, 0), []);
    assert.match(
      script,
      /setpriv --reuid=70000 --regid=70000 --clear-groups --inh-caps=-all --bounding-set=-all/,
    );
    for (const flag of ["--unshare-net", "--unshare-pid", "--disable-userns", "--die-with-parent"])
      assert.ok(script.includes(`'${flag}'`), flag);
    assert.match(script, /'--cap-drop' \\\n\s+'ALL'/);
    assert.match(script, /'--seccomp' \\\n\s+'3'/);
    assert.match(script, /3<"\$G\/cfg\/seccomp.bpf"/);
    // the host's environment is not passed: only the plan's
    assert.ok(!script.includes("GITHUB_TOKEN"));
  });

  it("mounts exactly the plan's writable shares read-write, the root read-only", () => {
    const plan = makePlan();
    const script = guestScript(plan, []);
    const rw = [...script.matchAll(/-o trans=virtio,[^ ]*\brw\b[^ ]* (fwrw\d+) '\/newroot([^']*)'/g)].map(
      (m) => [m[1], m[2]],
    );
    assert.deepEqual(
      rw,
      writableShares(plan.filesystem.mounts).map((s) => [s.tag, s.path]),
    );
    assert.match(script, /ro,cache=loose fwroot '\/newroot'/);
  });
});
