/**
 * `fourwall prove` for real, launched as root and as uid 65534: it must pass against fourwall's own
 * box (default policy and every preset), and every probe must be able to fail: against no box at
 * all (`sh -c`) it reports holes in every wall, and against deliberately weakened fourwall boxes
 * (test/helpers/weak-box.ts) it names the hole each weakening opens. On the docker runtime (root) it
 * passes in fourwall's tools image, and finds the hole in a docker box without its network wall.
 * Nothing may be left behind.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { which } from "../../src/core/paths.js";
import type { ProveReport } from "../../src/prove/types.js";
import { FOURWALL, MODES, type Mode, ROOT, USER_UID, WEAK_BOX } from "../helpers/box.js";
import {
  type DockerBoxes,
  dockerdUnavailable,
  fourwallContainers,
  startDockerBoxes,
} from "../helpers/docker-box.js";

const TSX_LOADER = pathToFileURL(path.join(ROOT, "node_modules", "tsx", "dist", "loader.mjs")).href;
const PRESETS = ["claude-code", "codex", "node-dev", "python-dev"];

// A neutral place to start from: no fourwall.yaml of the checkout's is picked up, and uid 65534
// gets a HOME of its own (for its policy cache).
const scratch = mkdtempSync(path.join(os.tmpdir(), "fwprove-it-"));
chmodSync(scratch, 0o755);
const userHome = path.join(scratch, "nobody");
spawnSync("mkdir", ["-p", userHome]);
chownSync(userHome, USER_UID, USER_UID);
after(() => rmSync(scratch, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The microVM boots under TCG emulation here: seconds, more while the suite loads both cores. */
const VM_TIMEOUT_MS = 240_000;

