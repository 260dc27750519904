/**
 * `fourwall k8s apply`, `k8s run` and `k8s prove`, the real CLI and the real client library,
 * against a stand-in API server on loopback (test/helpers/kube-apiserver.ts; no cluster can run on
 * these machines): what goes over the wire is checked — server-side apply with fourwall's field
 * manager, the order, the proxy's cluster IP pinned into the agents' environment with no DNS
 * allowed, a claim made, bound, exec'd into and released, the exit status passed through; for
 * prove, the probe pod made from the agent template, its log judged, everything deleted. The
 * stand-in's kubelet runs the pod's probe program for real, in a fourwall box on this machine (not
 * gVisor on a node): the whole box must pass, and a deliberately broken one (uid 0, capabilities,
 * no seccomp) must be reported with its holes.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer, type Server } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { CLUSTER_PROBES } from "../../src/prove/targets/cluster.js";
import { FOURWALL, makeFixture, runInBox } from "../helpers/box.js";
import { type FakeApiServer, startFakeApiServer } from "../helpers/kube-apiserver.js";

function fourwall(
  args: string[],
  kubeconfig: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FOURWALL, ...args], {
      env: { PATH: process.env.PATH, HOME: os.tmpdir(), KUBECONFIG: kubeconfig, ...env },
      cwd: os.tmpdir(),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

type Obj = Record<string, unknown> & { metadata: { name: string; labels?: Record<string, string> } };
interface PodSpec {
  containers: { name: string; command: string[] }[];
  volumes: { name: string; configMap?: { name: string } }[];
}

/** A loopback listener on the host: what a probe without the proxy must not reach. */
let directPort = 0;

/**
 * The stand-in kubelet: runs the pod's command (prove's probe program, from its ConfigMap) in a
 * fourwall box on this machine, the pod's /work being the box's workdir; `weaken`: a broken box.
 */
function probeFromPod(
  pod: Record<string, unknown>,
  objects: Map<string, Record<string, unknown>>,
  only?: (id: string) => boolean,
) {
  const spec = pod.spec as PodSpec;
  const volume = spec.volumes.find((v) => v.configMap)!;
  const map = objects.get(`/api/v1/namespaces/default/configmaps/${volume.configMap!.name}`) as {
    data: Record<string, string>;
  };
  const fx = makeFixture("root");
  const dir = path.join(fx.workdir, ".probe");
  mkdirSync(dir);
  const onHere = (p: string) => p.replace(/^\/work(?=\/|$)/, fx.workdir);
  const config = JSON.parse(map.data["config.json"]!);
  config.workdir = fx.workdir;
  config.home = fx.home;
  for (const w of Object.values(config.filesystem.writes) as { create: string[] }[])
    w.create = w.create.map(onHere);
  // the egress targets on loopback: never the real metadata address from a test
  assert.equal(config.cluster.direct.host, "169.254.169.254");
  config.cluster.metadata = `http://127.0.0.1:${directPort}/latest/meta-data/`;
  config.cluster.direct = { host: "127.0.0.1", port: directPort };
  if (only) config.probes = (config.probes as string[]).filter(only);
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
  writeFileSync(path.join(dir, "probe.py"), map.data["probe.py"]!);
  const [python, probe, file] = spec.containers.find((c) => c.name === "agent")!.command;
  assert.equal(python, "python3");
  const argv = [
    "/usr/bin/python3",
    path.join(dir, path.basename(probe!)),
    path.join(dir, path.basename(file!)),
  ];
  return { fx, argv };
}

async function kubeletInBox(
  pod: Record<string, unknown>,
  objects: Map<string, Record<string, unknown>>,
  weaken?: string[],
): Promise<{ exitCode: number; log: string }> {
  const { fx, argv } = probeFromPod(pod, objects);
  const r = await runInBox(fx, argv, { ...(weaken ? { weaken } : {}), timeoutMs: 60_000 });
  return { exitCode: r.code ?? 1, log: r.stdout };
}

