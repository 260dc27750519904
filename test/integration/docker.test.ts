/**
 * `--runtime docker`, attacked from inside a real container: a subset of the walls of
 * walls.test.ts and egress-box.test.ts (secrets, host read-only, workdir writable, no
 * capabilities, seccomp, no network but the proxy), run as root against the docker daemon the
 * host already runs (when it is fit for fourwall) or a private one started here and removed after.
 * The image is fourwall's "tools" image (python3, curl, git, node on busybox, built from the
 * host's files); one test also runs the tiny default image (busybox-static + socat).
 * The real clients (curl, git, python, node, npm) run in egress-box.test.ts on this runtime too, and
 * `fourwall prove -r docker` in prove.test.ts.
 * The uid-65534 mode is refused by design (the daemon is root; rootless Docker is out of scope):
 * that refusal is tested, nothing else runs as 65534.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type Fixture,
  FOURWALL,
  makeFixture,
  type Result,
  runDirs,
  SECRET,
  sh,
  USER_UID,
  waitFor,
} from "../helpers/box.js";
import {
  type DockerBoxes,
  dockerdUnavailable,
  dockerFixture as fixture,
  fourwallContainers,
  startDockerBoxes,
} from "../helpers/docker-box.js";
import { type HostCanaries, startHostCanaries } from "../helpers/host-canaries.js";

const skip = dockerdUnavailable() ?? false;
let boxes: DockerBoxes | undefined;
let canaries: HostCanaries | undefined;

before(async () => {
  if (skip) return;
  canaries = await startHostCanaries("dk");
  boxes = await startDockerBoxes();
});
after(async () => {
  canaries?.close();
  await boxes?.stop();
});

const D = () => ({ flags: ["-r", "docker", ...boxes!.imageFlags], timeoutMs: 60_000, env: boxes!.env });
const run = (fx: Fixture, script: string, flags: string[] = []): Promise<Result> => {
  const o = D();
  return sh(fx, script, { ...o, flags: [...o.flags, ...flags] });
};
/** The same script in a docker box with one protection removed (test/helpers/weak-box.ts --runtime docker). */
const weakDocker = (fx: Fixture, weaken: string, script: string): Promise<Result> =>
  sh(fx, script, {
    weaken: [weaken],
    weakRuntime: "docker",
    weakFlags: boxes!.imageFlags,
    timeoutMs: 60_000,
    env: boxes!.env,
  });

describe("docker: walls (root)", { skip, concurrency: 2 }, () => {
  it("keeps secrets invisible: home secrets absent, workdir .env covered, secret env not passed", async () => {
    const fx = fixture();
    const r = await run(
      fx,
      "cat ~/.ssh/id_ed25519 ~/.aws/credentials ~/.netrc ~/.config/gcloud/credentials.db .env 2>/dev/null; env; ls -a / /run /var/run 2>/dev/null; true",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, new RegExp(SECRET), r.stdout);
    assert.doesNotMatch(r.stdout, /docker\.sock/);
    assert.match(r.stdout, /FOURWALL=1/);
  });

  it("host is read-only (image root), workdir writable by an unprivileged uid, outside untouched", async () => {
    const fx = fixture();
    const r = await run(
      fx,
      `echo x > /etc/pwned 2>/dev/null && echo WROTE-ETC; echo x > /pwned 2>/dev/null && echo WROTE-ROOT; echo x > ${fx.outside} 2>/dev/null && echo WROTE-OUTSIDE; ` +
        "echo made-in-box > out.txt && mkdir -p sub && echo y > sub/f; id -u; cat /proc/self/status | grep -E '^(CapEff|CapPrm|CapBnd)'",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /WROTE-/, r.stdout);
    assert.equal(readFileSync(path.join(fx.workdir, "out.txt"), "utf8"), "made-in-box\n");
    assert.equal(statSync(path.join(fx.workdir, "out.txt")).uid, USER_UID);
    assert.equal(readFileSync(fx.outside, "utf8"), "outside the workdir\n");
    assert.match(r.stdout, new RegExp(`^${USER_UID}$`, "m"));
    assert.match(r.stdout, /CapEff:\s+0+$/m);
    assert.match(r.stdout, /CapPrm:\s+0+$/m);
    assert.match(r.stdout, /CapBnd:\s+0+$/m);
  });

  it("enforces fourwall's seccomp rules (no new user namespace, no mount namespace)", async () => {
    const fx = fixture();
    const r = await run(
      fx,
      "unshare -U true 2>/dev/null && echo USERNS; unshare -m true 2>/dev/null && echo MNTNS; echo done",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done/);
    assert.doesNotMatch(r.stdout, /USERNS|MNTNS/, r.stdout);
  });

  it("runs on gVisor's kernel (runsc), not the host's", async () => {
    const fx = fixture();
    const r = await run(fx, "uname -r; cat /proc/version");
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, new RegExp(os.release().replace(/[.+]/g, "\\$&")));
  });

  it("passes the command's exit status", async () => {
    const fx = fixture();
    const r = await run(fx, "exit 7");
    assert.equal(r.code, 7, r.stderr);
  });
});

