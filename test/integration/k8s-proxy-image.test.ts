/**
 * The proxy image (k8s/proxy.Dockerfile), built by a local docker daemon, in a network shaped like
 * the rendered NetworkPolicy: the agent container sits on an internal network whose only other
 * member is the proxy; the proxy also sits on an "outside" network with a test origin. All addresses
 * are in 198.18.0.0/15 on networks this test creates (no packet leaves the machine). The same
 * checks run with the agent also attached to the outside network (a cluster without the policy),
 * and must see the hole there.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT } from "../helpers/box.js";
import { type DockerBoxes, dockerdUnavailable, startDockerBoxes } from "../helpers/docker-box.js";

const skip = dockerdUnavailable();
const run = Math.random().toString(36).slice(2, 8);
const AGENTS = {
  name: `fw-agents-${run}`,
  subnet: "198.18.201.0/24",
  proxy: "198.18.201.2",
  agent: "198.18.201.3",
};
const OUTSIDE = {
  name: `fw-outside-${run}`,
  subnet: "198.18.202.0/24",
  proxy: "198.18.202.2",
  origin: "198.18.202.10",
};
const PROXY_IMAGE = `fourwall-egress-test:${run}`;
const BODY = `hello from the origin ${run}`;

describe("k8s: the proxy image on a network shaped like the NetworkPolicy", { skip }, () => {
  let boxes: DockerBoxes;
  let policyDir: string;
  const docker = (...args: string[]) => {
    const r = spawnSync("/usr/bin/docker", args, {
      env: { ...process.env, DOCKER_HOST: boxes.host },
      encoding: "utf8",
      timeout: 240_000,
    });
    return { code: r.status ?? -1, out: `${r.stdout}`, err: `${r.stderr}` };
  };
  const must = (...args: string[]) => {
    const r = docker(...args);
    assert.equal(r.code, 0, `docker ${args.join(" ")}: ${r.err}`);
    return r.out.trim();
  };
  const agentCurl = (...curl: string[]) =>
    docker(
      "exec",
      `fw-agent-${run}`,
      "curl",
      "-sS",
      "--max-time",
      "8",
      "-o",
      "-",
      "-w",
      "\\n%{http_code}",
      ...curl,
    );

  before(async () => {
    boxes = await startDockerBoxes();
    // The image, from the project's Dockerfile, on the tools image (Node from this machine).
    must(
      "build",
      "-q",
      "-f",
      path.join(ROOT, "k8s/proxy.Dockerfile"),
      "--build-arg",
      `BASE=${boxes.image}`,
      "-t",
      PROXY_IMAGE,
      ROOT,
    );
    must("network", "create", "--internal", "--subnet", AGENTS.subnet, AGENTS.name);
    must("network", "create", "--subnet", OUTSIDE.subnet, OUTSIDE.name);
    policyDir = mkdtempSync(path.join(os.tmpdir(), "fourwall-k8s-policy-"));
    chmodSync(policyDir, 0o755); // the proxy runs as uid 65532, as in its pod
    // What the rendered ConfigMap holds: the policy's egress section (here: one listed origin, pinned).
    writeFileSync(
      path.join(policyDir, "policy.json"),
      JSON.stringify({
        egress: {
          allow: ["listed.test:8080"],
          resolve: [`listed.test=${OUTSIDE.origin}`, `unlisted.test=${OUTSIDE.origin}`],
        },
      }),
    );
    must(
      "run",
      "-d",
      "--name",
      `fw-origin-${run}`,
      "--network",
      OUTSIDE.name,
      "--ip",
      OUTSIDE.origin,
      "--read-only",
      "--tmpfs",
      "/srv",
      boxes.image,
      "sh",
      "-c",
      `echo '${BODY}' > /srv/index.html && cd /srv && exec python3 -m http.server 8080 --bind 0.0.0.0`,
    );
    must(
      "run",
      "-d",
      "--name",
      `fw-proxy-${run}`,
      "--network",
      OUTSIDE.name,
      "--ip",
      OUTSIDE.proxy,
      "--read-only",
      "--cap-drop",
      "ALL",
      "--security-opt",
      "no-new-privileges",
      "-v",
      `${policyDir}:/etc/fourwall:ro`,
      PROXY_IMAGE,
    );
    must("network", "connect", "--ip", AGENTS.proxy, AGENTS.name, `fw-proxy-${run}`);
    // The agent: only on the internal network, unprivileged, read-only, proxy variables set.
    must(
      "run",
      "-d",
      "--name",
      `fw-agent-${run}`,
      "--network",
      AGENTS.name,
      "--ip",
      AGENTS.agent,
      "--read-only",
      "--cap-drop",
      "ALL",
      "--user",
      "65534:65534",
      "-e",
      `http_proxy=http://${AGENTS.proxy}:3128`,
      boxes.image,
      "sleep",
      "600",
    );
    // docker 20.10 still gives an --internal network a default route and leaves the drop to
    // iptables, which the test daemon does not touch; a pod under the NetworkPolicy has no way
    // out but the proxy, so the agent's namespace loses that route (set from outside: the agent
    // holds no CAP_NET_ADMIN).
    const pid = must("inspect", "-f", "{{.State.Pid}}", `fw-agent-${run}`);
    const cut = spawnSync("nsenter", ["-t", pid, "-n", "ip", "route", "del", "default"], {
      encoding: "utf8",
    });
    assert.equal(cut.status, 0, cut.stderr);
    // Ready when the proxy answers (it prints where it listens).
    for (
      let i = 0;
      i < 120 && !docker("logs", `fw-proxy-${run}`).out.includes("listening on 0.0.0.0:3128");
      i++
    )
      await new Promise((r) => setTimeout(r, 500));
  });

  after(() => {
    if (!boxes) return;
    docker("rm", "-f", `fw-origin-${run}`, `fw-proxy-${run}`, `fw-agent-${run}`, `fw-leaky-${run}`);
    docker("network", "rm", AGENTS.name, OUTSIDE.name);
    docker("image", "rm", "-f", PROXY_IMAGE);
    if (policyDir) rmSync(policyDir, { recursive: true, force: true });
    return boxes.stop();
  });

  test("the image runs as a non-root user on a read-only root", () => {
    const user = must("inspect", "-f", "{{.Config.User}}", PROXY_IMAGE);
    assert.equal(user, "65532:65532");
    assert.match(docker("logs", `fw-proxy-${run}`).out, /listening on 0\.0\.0\.0:3128/);
  });

  test("an agent reaches a listed origin through the proxy, body checked", () => {
    const r = agentCurl("http://listed.test:8080/index.html");
    assert.match(r.out, new RegExp(`${BODY}\\n+200$`), r.err);
  });

  test("an unlisted host gets 403 from the proxy", () => {
    const r = agentCurl("http://unlisted.test:8080/index.html");
    assert.match(r.out, /403$/, r.err);
  });

  test("no way around the proxy: a direct connection to the origin fails (and the check sees the hole without the wall)", () => {
    const direct = agentCurl("--noproxy", "*", `http://${OUTSIDE.origin}:8080/index.html`);
    assert.notEqual(direct.code, 0, "the direct connection must fail");
    // An agent attached to the outside network too: a cluster without the NetworkPolicy.
    must("run", "-d", "--name", `fw-leaky-${run}`, "--network", AGENTS.name, boxes.image, "sleep", "120");
    must("network", "connect", OUTSIDE.name, `fw-leaky-${run}`);
    const leak = docker(
      "exec",
      `fw-leaky-${run}`,
      "curl",
      "-sS",
      "--max-time",
      "8",
      "--noproxy",
      "*",
      `http://${OUTSIDE.origin}:8080/index.html`,
    );
    assert.match(
      leak.out,
      new RegExp(BODY),
      "without the wall the origin is reachable directly: the check can fail",
    );
  });
});
