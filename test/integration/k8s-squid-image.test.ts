/**
 * The squid proxy image (k8s/squid.Dockerfile, `k8s render --proxy squid`), built by a local docker
 * daemon and run as its rendered Deployment runs it (the rendered command, the ConfigMap at
 * /etc/fourwall, memory emptyDir at /run/fourwall-squid, non-root, read-only root, no capabilities),
 * on a network shaped like the NetworkPolicy: the agent sits on an internal network whose only
 * other member is the proxy; the proxy also sits on an "outside" network with a test origin. All
 * addresses are in 198.18.0.0/15 on networks this test creates (no packet leaves the machine).
 * The Dockerfile's BASE is made from this host's own squid (test/helpers/squid-image.ts: no Debian
 * mirror is reachable from here), so its apt step is skipped; the images are tagged by their
 * inputs and reused by a daemon that has them. Root only: docker needs it (no ordinary-user mode).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { DEFAULT_OPTIONS } from "../../src/k8s/options.js";
import { type K8sObject, renderManifests, SQUID_DIR } from "../../src/k8s/render.js";
import { loadPolicy } from "../../src/policy/load.js";
import { ROOT } from "../helpers/box.js";
import {
  cutDefaultRoute,
  type DockerBoxes,
  dockerCli,
  dockerdUnavailable,
  startDockerBoxes,
} from "../helpers/docker-box.js";
import { buildSquidBase, squidBaseTag } from "../helpers/squid-image.js";

const skip = dockerdUnavailable();
const run = Math.random().toString(36).slice(2, 8);
const AGENTS = {
  name: `fw-sq-agents-${run}`,
  subnet: "198.18.203.0/24",
  proxy: "198.18.203.2",
  agent: "198.18.203.3",
};
const OUTSIDE = {
  name: `fw-sq-outside-${run}`,
  subnet: "198.18.204.0/24",
  proxy: "198.18.204.2",
  origin: "198.18.204.10",
};
const BODY = `hello from the origin ${run}`;
const DOCKERFILE = path.join(ROOT, "k8s/squid.Dockerfile");
/** squid's line once its listener is bound (it keeps running when a listener fails). */
const LISTENING = /Accepting SSL bumped HTTP Socket connections at \S+ local=0\.0\.0\.0:3128/;
const c = (kind: string) => `fw-sq-${kind}-${run}`;

/** The squid backend's objects for a policy with one listed origin, the agents' proxy pinned at the proxy's address. */
function clusterObjects(): K8sObject[] {
  const { policy, egress } = loadPolicy({
    cwd: "/nonexistent",
    flags: {
      egress: {
        allow: ["listed.test:8080"],
        resolve: [`listed.test=${OUTSIDE.origin}`, `unlisted.test=${OUTSIDE.origin}`],
      },
    },
    presets: [],
  });
  const o = {
    ...DEFAULT_OPTIONS,
    flavor: "pod" as const,
    proxy: "squid" as const,
    proxyAddress: AGENTS.proxy,
  };
  return renderManifests(policy, egress, o).objects;
}