function prove(
  mode: Mode,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<Run> {
  const argv = [process.execPath, FOURWALL, "prove", ...args];
  const [program, ...rest] =
    mode === "root"
      ? argv
      : ["setpriv", `--reuid=${USER_UID}`, `--regid=${USER_UID}`, "--clear-groups", ...argv];
  return new Promise((resolve) => {
    const child = spawn(program!, rest, {
      cwd: scratch,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        LANG: "C.UTF-8",
        HOME: mode === "root" ? os.homedir() : userHome,
        // Root's box daemon is machine-wide, and persistent.test.ts kills its daemon on purpose:
        // as root prove takes the Node path here (daemon-run.test.ts covers root's daemon path);
        // as uid 65534 prove goes through its own private daemon, its default.
        ...(mode === "root" ? { FOURWALL_NO_DAEMON: "1" } : {}),
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function proveJson(
  mode: Mode,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs?: number,
): Promise<{ run: Run; report: ProveReport }> {
  const run = await prove(mode, ["--json", ...args], env, timeoutMs);
  let report: ProveReport;
  try {
    report = JSON.parse(run.stdout) as ProveReport;
  } catch {
    assert.fail(`prove printed no JSON (exit ${run.code})\n${run.stdout}\n${run.stderr}`);
  }
  return { run, report };
}

const statusOf = (report: ProveReport, id: string) => report.results.find((r) => r.id === id)?.status;
const describeRun = (report: ProveReport, run: Run) =>
  `${report.results
    .filter((r) => r.status !== "PASS")
    .map((r) => `${r.status} ${r.id}: ${r.observed}`)
    .join("\n")}\nnotes: ${report.notes.join("; ")}\n${run.stderr}`;

const readFileOr = (p: string) => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
};

/** What a prove run could leave behind on the host if its teardown failed (names carry its run id). */
function leftovers(report: ProveReport): string[] {
  const id = report.runId;
  const found = [
    ...readdirSync(os.tmpdir()).filter((n) => n.startsWith(`fourwall-prove-${id}`)),
    ...[
      `/run/fourwall-prove-${id}.sock`,
      `/etc/fourwall-probe-${id}`,
      `/usr/fourwall-probe-${id}`,
      `/usr/local/bin/fourwall-probe-${id}`,
    ].filter((p) => existsSync(p)),
  ];
  const netns = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
  found.push(...netns.split("\n").filter((l) => l.startsWith(`fwprove-${id.slice(0, 8)}`)));
  const links = spawnSync("ip", ["-o", "link", "show"], { encoding: "utf8" }).stdout ?? "";
  found.push(...links.split("\n").filter((l) => l.includes(`fwp${id.slice(0, 6)}`)));
  const tables = spawnSync("nft", ["list", "tables"], { encoding: "utf8" }).stdout ?? "";
  found.push(...tables.split("\n").filter((l) => l.includes(`fwprobe_${id.slice(0, 8)}`)));
  // the gate probes' refused changes, kept like any box's: prove drops its own
  for (const kept of ["/run/fourwall/layers/kept", path.join(userHome, ".local/state/fourwall/layers/kept")])
    for (const entry of existsSync(kept) ? readdirSync(kept) : []) {
      const meta = readFileOr(path.join(kept, entry, "meta.json"));
      if (meta.includes(`fourwall-prove-${id}`)) found.push(`change-set ${entry}`);
    }
  return found;
}

for (const mode of MODES) {
  const who = mode === "root" ? "as root" : `as uid ${USER_UID}`;
  describe(`fourwall prove (${who})`, () => {
    it("passes on the gVisor runtime (-r gvisor)", async (t) => {
      if (!which("runsc")) return t.skip("runsc is not installed (npm run setup installs it)");
      const { run, report } = await proveJson(mode, ["-r", "gvisor"]);
      assert.equal(run.code, 0, describeRun(report, run));
      assert.equal(report.tally.hole + report.tally.fail, 0);
      assert.ok(report.tally.pass >= 38, `only ${report.tally.pass} passed`);
      assert.deepEqual(leftovers(report), []);
    });

    it("passes on the microVM runtime (-r vm): a kernel of its own, the same walls inside", {
      timeout: VM_TIMEOUT_MS + 10_000,
    }, async () => {
      const { run, report } = await proveJson(mode, ["-r", "vm"], {}, VM_TIMEOUT_MS);
      assert.equal(run.code, 0, describeRun(report, run));
      assert.equal(report.tally.hole + report.tally.fail, 0);
      assert.ok(report.tally.pass >= 40, `only ${report.tally.pass} passed`);
      assert.match(
        report.results.find((r) => r.id === "isolation.runtime")!.observed,
        /the microVM's own kernel/,
      );
      for (const id of ["egress.listed-http", "egress.listed-https", "gate.denied-delete-survives"])
        assert.equal(statusOf(report, id), "PASS", id);
      assert.deepEqual(leftovers(report), []);
    });

    it("passes through the exec path of a persistent box (--exec: the probe enters with fourwall-enter)", async () => {
      const { run, report } = await proveJson(mode, ["--exec"]);
      assert.equal(run.code, 0, describeRun(report, run));
      assert.equal(report.tally.hole + report.tally.fail, 0);
      assert.ok(report.tally.pass >= 38, `only ${report.tally.pass} passed`);
      assert.equal(statusOf(report, "gate.denied-delete-survives"), "PASS");
      assert.deepEqual(leftovers(report), []);
    });

    it("passes against fourwall's box with the default policy and with each preset", async () => {
      const runs = await Promise.all(
        [[], ...PRESETS.map((p) => ["--preset", p])].map((args) => proveJson(mode, args)),
      );
      for (const { run, report } of runs) {
        const what = report.target.kind === "box" ? `presets [${report.target.presets.join(",")}]` : "?";
        assert.equal(run.code, 0, `${what}\n${describeRun(report, run)}`);
        assert.equal(report.ok, true);
        assert.equal(report.tally.hole + report.tally.fail, 0);
        assert.ok(report.tally.pass >= 38, `${what}: only ${report.tally.pass} passed`);
        // The refusals carry fourwall's reason; the listed canary really answered over both protocols.
        assert.match(
          report.results.find((r) => r.id === "egress.unlisted-http")!.observed,
          /^403 not-allowed$/,
        );
        assert.match(
          report.results.find((r) => r.id === "egress.internal-guard")!.observed,
          /address-loopback/,
        );
        assert.equal(statusOf(report, "egress.listed-https"), "PASS");
        // the credential canary is bound (--secret) on this path too (root: direct, user: the daemon)
        for (const id of ["credential-hidden", "credential-exfiltration"])
          assert.equal(
            statusOf(report, `egress.${id}`),
            "PASS",
            `${what}: ${id}\n${describeRun(report, run)}`,
          );
        assert.match(
          report.results.find((r) => r.id === "egress.credential-hidden")!.observed,
          /a sentinel in \$FWPROVE_API_KEY/,
        );
        for (const id of [
          "delete-asks",
          "denied-delete-survives",
          "history-rewrite",
          "setuid-apply",
          "layer-unreachable",
        ])
          assert.equal(statusOf(report, `gate.${id}`), "PASS", id);
        const outside = report.results.find((r) => r.id === "egress.outside-host")!;
        if (mode === "root") assert.equal(outside.status, "PASS", outside.observed);
        else assert.deepEqual([outside.status, /needs root/.test(outside.observed)], ["SKIP", true]);
        assert.deepEqual(leftovers(report), []);
      }
    });

    it("a box built without the credential canary's --secret (a path that drops it) fails the credential probes", async () => {
      const { run, report } = await proveJson(mode, ["--only", "egress"], {
        FWPROVE_UNSAFE_UNBOUND: "1",
      });
      assert.equal(run.code, 1, describeRun(report, run));
      for (const id of ["credential-hidden", "credential-exfiltration"])
        assert.equal(statusOf(report, `egress.${id}`), "FAIL", `${id}\n${describeRun(report, run)}`);
      assert.match(
        report.results.find((r) => r.id === "egress.credential-exfiltration")!.observed,
        /skipped, though the box was given the credential binding/,
      );
      assert.deepEqual(leftovers(report), []);
    });

    it("against no box at all (sh -c) reports holes in every wall and exits non-zero", async () => {
      const { run, report } = await proveJson(mode, ["--against", "sh -c"]);
      assert.equal(run.code, 1);
      assert.equal(report.target.kind, "against");
      for (const wall of ["isolation", "filesystem", "egress", "gate"]) {
        const holes = report.results.filter((r) => r.wall === wall && r.status === "HOLE");
        assert.ok(
          holes.length > 0,
          `no hole found in the ${wall} wall without a box\n${describeRun(report, run)}`,
        );
      }
      for (const id of [
        "isolation.no-new-privs",
        "isolation.seccomp",
        "filesystem.read-secrets",
        "filesystem.environment",
        "egress.host-loopback",
        "egress.udp",
        "gate.history-rewrite",
      ]) {
        assert.equal(statusOf(report, id), "HOLE", id);
      }
      if (mode === "root") {
        for (const id of [
          "isolation.capabilities",
          "filesystem.write-etc",
          "egress.outside-host",
          "egress.dns-tunnel",
          "egress.firewall",
        ]) {
          assert.equal(statusOf(report, id), "HOLE", id);
        }
      }
      assert.deepEqual(
        leftovers(report),
        [],
        "a leaky wrapper's writes to /etc, /usr and the host's network are undone",
      );
    });
  });
}

describe("fourwall prove catches a deliberately weakened fourwall box", () => {
  const weak = (what: string) => `${process.execPath} --import ${TSX_LOADER} ${WEAK_BOX} --weaken ${what} --`;
  const cases: { weaken: string; only: string; holes: string[] }[] = [
    {
      weaken: "secrets",
      only: "filesystem",
      holes: ["filesystem.read-secrets", "filesystem.read-dotenv", "filesystem.proc-root"],
    },
    { weaken: "env", only: "filesystem", holes: ["filesystem.environment"] },
    { weaken: "seccomp", only: "isolation", holes: ["isolation.seccomp"] },
    { weaken: "rlimits", only: "isolation", holes: ["isolation.rlimits"] },
    { weaken: "net", only: "egress", holes: ["egress.host-loopback", "egress.ipv6-loopback", "egress.udp"] },
    { weaken: "git-history", only: "gate", holes: ["gate.history-rewrite"] },
  ];
  for (const c of cases) {
    it(`without ${c.weaken}: ${c.holes.join(", ")}`, async () => {
      const { run, report } = await proveJson("root", ["--only", c.only, "--against", weak(c.weaken)]);
      assert.equal(run.code, 1, describeRun(report, run));
      for (const id of c.holes)
        assert.equal(statusOf(report, id), "HOLE", `${id}\n${describeRun(report, run)}`);
    });
  }
});

describe("fourwall prove catches a deliberately weakened microVM box", () => {
  it("the guest's box without seccomp and with the home's secrets bound in: isolation.seccomp, filesystem.read-secrets", {
    timeout: VM_TIMEOUT_MS + 10_000,
  }, async () => {
    const weak = `${process.execPath} --import ${TSX_LOADER} ${WEAK_BOX} --runtime vm --weaken seccomp,secrets --`;
    const { run, report } = await proveJson(
      "root",
      ["--only", "isolation,filesystem", "--against", weak],
      {},
      VM_TIMEOUT_MS,
    );
    assert.equal(run.code, 1, describeRun(report, run));
    for (const id of ["isolation.seccomp", "filesystem.read-secrets"])
      assert.equal(statusOf(report, id), "HOLE", `${id}\n${describeRun(report, run)}`);
  });
});

/** Where prove's runs keep their throwaway homes (its boxes' host paths), on a daemon maybe shared with other files. */
const proveDirs = () => [path.join(os.tmpdir(), "fourwall-prove-")];

describe("fourwall prove on the docker runtime (root)", { skip: dockerdUnavailable() ?? false }, () => {
  let boxes: DockerBoxes | undefined;
  before(async () => {
    boxes = await startDockerBoxes();
  });
  after(async () => boxes?.stop());

  it("passes in fourwall's tools image (built when no image is named), the gate probes included", async () => {
    // DOCKER_HOST only: prove builds (or finds) the tools image itself
    const { run, report } = await proveJson("root", ["-r", "docker"], { DOCKER_HOST: boxes!.host });
    assert.equal(run.code, 0, describeRun(report, run));
    assert.equal(report.tally.hole + report.tally.fail, 0);
    assert.ok(report.tally.pass >= 40, `only ${report.tally.pass} passed`);
    assert.match(
      report.results.find((r) => r.id === "isolation.runtime")!.observed,
      /gVisor's kernel under docker/,
    );
    // the gate's copy-on-write layer, mounted on the host for the daemon: the delete is asked, then undone
    for (const id of ["gate.delete-asks", "gate.denied-delete-survives"])
      assert.equal(statusOf(report, id), "PASS", id);
    assert.deepEqual(leftovers(report), []);
    assert.deepEqual(fourwallContainers(boxes!.host, proveDirs()), []);
  });

  it("finds the hole in a docker box whose network wall is removed (runc, the host's network)", async () => {
    // docker runs the box as the workdir's owner, never root: the wrapper hands prove's throwaway home over first
    const weak =
      `chown -R ${USER_UID}:${USER_UID} "$HOME" && DOCKER_HOST=${boxes!.host} ` +
      `${process.execPath} --import ${TSX_LOADER} ${WEAK_BOX} --runtime docker --image ${boxes!.image} --weaken net --`;
    const { run, report } = await proveJson("root", ["--only", "egress", "--against", weak]);
    assert.equal(run.code, 1, describeRun(report, run));
    for (const id of ["egress.host-loopback", "egress.udp"])
      assert.equal(statusOf(report, id), "HOLE", `${id}\n${describeRun(report, run)}`);
    assert.deepEqual(fourwallContainers(boxes!.host, proveDirs()), []);
  });
});

describe("fourwall prove output", () => {
  it("--junit writes XML that parses and agrees with --json; --only filters walls", async () => {
    const junit = path.join(scratch, "prove.xml");
    const { run, report } = await proveJson("root", ["--only", "isolation,gate", "--junit", junit]);
    assert.equal(run.code, 0, describeRun(report, run));
    assert.deepEqual([...new Set(report.results.map((r) => r.wall))], ["isolation", "gate"]);
    const counted = spawnSync(
      "python3",
      [
        "-c",
        "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); print(r.get('tests'), r.get('failures'), r.get('skipped'), len(r.findall('.//testcase')))",
        junit,
      ],
      { encoding: "utf8" },
    );
    const total = report.results.length;
    assert.equal(counted.stdout.trim(), `${total} 0 ${report.tally.skip} ${total}`, counted.stderr);
  });

  it("the table ends with a verdict; an invalid policy means no box: exit 125, nothing proven", async () => {
    const table = await prove("root", ["--only", "isolation"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /The walls held: \d+ probes passed/);
    const bad = path.join(scratch, "bad.yaml");
    writeFileSync(bad, "isolation:\n  limits:\n    memory: lots\n");
    const { run, report } = await proveJson("root", ["--only", "isolation", "--policy", bad]);
    assert.equal(run.code, 125);
    assert.equal(report.ok, false);
    assert.deepEqual(report.results, [], "no row for a probe that never ran");
    assert.match(report.notes.join("\n"), /memory/);
    assert.equal(existsSync(bad) && readFileSync(bad, "utf8").includes("lots"), true);
  });

  for (const mode of MODES)
    it(`a box that cannot be built (no docker daemon) is said once, with the fix: exit 125, no rows (${mode})`, async () => {
      const run = await prove(mode, ["-r", "docker", "--only", "isolation"], {
        DOCKER_HOST: `unix://${path.join(scratch, "no-daemon.sock")}`,
      });
      assert.equal(run.code, 125, run.stderr);
      assert.equal(run.stdout, "", "no table of probes that never ran");
      assert.equal(run.stderr.match(/could not be built/g)?.length, 2, run.stderr); // the headline and the wall's own line
      assert.match(run.stderr, /fix: /);
      assert.doesNotMatch(run.stderr + run.stdout, /FAIL/);
    });
});