describe("docker: the checks see the hole in a broken docker box", { skip, concurrency: 2 }, () => {
  it("without the seccomp profile, a new user namespace can be made", async () => {
    const r = await weakDocker(fixture(), "seccomp", "unshare -U true 2>/dev/null && echo USERNS; true");
    assert.match(r.stdout, /USERNS/, r.stdout + r.stderr);
  });
  it("as root with Docker's default capabilities, CapEff is not 0", async () => {
    const r = await weakDocker(fixture(), "caps", "grep CapEff /proc/self/status; id -u");
    assert.match(r.stdout, /CapEff/, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /CapEff:\s+0+$/m, r.stdout + r.stderr);
  });
  it("without the cover, the workdir's .env is read", async () => {
    const r = await weakDocker(fixture(), "secrets", "cat .env");
    assert.match(r.stdout, new RegExp(SECRET), r.stdout + r.stderr);
  });
});

describe("docker: egress wall (root)", { skip, concurrency: 2 }, () => {
  const flags = () => [
    "-a",
    `allowed.test:${canaries!.originPort}`,
    "--resolve",
    "allowed.test=127.0.0.1",
    "--resolve",
    "other.test=127.0.0.1",
  ];

  it("lets an allowlisted origin through the proxy, body checked", async () => {
    const fx = fixture();
    const r = await run(fx, `wget -q -O - http://allowed.test:${canaries!.originPort}/wget`, flags());
    assert.match(r.stdout, /origin-body \/wget/, r.stderr);
  });

  it("refuses an unlisted host with a 403, and says so at exit", async () => {
    const fx = fixture();
    const url = `http://other.test:${canaries!.originPort}/`;
    // busybox wget hides the headers of an error response: ask the bridge by hand
    const r = await run(
      fx,
      `printf 'GET ${url} HTTP/1.0\\r\\nHost: other.test:${canaries!.originPort}\\r\\n\\r\\n' | nc 127.0.0.1 3128`,
      flags(),
    );
    assert.match(r.stdout, /403/, r.stdout + r.stderr);
    assert.match(r.stdout, /X-Fourwall-Denied: not-allowed/i);
    assert.match(r.stderr, /egress blocked 1 request/);
  });

  it("has no way out but the proxy: no direct connection, no interface but lo, no host socket", async () => {
    const fx = fixture();
    const c = canaries!;
    const r = await run(
      fx,
      `wget -q -T 3 -O - http://127.0.0.1:${c.originPort}/direct 2>/dev/null; no_proxy='*' wget -q -T 3 -O - http://127.0.0.1:${c.loopbackPort}/ 2>/dev/null; ` +
        `echo | nc -w 2 127.0.0.1 ${c.originPort} 2>/dev/null | grep -q . && echo CONNECTED; ` +
        `echo links=$(ls /sys/class/net 2>/dev/null | grep -vc '^lo$'); ` +
        c.socketPaths
          .map((p) => `echo | nc -w 2 local:${p} 2>/dev/null; nc -U ${p} </dev/null 2>/dev/null`)
          .join("; ") +
        "; true",
      flags(),
    );
    assert.doesNotMatch(r.stdout, /origin-body|loopback-canary|CONNECTED|socket-canary/, r.stdout + r.stderr);
    assert.match(r.stdout, /links=0/, r.stdout + r.stderr);
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
    assert.ok(await waitFor(() => fourwallContainers(host).length > 0, 20_000), "the container started");
    // the gate's copy-on-write layer, mounted on the host for the daemon (in this box's run dir)
    const layers = () =>
      readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .filter((l) => / overlay .*upperdir=upper,workdir=work/.test(l) && l.includes("/workdir "));
    const mine = layers();
    assert.equal(mine.length >= 1, true, "the gate layer is mounted while the box runs");
    const dirs = runDirs().filter((d) => !before.has(d));
    child.kill("SIGKILL");
    assert.ok(
      await waitFor(() => fourwallContainers(host).length === 0, 20_000),
      `left behind: ${fourwallContainers(host).join(", ")}`,
    );
    assert.ok(
      await waitFor(() => layers().every((l) => !mine.includes(l)), 10_000),
      "the gate layer is unmounted",
    );
    assert.ok(await waitFor(() => runDirs().every((d) => !dirs.includes(d)), 10_000), "the run dir is gone");
  });

  it("leaves no container behind", () => {
    assert.deepEqual(fourwallContainers(boxes!.host), []);
  });
});

// run dirs of the boxes are the supervisor's; make sure the docker ones are gone too
after(() => {
  if (skip) return;
  const left = readdirSync(os.tmpdir()).filter((n) => n.startsWith("fourwall-image-"));
  assert.deepEqual(left, []);
});