const named = (objects: K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as unknown as {
    data: Record<string, string>;
    spec: unknown;
  };

describe("k8s: the squid proxy image on a network shaped like the NetworkPolicy", { skip }, () => {
  let boxes: DockerBoxes;
  let policyDir: string;
  let image = "";
  let command: string[] = [];
  let agentEnv: string[] = [];
  // set in before(), once the daemon is up
  let docker: ReturnType<typeof dockerCli>["docker"];
  let must: ReturnType<typeof dockerCli>["must"];
  const have = (tag: string) => docker("image", "inspect", tag).code === 0;
  const curlFrom = (container: string, ...curl: string[]) =>
    docker("exec", container, "curl", "-sS", "--max-time", "8", "-o", "-", "-w", "\\n%{http_code}", ...curl);

  before(async () => {
    boxes = await startDockerBoxes();
    ({ docker, must } = dockerCli(boxes.host));
    const base = squidBaseTag(boxes.image);
    if ("why" in base) throw new Error(`the squid base: ${base.why}`);
    if (!have(base.tag)) await buildSquidBase(boxes.image, base.tag, { PATH: "/usr/bin:/bin", ...boxes.env });
    // the project's Dockerfile on that base (its apt step skipped), tagged by both
    const hash = createHash("sha256").update(`${base.tag}\n${readFileSync(DOCKERFILE, "utf8")}`);
    image = `fourwall-egress-squid-test:${hash.digest("hex").slice(0, 12)}`;
    if (!have(image))
      must(
        "build",
        "-q",
        "-f",
        DOCKERFILE,
        "--build-arg",
        `BASE=${base.tag}`,
        "-t",
        image,
        path.join(ROOT, "k8s"),
      );
    must("network", "create", "--internal", "--subnet", AGENTS.subnet, AGENTS.name);
    must("network", "create", "--subnet", OUTSIDE.subnet, OUTSIDE.name);

    const objects = clusterObjects();
    policyDir = mkdtempSync(path.join(os.tmpdir(), "fourwall-k8s-squid-"));
    chmodSync(policyDir, 0o755); // squid runs as uid 65532, as in its pod
    const configMap = path.join(policyDir, "policy");
    mkdirSync(configMap, { mode: 0o755 });
    for (const [file, text] of Object.entries(named(objects, "ConfigMap", "fourwall-egress-policy").data))
      writeFileSync(path.join(configMap, file), text, { mode: 0o644 });
    const deployment = named(objects, "Deployment", "fourwall-egress").spec as {
      template: { spec: { containers: { command: string[]; args?: string[] }[] } };
    };
    const proxy = deployment.template.spec.containers[0]!;
    assert.equal(proxy.args, undefined);
    command = proxy.command;
    const pod = named(objects, "Pod", "fourwall").spec as {
      containers: { env: { name: string; value: string }[] }[];
    };
    agentEnv = pod.containers[0]!.env.flatMap((e) => ["-e", `${e.name}=${e.value}`]);

    must(
      ...["run", "-d", "--name", c("origin"), "--network", OUTSIDE.name, "--ip", OUTSIDE.origin],
      ...["--read-only", "--tmpfs", "/srv", boxes.image, "sh", "-c"],
      `echo '${BODY}' > /srv/index.html && cd /srv && exec python3 -m http.server 8080 --bind 0.0.0.0`,
    );
    // The proxy as its pod runs it: the image's user (65532), read-only root, the ConfigMap, the
    // two emptyDirs (the squid one in memory, its helper executable from there as in a pod).
    must(
      ...["run", "-d", "--name", c("proxy"), "--network", OUTSIDE.name, "--ip", OUTSIDE.proxy],
      ...["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"],
      ...["-v", `${configMap}:/etc/fourwall:ro`, "--tmpfs", "/tmp:mode=1777,size=256m"],
      ...["--tmpfs", `${SQUID_DIR}:exec,mode=1777,size=64m`],
      ...["--entrypoint", command[0]!, image],
      ...command.slice(1),
    );
    must("network", "connect", "--ip", AGENTS.proxy, AGENTS.name, c("proxy"));
    // The agent: only on the internal network, unprivileged, read-only, the rendered pod's environment.
    must(
      ...["run", "-d", "--name", c("agent"), "--network", AGENTS.name, "--ip", AGENTS.agent],
      ...["--read-only", "--cap-drop", "ALL", "--user", "65534:65534", ...agentEnv],
      ...[boxes.image, "sleep", "600"],
    );
    // As in k8s-proxy-image.test.ts: docker 20.10 leaves the internal network's default route to
    // iptables, which the test daemon does not touch; under the NetworkPolicy there is no way out
    // but the proxy, so the agent's namespace loses that route (from outside: it has no CAP_NET_ADMIN).
    const pid = must("inspect", "-f", "{{.State.Pid}}", c("agent"));
    cutDefaultRoute(pid);
    // Ready when squid accepts (its cache.log is followed onto stderr).
    for (let i = 0; i < 120 && !LISTENING.test(docker("logs", c("proxy")).err); i++) {
      if (must("inspect", "-f", "{{.State.Running}}", c("proxy")) !== "true") break;
      await new Promise((r) => setTimeout(r, 500));
    }
  });

  after(() => {
    if (!boxes) return;
    docker("rm", "-f", c("origin"), c("proxy"), c("agent"), c("leaky"));
    docker("network", "rm", AGENTS.name, OUTSIDE.name);
    if (policyDir) rmSync(policyDir, { recursive: true, force: true });
    return boxes.stop(); // the images stay in a shared daemon (tagged by their inputs); a private one goes with them
  });

  test("squid runs the rendered command as a non-root user on a read-only root", () => {
    assert.equal(must("inspect", "-f", "{{.Config.User}}", image), "65532:65532");
    const logs = docker("logs", c("proxy"));
    assert.match(logs.err, LISTENING, logs.out + logs.err);
    assert.equal(must("exec", c("proxy"), "id", "-u"), "65532");
  });

  test("an agent reaches a listed origin through squid, body checked", () => {
    const r = curlFrom(c("agent"), "http://listed.test:8080/index.html");
    assert.match(r.out, new RegExp(`${BODY}\\n+200$`), r.err);
  });

  test("an unlisted host gets 403 from squid, with fourwall's reason", () => {
    const r = curlFrom(c("agent"), "-D", "-", "http://unlisted.test:8080/index.html");
    assert.match(r.out, /X-Fourwall-Denied: not-allowed/i, r.err);
    assert.match(r.out, /403$/, r.err);
  });

  test("no way around squid: a direct connection to the origin fails (and the check sees the hole without the wall)", () => {
    const direct = curlFrom(c("agent"), "--noproxy", "*", `http://${OUTSIDE.origin}:8080/index.html`);
    assert.notEqual(direct.code, 0, "the direct connection must fail");
    // An agent attached to the outside network too: a cluster without the NetworkPolicy.
    must(
      "run",
      "-d",
      "--name",
      c("leaky"),
      "--network",
      AGENTS.name,
      ...agentEnv,
      boxes.image,
      "sleep",
      "120",
    );
    must("network", "connect", OUTSIDE.name, c("leaky"));
    const leak = curlFrom(c("leaky"), "--noproxy", "*", `http://${OUTSIDE.origin}:8080/index.html`);
    assert.match(
      leak.out,
      new RegExp(`${BODY}\\n+200$`),
      "without the wall the origin is reachable directly",
    );
  });
});
