/**
 * The proxy image (k8s/proxy.Dockerfile), built by a local docker daemon, in a network shaped like
 * the rendered NetworkPolicy: the agent container sits on an internal network whose only other
 * member is the proxy; the proxy also sits on an "outside" network with a test origin. All addresses
 * are in 198.18.0.0/15 on networks this test creates (no packet leaves the machine). The same
 * checks run with the agent also attached to the outside network (a cluster without the policy),
 * and must see the hole there.
 *
 * Credentials: the proxy and the agent are set up from the rendered and apply-filled objects (the
 * proxy's args and Secret file, its policy ConfigMap with egress.trust's test CA, the agent's
 * environment and CA ConfigMap), and a TLS origin made with a test CA checks that the agent's
 * sentinel arrives there as the real secret, while the agent's environment and files hold none.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fillCredentials } from "../../src/k8s/credentials.js";
import { DEFAULT_OPTIONS } from "../../src/k8s/options.js";
import { credentialNames, type K8sObject, renderManifests } from "../../src/k8s/render.js";
import { gatherCredentials } from "../../src/k8s/secrets.js";
import { loadPolicy } from "../../src/policy/load.js";
import { ROOT } from "../helpers/box.js";
import {
  cutDefaultRoute,
  type DockerBoxes,
  dockerCli,
  dockerdUnavailable,
  startDockerBoxes,
} from "../helpers/docker-box.js";

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
  tls: "198.18.202.11",
};
const PROXY_IMAGE = `fourwall-egress-test:${run}`;
const BODY = `hello from the origin ${run}`;
const SECRET = `sk-test-${run}${"s".repeat(24)}`;

/** The TLS origin: logs the Authorization header it gets (stderr), answers without echoing it. */
const TLS_ORIGIN = `
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("AUTH " + str(self.headers.get("Authorization")), file=sys.stderr, flush=True)
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers(); self.wfile.write(b"ok\\n")
s = http.server.HTTPServer(("0.0.0.0", 8443), H)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain("/certs/origin.pem", "/certs/origin.key")
s.socket = c.wrap_socket(s.socket, server_side=True)
s.serve_forever()
`;

