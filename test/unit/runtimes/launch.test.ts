/**
 * The one launcher (src/runtimes/launch.ts), driven by small sh scripts standing in for bwrap,
 * runsc and the docker client: readiness, the exit status, signals, and a box that could not be
 * built becoming a WallError (exit 125) that names the wall. No root, no sandbox.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { WallError } from "../../../src/core/errors.js";
import { type LaunchSpec, launchBox, SIGNAL } from "../../../src/runtimes/launch.js";
import { bwrapFailure } from "../../../src/runtimes/namespaces.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "fourwall-launch-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const base = (script: string): LaunchSpec => ({
  builder: "sh",
  argv: ["/bin/sh", "-c", script],
  env: { PATH: "/usr/bin:/bin" },
  stdio: ["ignore", "ignore", "inherit"],
  extraFds: [],
  detached: false,
  readiness: { kind: "spawned" },
  stop: { kind: "box-children", except: [] },
  forwardTerminalSignals: [],
  exitFrom: "process",
  failure: (captured) => ({ wall: "isolation", message: `not built: ${captured}`, fix: "the fix" }),
});

/** A stand-in for bwrap: the json status on fd 4, "ready" on fd 6, then `then`. */
const bwrapLike = (then: string, status = true): LaunchSpec => ({
  ...base(
    `${status ? `echo '{ "child-pid": '$$' }' >&4; ` : ""}read -r seccomp <&3; [ "$seccomp" = BPF ] || exit 99; ${then}`,
  ),
  extraFds: [
    { fd: 3, use: "input", data: Buffer.from("BPF\n") },
    { fd: 4, use: "json-status" },
    { fd: 6, use: "ready" },
    { fd: 7, use: "stderr" },
  ],
  readiness: { kind: "ready-fd" },
  exitFrom: "json-status",
});

const rejection = async (spec: LaunchSpec) => {
  try {
    await launchBox(spec);
  } catch (error) {
    return error;
  }
  assert.fail("the launch should have been refused");
};