/**
 * The broken target for the proxy probes: the probe program straight on this host (no box), its
 * proxy variables naming `proxy` — an open proxy stand-in that answers 200 to everything itself
 * and connects nowhere (so no packet goes to the metadata address even through a "hole").
 */
async function kubeletOnHost(
  pod: Record<string, unknown>,
  objects: Map<string, Record<string, unknown>>,
  proxy: string,
): Promise<{ exitCode: number; log: string }> {
  // the proxy probes only: the others would write to this host's /etc and /usr, and change its routes
  const { fx, argv } = probeFromPod(pod, objects, (id) =>
    /^egress\.cluster-(listed|unlisted|metadata)$/.test(id),
  );
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: fx.workdir,
      env: { PATH: process.env.PATH, HOME: fx.home, http_proxy: proxy, https_proxy: proxy },
    });
    let log = "";
    child.stdout.on("data", (d) => (log += d));
    child.on("close", (code) => resolve({ exitCode: code ?? 1, log }));
  });
}

describe("k8s apply and run against a stand-in API server", () => {
  let dir: string;
  let api: FakeApiServer;
  let listener: Server | undefined;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "fourwall-k8s-"));
    api = await startFakeApiServer(dir);
    const server = createServer((socket) => {
      socket.on("error", () => {}); // the probe only connects, and may reset
      socket.end("HTTP/1.0 200 OK\r\n\r\nthe host's loopback\n");
    });
    listener = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    directPort = (server.address() as AddressInfo).port;
  });
  after(async () => {
    listener?.close();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("apply: server-side apply, fourwall's field manager, the Service first, the proxy's IP pinned for agents", async () => {
    const r = await fourwall(["k8s", "apply", "--preset", "node-dev", "--name", "demo"], api.kubeconfig);
    assert.equal(r.code, 0, r.stderr);
    const patches = api.requests.filter((q) => q.method === "PATCH");
    assert.ok(
      patches.every((q) => q.contentType === "application/apply-patch+yaml"),
      "server-side apply",
    );
    assert.ok(patches.every((q) => q.query.fieldManager === "fourwall" && q.query.force === "true"));
    assert.match(patches[0]!.path, /\/services\/demo-egress$/, "the Service is applied first");
    const kinds = patches.map((q) => (q.body as { kind: string }).kind);
    for (const kind of ["ConfigMap", "Deployment", "NetworkPolicy", "SandboxTemplate", "SandboxWarmPool"])
      assert.ok(kinds.includes(kind), kind);
    const template = patches.find((q) => (q.body as { kind: string }).kind === "SandboxTemplate")!.body;
    assert.ok(
      JSON.stringify(template).includes("http://10.96.0.77:3128"),
      "agents use the Service's cluster IP",
    );
    const agentPolicy = patches.find((q) => q.path.endsWith("/networkpolicies/demo-agent-egress"))!.body;
    assert.equal(
      JSON.stringify(agentPolicy).includes("kube-dns"),
      false,
      "no DNS for agents once the IP is pinned",
    );
  });

  test("run: a claim on the warm pool, bound, exec'd into with the argv intact, released; the exit status passes through", async () => {
    api.execExit = 3;
    const r = await fourwall(
      ["k8s", "run", "--name", "demo", "--", "sh", "-c", "echo 'a b'; exit 3"],
      api.kubeconfig,
    );
    assert.equal(r.code, 3, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim()), ["sh", "-c", "echo 'a b'; exit 3"]);
    assert.match(r.stderr, /a line on stderr/);
    const claims = api.requests.filter((q) => q.path.includes("/sandboxclaims"));
    assert.equal(claims[0]!.method, "POST");
    assert.deepEqual((claims[0]!.body as { spec: unknown }).spec, {
      warmPoolRef: { name: "demo" },
      lifecycle: { shutdownPolicy: "Delete" },
    });
    const exec = api.requests.find((q) => q.method === "EXEC")!;
    assert.match(exec.path, /\/namespaces\/default\/pods\/fourwall-abcde\/exec$/);
    assert.equal(exec.query.container, "agent");
    assert.equal(claims.at(-1)!.method, "DELETE", "the claim is released");
    assert.equal(
      [...api.objects.keys()].some((k) => k.includes("sandboxclaims/demo-run-")),
      false,
    );
  });

  test("prove: a probe pod from the agent template, its log judged like `fourwall prove`, the pod and its ConfigMap deleted", {
    skip: process.getuid?.() === 0 ? false : "the stand-in kubelet's boxes run as root here",
  }, async () => {
    const from = api.requests.length;
    api.runPod = (pod, objects) => kubeletInBox(pod, objects);
    const r = await fourwall(["k8s", "prove", "--name", "demo", "--json"], api.kubeconfig);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, true);
    assert.deepEqual(
      report.results.map((x: { id: string }) => x.id),
      CLUSTER_PROBES,
    );
    for (const result of report.results)
      assert.equal(
        result.status,
        result.id === "egress.cluster-listed" ? "SKIP" : "PASS",
        JSON.stringify(result),
      );
    assert.ok(report.notes.some((n: string) => n.startsWith("gate: not run in a cluster")));
    assert.equal(report.target.runtime, "k8s gvisor");
    const made = api.requests.slice(from).filter((q) => q.method === "POST");
    assert.deepEqual(
      made.map((q) => (q.body as Obj).kind),
      ["ConfigMap", "Pod"],
    );
    const pod = made[1]!.body as Obj & { spec: PodSpec & Record<string, unknown> };
    assert.equal(pod.spec.runtimeClassName, "gvisor");
    assert.equal(pod.spec.restartPolicy, "Never");
    assert.equal(pod.spec.automountServiceAccountToken, false);
    // the agents' labels: their NetworkPolicy holds the probe pod too
    assert.equal(pod.metadata.labels?.["fourwall.dev/role"], "agent");
    const agent = pod.spec.containers[0] as unknown as { securityContext: Record<string, unknown> };
    assert.equal(agent.securityContext.readOnlyRootFilesystem, true);
    assert.equal(agent.securityContext.allowPrivilegeEscalation, false);
    const deleted = api.requests.slice(from).filter((q) => q.method === "DELETE");
    assert.equal(deleted.length, 2, "the pod and its ConfigMap are deleted");
    assert.equal(
      [...api.objects.keys()].some((k) => k.includes("demo-prove-")),
      false,
    );
  });

  test("prove: a broken pod (uid 0, capabilities, no seccomp) is reported with its holes, exit 1, in the table", {
    skip: process.getuid?.() === 0 ? false : "the stand-in kubelet's boxes run as root here",
  }, async () => {
    api.runPod = (pod, objects) => kubeletInBox(pod, objects, ["caps", "seccomp"]);
    const r = await fourwall(["k8s", "prove", "--name", "demo"], api.kubeconfig);
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    for (const row of [
      /hold capabilities .*HOLE/,
      /call the kernel unfiltered .*HOLE/,
      /be root on the host .*HOLE/,
    ])
      assert.match(r.stdout, row, r.stdout);
  });

  test("apply with bound credentials: the secret goes over the wire in the proxy's Secret only; render and apply print none", async () => {
    const secret = `sk-test-${"q".repeat(32)}`;
    const policy = path.join(dir, "cred.yaml");
    writeFileSync(
      policy,
      "egress:\n  allow: [api.example.com]\n  credentials:\n    - fromEnv: EXAMPLE_KEY\n      hosts: [api.example.com]\n",
    );
    const rendered = await fourwall(["k8s", "render", "-p", policy, "--name", "cred"], api.kubeconfig, {
      EXAMPLE_KEY: secret,
    });
    assert.equal(rendered.code, 0, rendered.stderr);
    assert.equal(`${rendered.stdout}${rendered.stderr}`.includes(secret), false, "render prints no value");
    assert.match(rendered.stdout, /credentials\.json: <filled by fourwall k8s apply>/);

    const from = api.requests.length;
    const missing = await fourwall(["k8s", "apply", "-p", policy, "--name", "cred"], api.kubeconfig);
    assert.equal(missing.code, 125, missing.stderr);
    assert.match(missing.stderr, /EXAMPLE_KEY/);
    assert.equal(api.requests.length, from, "a missing secret stops apply before the cluster is touched");

    const r = await fourwall(["k8s", "apply", "-p", policy, "--name", "cred"], api.kubeconfig, {
      EXAMPLE_KEY: secret,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(`${r.stdout}${r.stderr}`.includes(secret), false, "apply prints no value");
    const patches = api.requests.slice(from).filter((q) => q.method === "PATCH");
    const holding = patches.filter((q) => JSON.stringify(q.body).includes(secret));
    assert.deepEqual(
      holding.map((q) => q.path),
      ["/api/v1/namespaces/default/secrets/cred-egress-credentials"],
    );
    const kinds = patches.map((q) => (q.body as { kind: string }).kind);
    assert.ok(
      kinds.indexOf("Secret") < kinds.indexOf("Deployment"),
      "the Secret before the proxy that mounts it",
    );
    const agents = patches.find((q) => q.path.endsWith("/configmaps/cred-credentials"))!.body as {
      data: Record<string, string>;
    };
    assert.match(agents.data["sentinel.EXAMPLE_KEY"]!, /^sk-/);
    assert.match(agents.data["ca.pem"]!, /BEGIN CERTIFICATE/);
    const file = JSON.parse(
      (
        patches.find((q) => q.path.endsWith("/secrets/cred-egress-credentials"))!.body as {
          stringData: Record<string, string>;
        }
      ).stringData["credentials.json"]!,
    );
    assert.equal(file.credentials[0].sentinel, agents.data["sentinel.EXAMPLE_KEY"]);
    assert.match(file.ca.key, /BEGIN PRIVATE KEY/);
  });

  test("prove: a pod outside the egress wall (the host's network) is reported: the direct connection is a hole", {
    skip: process.getuid?.() === 0 ? false : "the stand-in kubelet's boxes run as root here",
  }, async () => {
    api.runPod = (pod, objects) => kubeletInBox(pod, objects, ["net"]);
    const r = await fourwall(["k8s", "prove", "--name", "demo", "--json"], api.kubeconfig);
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    const results = JSON.parse(r.stdout).results as { id: string; status: string; observed: string }[];
    const direct = results.find((x) => x.id === "egress.cluster-direct")!;
    assert.equal(direct.status, "HOLE", JSON.stringify(direct));
    assert.match(direct.observed, new RegExp(`127\\.0\\.0\\.1:${directPort}`));
  });

  test("prove: an open proxy (answers everything, as one without fourwall's rules would) is caught: unlisted and metadata are holes", async () => {
    const open = createServer((socket) => {
      socket.on("error", () => {});
      socket.once("data", () =>
        socket.end("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"),
      );
    });
    await new Promise<void>((resolve) => open.listen(0, "127.0.0.1", resolve));
    try {
      const port = (open.address() as AddressInfo).port;
      api.runPod = (pod, objects) => kubeletOnHost(pod, objects, `http://127.0.0.1:${port}`);
      const r = await fourwall(
        ["k8s", "prove", "--name", "demo", "--json", "--probe-listed", "http://listed.test/"],
        api.kubeconfig,
      );
      assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
      const results = JSON.parse(r.stdout).results as { id: string; status: string; observed: string }[];
      const status = (id: string) => results.find((x) => x.id === id)?.status;
      assert.equal(status("egress.cluster-unlisted"), "HOLE");
      assert.equal(status("egress.cluster-metadata"), "HOLE");
      assert.equal(
        status("egress.cluster-listed"),
        "PASS",
        "the listed origin answered (through the stand-in)",
      );
    } finally {
      open.close();
    }
  });

  test("bad input fails before the cluster is touched: exit 125, the flag named", async () => {
    const before = api.requests.length;
    const r = await fourwall(["k8s", "apply", "--name", "Bad_Name"], api.kubeconfig);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /--name: "Bad_Name" is not a DNS-1123 label/);
    assert.equal(api.requests.length, before);
  });
});