/** The test CA and bound.test's certificate (openssl, on the host). */
function makeOriginCerts(dir: string): void {
  const ssl = (...args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  };
  ssl(
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"],
    ...["-subj", "/CN=fourwall test origin CA", "-keyout", "ca.key", "-out", "ca.pem"],
    ...["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
  );
  ssl(
    ...["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=bound.test"],
    ...["-keyout", "origin.key", "-out", "origin.csr"],
  );
  writeFileSync(path.join(dir, "ext"), "subjectAltName=DNS:bound.test\nextendedKeyUsage=serverAuth\n");
  ssl(
    ...["x509", "-req", "-in", "origin.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"],
    ...["-days", "2", "-extfile", "ext", "-out", "origin.pem"],
  );
  for (const f of ["ca.pem", "origin.pem", "origin.key"]) chmodSync(path.join(dir, f), 0o644);
  chmodSync(dir, 0o755);
}

/**
 * The cluster's objects for a policy with one bound secret, rendered and filled as `k8s apply`
 * fills them (the secret from a test environment), the agents' proxy pinned at the proxy's address.
 */
async function clusterObjects(caFile: string): Promise<K8sObject[]> {
  const { policy, egress } = loadPolicy({
    cwd: "/nonexistent",
    flags: {
      egress: {
        allow: ["listed.test:8080", "bound.test:8443"],
        resolve: [
          `listed.test=${OUTSIDE.origin}`,
          `unlisted.test=${OUTSIDE.origin}`,
          `bound.test=${OUTSIDE.tls}`,
        ],
        credentials: [{ fromEnv: "FW_TEST_KEY", hosts: ["bound.test"] }],
        trust: [caFile],
      },
    },
    presets: [],
  });
  const o = { ...DEFAULT_OPTIONS, flavor: "pod" as const, proxyAddress: AGENTS.proxy };
  const rendered = renderManifests(policy, egress, o, { trust: [readFileSync(caFile, "utf8")] });
  const { materials } = await gatherCredentials(egress, "test/fourwall", { FW_TEST_KEY: SECRET });
  return fillCredentials(rendered, credentialNames(o), materials!).objects;
}

const named = (objects: K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as unknown as {
    data: Record<string, string>;
    stringData: Record<string, string>;
    spec: unknown;
  };

describe("k8s: the proxy image on a network shaped like the NetworkPolicy", { skip }, () => {
  let boxes: DockerBoxes;
  let policyDir: string;
  let proxyArgs: string[] = [];
  let agentEnv: string[] = [];
  let sentinel = "";
  let secretMount = "";
  // set in before(), once the daemon is up
  let docker: ReturnType<typeof dockerCli>["docker"];
  let must: ReturnType<typeof dockerCli>["must"];
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
    ({ docker, must } = dockerCli(boxes.host));
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
    const dir = (name: string) => {
      const d = path.join(policyDir, name);
      mkdirSync(d, { mode: 0o755 });
      return d;
    };
    const [certs, policyMap, secretDir, caMap] = ["certs", "policy", "secret", "ca"].map(dir) as [
      string,
      string,
      string,
      string,
    ];
    makeOriginCerts(certs);
    const objects = await clusterObjects(path.join(certs, "ca.pem"));
    const names = credentialNames({ ...DEFAULT_OPTIONS });
    // What the pods mount: the proxy's policy ConfigMap and Secret (0440, the proxy's group), the agents' CA.
    for (const [file, text] of Object.entries(named(objects, "ConfigMap", "fourwall-egress-policy").data))
      writeFileSync(path.join(policyMap, file), text);
    const secretFile = path.join(secretDir, "credentials.json");
    writeFileSync(secretFile, named(objects, "Secret", names.secret).stringData["credentials.json"]!);
    chownSync(secretFile, 0, 65532);
    chmodSync(secretFile, 0o440);
    const agentMap = named(objects, "ConfigMap", names.agentMap).data;
    for (const file of ["ca.pem", "ca-bundle.pem"]) writeFileSync(path.join(caMap, file), agentMap[file]!);
    const proxySpec = named(objects, "Deployment", names.deployment).spec as {
      template: { spec: { containers: { args: string[] }[] } };
    };
    proxyArgs = proxySpec.template.spec.containers[0]!.args;
    const pod = named(objects, "Pod", "fourwall").spec as {
      containers: {
        env: { name: string; value?: string; valueFrom?: { configMapKeyRef: { key: string } } }[];
      }[];
    };
    agentEnv = pod.containers[0]!.env.flatMap((e) => [
      "-e",
      `${e.name}=${e.value ?? agentMap[e.valueFrom!.configMapKeyRef.key]}`,
    ]);
    sentinel = agentMap["sentinel.FW_TEST_KEY"]!;
    secretMount = `${secretDir}:/etc/fourwall-credentials:ro`;
    must(
      "run",
      "-d",
      "--name",
      `fw-tls-${run}`,
      "--network",
      OUTSIDE.name,
      "--ip",
      OUTSIDE.tls,
      "--read-only",
      "-v",
      `${certs}:/certs:ro`,
      boxes.image,
      "python3",
      "-c",
      TLS_ORIGIN,
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
      `${path.join(policyDir, "policy")}:/etc/fourwall:ro`,
      "-v",
      secretMount,
      PROXY_IMAGE,
      ...proxyArgs, // the rendered Deployment's: egress serve … --credentials FILE
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
      ...agentEnv, // the rendered pod's environment: proxy variables, the sentinel, the CA paths
      "-v",
      `${path.join(policyDir, "ca")}:/run/fourwall:ro`,
      boxes.image,
      "sleep",
      "600",
    );
    // docker 20.10 still gives an --internal network a default route and leaves the drop to
    // iptables, which the test daemon does not touch; a pod under the NetworkPolicy has no way
    // out but the proxy, so the agent's namespace loses that route (set from outside: the agent
    // holds no CAP_NET_ADMIN).
    const pid = must("inspect", "-f", "{{.State.Pid}}", `fw-agent-${run}`);
    cutDefaultRoute(pid);
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
    docker(
      "rm",
      "-f",
      ...[`fw-origin-${run}`, `fw-tls-${run}`, `fw-proxy-${run}`, `fw-agent-${run}`],
      ...[`fw-leaky-${run}`, `fw-holder-${run}`],
    );
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

  /** Where a secret could sit in an agent: its variables (config and every process), its files. */
  const secretIn = (container: string): string[] => {
    const found: string[] = [];
    if (must("inspect", "-f", "{{json .Config.Env}}", container).includes(SECRET)) found.push("config env");
    const scan = docker(
      "exec",
      container,
      "sh",
      "-c",
      `cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -F -- "$0" >/dev/null && echo environ; ` +
        `grep -rlF -- "$0" /etc /run /tmp /home /root /usr/local /opt 2>/dev/null; true`,
      SECRET,
    );
    return [...found, ...scan.out.split("\n").filter(Boolean)];
  };

  test("credentials: the agent's sentinel reaches the bound TLS origin as the real secret", () => {
    assert.notEqual(sentinel, SECRET);
    const r = docker(
      "exec",
      `fw-agent-${run}`,
      "sh",
      "-c",
      'curl -sS --max-time 8 -o - -w "\\n%{http_code}" -H "Authorization: Bearer $FW_TEST_KEY" https://bound.test:8443/',
    );
    assert.match(r.out, /ok\n+200$/, r.err);
    const seen = docker("logs", `fw-tls-${run}`).err;
    assert.ok(seen.includes(`AUTH Bearer ${SECRET}`), `the origin saw: ${seen}`);
    assert.equal(seen.includes(sentinel), false, "the sentinel never reaches the origin");
  });

  test("credentials: the sentinel sent to another listed host is refused (credential-exfiltration)", () => {
    const r = agentCurl("-H", `Authorization: Bearer ${sentinel}`, "http://listed.test:8080/index.html");
    assert.match(r.out, /403$/, r.err);
  });

  test("credentials: the agent's environment and files hold no secret (and the scan finds one where it is)", () => {
    assert.deepEqual(secretIn(`fw-agent-${run}`), []);
    assert.equal(agentEnv.join(" ").includes(SECRET), false);
    // a pod that mounts the proxy's Secret (what the rendering never does): the scan sees it
    must(
      "run",
      "-d",
      "--name",
      `fw-holder-${run}`,
      "--user",
      "0:65532",
      "-v",
      secretMount,
      boxes.image,
      "sleep",
      "120",
    );
    assert.deepEqual(secretIn(`fw-holder-${run}`), ["/etc/fourwall-credentials/credentials.json"]);
  });
});