describe("launchBox", () => {
  it("resolves once the box says ready; the exit code comes from the json status", async () => {
    const box = await launchBox(bwrapLike(`echo ready >&6; echo '{ "exit-code": 7 }' >&4; exit 0`));
    assert.equal(typeof box.pid, "number");
    assert.deepEqual(await box.exit, { code: 7 });
  });

  it("without a status exit code, the process's own, and 128+N for a signal", async () => {
    const box = await launchBox(bwrapLike("echo ready >&6; exit 3"));
    assert.deepEqual(await box.exit, { code: 3 });
    const killed = await launchBox({ ...base("kill -TERM $$"), readiness: { kind: "spawned" } });
    assert.deepEqual(await killed.exit, { code: 143 });
  });

  it("a box that ends before it is ready, with no status, was not built: WallError with the builder's message", async () => {
    const error = await rejection(
      bwrapLike('echo "bwrap: Can\'t mkdir /home/a/.ssh/x: No such file or directory" >&2; exit 1'),
    );
    assert.ok(error instanceof WallError);
    assert.equal(error.wall, "isolation"); // base's failure(): the runtime's bwrapFailure names the wall
    assert.match(error.message, /not built: bwrap: Can't mkdir/);
  });

  it("the notReady hook turns a status into the wall's own error (the egress bridge's 125)", async () => {
    const spec = bwrapLike(`echo '{ "exit-code": 125 }' >&4; exit 125`);
    const refused = new WallError("egress", "the bridge did not start", "install socat");
    await assert.rejects(launchBox(spec, { notReady: (s) => (s === 125 ? refused : undefined) }), refused);
  });

  it("a program that cannot be started is an isolation WallError", async () => {
    const error = await rejection({ ...base(""), argv: ["/no/such/launcher"] });
    assert.ok(error instanceof WallError);
    assert.equal(error.wall, "isolation");
    assert.match(error.message, /cannot start \/no\/such\/launcher/);
  });

  it("file readiness: ready once the file exists, refused if the process ends first", async () => {
    const pidFile = path.join(tmp, "pid");
    const box = await launchBox({
      ...base(`sleep 0.1; echo $$ > ${pidFile}; exit 4`),
      readiness: { kind: "file", path: pidFile },
    });
    assert.ok(existsSync(pidFile));
    assert.deepEqual(await box.exit, { code: 4 });
    const error = await rejection({
      ...base("exit 1"),
      readiness: { kind: "file", path: path.join(tmp, "never") },
    });
    assert.ok(error instanceof WallError);
  });

  it("signals: to the box's children (bwrap), or through a command with the signal's name (runsc, docker)", async () => {
    const box = await launchBox(
      bwrapLike(
        // the box's pid 1 (bwrap's init) runs the command as its child
        `echo ready >&6; exec 6>&-; /bin/sh -c "trap 'kill \\$!; exit 42' TERM; sleep 30 & wait"`,
      ),
    );
    await new Promise((r) => setTimeout(r, 200));
    box.signal("SIGTERM");
    assert.deepEqual(await box.exit, { code: 42 });

    // the stand-in's own pid, from its pid file: the stop command signals nothing else
    const pidFile = path.join(tmp, "signalled.pid");
    const viaCommand = await launchBox({
      ...base(`echo $$ > ${pidFile}; exec sleep 30`),
      stop: {
        kind: "command",
        argv: ["/bin/sh", "-c", `kill -"$0" "$(cat ${pidFile})"`, SIGNAL],
        env: { PATH: "/usr/bin:/bin" },
        bare: true,
      },
    });
    while (!existsSync(pidFile)) await new Promise((r) => setTimeout(r, 10));
    viaCommand.signal("SIGTERM"); // `kill -TERM`: the bare name, as runsc kill takes it
    assert.deepEqual(await viaCommand.exit, { code: 143 });
  });

  it("cleanupIfKilled runs when the launcher program was killed (no exit code), not when it exits", async () => {
    const marker = path.join(tmp, "cleaned");
    const pidFile = path.join(tmp, "launcher.pid");
    const spec = (script: string): LaunchSpec => ({
      ...base(script),
      cleanupIfKilled: { argv: ["/bin/sh", "-c", `: > ${marker}`], env: {} },
    });
    await (await launchBox(spec("exit 0"))).exit;
    assert.ok(!existsSync(marker));
    const box = await launchBox(spec(`echo $$ > ${pidFile}; exec sleep 30`));
    while (!existsSync(pidFile)) await new Promise((r) => setTimeout(r, 10));
    process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL");
    assert.deepEqual(await box.exit, { code: 137 });
    assert.ok(existsSync(marker));
  });
});

describe("bwrapFailure", () => {
  it("a mount bwrap could not make: the filesystem wall, naming the path (outside bwrap's /newroot)", () => {
    for (const said of [
      "bwrap: Can't mkdir /home/a/proj/.git/hooks/x: No such file or directory",
      "bwrap: Can't find source path /home/a/proj/.git/hooks: No such file or directory",
      "bwrap: Can't mount tmpfs on /newroot/home/a/.aws: No such file or directory",
      "bwrap: Can't create file at /newroot/home/a/.ssh/id_ed25519: Not a directory",
    ]) {
      const f = bwrapFailure(said);
      assert.equal(f.wall, "filesystem", said);
      assert.match(f.message, /bwrap: Can't/);
      assert.match(f.fix, /^check \/home\/a\/\S+ on the host: .*symlink/);
    }
  });

  it("a write-through overlay the helpers could not mount: the filesystem wall, with the fix", () => {
    for (const said of [
      "fourwall-drop: mount the write-through overlay over /root/.codex: Invalid argument",
      "fourwall-overlay: mount the write-through overlay over /h/.codex: Operation not permitted",
    ]) {
      const f = bwrapFailure(said);
      assert.equal(f.wall, "filesystem", said);
      assert.match(f.message, /placeholder off the host/);
      assert.match(f.fix, /allowPersistence/);
    }
  });

  it("anything else: the isolation wall", () => {
    const f = bwrapFailure("bwrap: Creating new namespace failed: Operation not permitted");
    assert.equal(f.wall, "isolation");
    assert.match(f.message, /Creating new namespace failed/);
    assert.equal(bwrapFailure("").message, "bubblewrap could not build the box: no message");
  });
});
