/**
 * The squid backend's life around a box, both launch modes: one squid per box with its own files,
 * started and verified before the command runs, gone (process, shared memory, files) after a normal
 * exit and after fourwall is SIGKILLed; a squid that cannot start or listens where it should not
 * means exit 125 and nothing runs.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { FOURWALL, MODES, makeFixture, runDirs, runInBox, sh, userArgs, waitFor } from "../helpers/box.js";

/** FOURWALL_SQUID (a squid-openssl kept outside PATH) reaches fourwall through the fixture's clean env. */
const squidEnv: Record<string, string> = process.env.FOURWALL_SQUID
  ? { FOURWALL_SQUID: process.env.FOURWALL_SQUID }
  : {};

/**
 * Processes whose command line contains `text` (squid runs as `squid -N -n fourwall<box>x<pid> ...`);
 * a leading ^ anchors it at the start of the command line.
 */
function processesWith(text: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      if (text.startsWith("^") ? cmd.startsWith(text.slice(1)) : cmd.includes(text)) out.push(Number(pid));
    } catch {}
  }
  return out;
}
const segments = (prefix: string) => readdirSync("/dev/shm").filter((n) => n.startsWith(prefix));

const fakes = mkdtempSync(path.join(os.tmpdir(), "fwtest-fakesquid-"));
chmodSync(fakes, 0o755);
after(() => rmSync(fakes, { recursive: true, force: true }));

/** A directory holding a program named `squid` (first on PATH), readable and runnable by any uid. */
function fakeSquid(name: string, script: string): string {
  const dir = path.join(fakes, name);
  if (!existsSync(dir)) {
    mkdirSync(dir, { mode: 0o755 });
    writeFileSync(path.join(dir, "squid"), script, { mode: 0o755 });
  }
  return dir;
}

for (const mode of MODES) {
  describe(`squid backend lifecycle (${mode})`, () => {
    it("runs one squid per box with its own service name, and leaves nothing after the box exits", async () => {
      const fx = makeFixture(mode);
      const audit = path.join(fx.home, "audit.jsonl");
      const r = await sh(fx, "ls /run/fourwall; echo ran", {
        flags: ["--proxy", "squid", "--audit", audit],
        env: squidEnv,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /proxy\.sock/);
      const box = JSON.parse(readFileSync(audit, "utf8").split("\n")[0]!).box as string;
      const service = `fourwall${box}x`;
      assert.deepEqual(processesWith(`-n ${service}`), [], "squid still runs after the box ended");
      assert.deepEqual(segments(service), [], "squid's shared memory was left behind");
      assert.ok(!runDirs().some((d) => d.startsWith(`fourwall-${box}-`)), "the run dir was left behind");
    });

    it("stops squid and removes its segments when fourwall is killed with SIGKILL", async () => {
      const fx = makeFixture(mode);
      const audit = path.join(fx.home, "audit.jsonl");
      const marker = String(3000 + Math.floor(Math.random() * 5000));
      const asUser = userArgs(mode);
      const [program, ...args] = [
        ...asUser,
        process.execPath,
        FOURWALL,
        "run",
        "--proxy",
        "squid",
        "--audit",
        audit,
        "--",
        "sleep",
        marker,
      ];
      const child = spawn(program!, args, {
        cwd: fx.workdir,
        env: { ...fx.env, ...squidEnv },
        stdio: "ignore",
      });
      let service = "";
      try {
        assert.ok(
          await waitFor(() => {
            try {
              const box = JSON.parse(readFileSync(audit, "utf8").split("\n")[0]!).box as string;
              service = `fourwall${box}x`;
            } catch {
              return false; // not written yet
            }
            return processesWith(`-n ${service}`).length > 0 && processesWith(`^sleep ${marker}`).length > 0;
          }, 10_000),
          "box and squid started",
        );
        assert.ok(segments(service).length > 0, "squid made its shared-memory segments");
      } finally {
        child.kill("SIGKILL");
      }
      assert.ok(await waitFor(() => processesWith(`-n ${service}`).length === 0, 5_000), "squid is gone");
      assert.ok(await waitFor(() => segments(service).length === 0, 5_000), "its segments are gone");
      assert.ok(
        await waitFor(() => processesWith(`^sleep ${marker}`).length === 0, 5_000),
        "the box is gone",
      );
    });

    it("fails closed (exit 125, nothing runs) when squid cannot start", async () => {
      const fx = makeFixture(mode);
      const dir = fakeSquid("fails", "#!/bin/sh\necho 'FATAL: this squid refuses to start' >&2\nexit 1\n");
      const r = await runInBox(fx, ["touch", "ran"], {
        flags: ["--proxy", "squid"],
        env: { PATH: `${dir}:${fx.env.PATH}` },
      });
      assert.equal(r.code, 125, r.stderr);
      assert.match(r.stderr, /egress wall.*squid.*this squid refuses to start/s);
      assert.equal(existsSync(path.join(fx.workdir, "ran")), false);
    });

    it("fails closed when squid listens anywhere but the one configured listener", async () => {
      const fx = makeFixture(mode);
      // Listens where the config says, and on one more port: the check counts squid's own sockets.
      const dir = fakeSquid(
        "extra",
        `#!/usr/bin/python3
import re, socket, sys, time
conf = open(sys.argv[sys.argv.index("-f") + 1]).read()
port = int(re.search(r"^http_port 127\\.0\\.0\\.1:(\\d+)", conf, re.M).group(1))
socks = []
for p in (port, 0):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", p)); s.listen(1); socks.append(s)
time.sleep(30)
`,
      );
      const r = await runInBox(fx, ["touch", "ran"], {
        flags: ["--proxy", "squid"],
        env: { PATH: `${dir}:${fx.env.PATH}` },
      });
      assert.equal(r.code, 125, r.stderr);
      assert.match(r.stderr, /squid listens on .* not only on 127\.0\.0\.1:\d+/);
      assert.equal(existsSync(path.join(fx.workdir, "ran")), false);
    });

    it("refuses a policy squid cannot enforce (unknown: ask) with exit 125", async () => {
      const fx = makeFixture(mode);
      writeFileSync(path.join(fx.workdir, "ask.yaml"), "egress:\n  unknown: ask\n  proxy: squid\n");
      const r = await runInBox(fx, ["touch", "ran"], { flags: ["--policy", "ask.yaml"] });
      assert.equal(r.code, 125, r.stderr);
      assert.match(r.stderr, /unknown: ask needs the builtin proxy/);
      assert.equal(existsSync(path.join(fx.workdir, "ran")), false);
    });
  });
}
