/**
 * `fourwall k8s apply` and `k8s run`, the real CLI and the real client library, against a stand-in
 * API server on loopback (test/helpers/kube-apiserver.ts; no cluster can run on these machines):
 * what goes over the wire is checked — server-side apply with fourwall's field manager, the order,
 * the proxy's cluster IP pinned into the agents' environment with no DNS allowed, a claim made,
 * bound, exec'd into and released, the exit status passed through.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { FOURWALL } from "../helpers/box.js";
import { type FakeApiServer, startFakeApiServer } from "../helpers/kube-apiserver.js";

function fourwall(
  args: string[],
  kubeconfig: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FOURWALL, ...args], {
      env: { PATH: process.env.PATH, HOME: os.tmpdir(), KUBECONFIG: kubeconfig },
      cwd: os.tmpdir(),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe("k8s apply and run against a stand-in API server", () => {
  let dir: string;
  let api: FakeApiServer;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "fourwall-k8s-"));
    api = await startFakeApiServer(dir);
  });
  after(async () => {
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

  test("bad input fails before the cluster is touched: exit 125, the flag named", async () => {
    const before = api.requests.length;
    const r = await fourwall(["k8s", "apply", "--name", "Bad_Name"], api.kubeconfig);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /--name: "Bad_Name" is not a DNS-1123 label/);
    assert.equal(api.requests.length, before);
  });
});
