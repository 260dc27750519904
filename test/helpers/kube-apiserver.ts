/**
 * A stand-in for a Kubernetes API server (no cluster can run on these machines): just enough of
 * the real wire protocol for `fourwall k8s apply|run` — resource discovery, server-side apply
 * (PATCH application/apply-patch+yaml), create/read/delete, and pod exec over a WebSocket speaking
 * v4.channel.k8s.io (channel 1 stdout, 2 stderr, 3 the final status). It records every request,
 * binds a sandbox to a claim on the second read (as the agent-sandbox controller would),
 * answers an exec by writing the argv it received as JSON and exiting with the status the test
 * chose, and runs a created pod through the test's stand-in kubelet (`runPod`): the pod is
 * Running until it returns, then Succeeded or Failed, and its log is what it returned (GET
 * .../pods/NAME/log). Loopback only.
 */
import { writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { WebSocketServer } from "ws";

export interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  body?: unknown;
}

const RESOURCES: Record<string, { name: string; kind: string; namespaced: boolean }[]> = {
  v1: [
    { name: "configmaps", kind: "ConfigMap", namespaced: true },
    { name: "secrets", kind: "Secret", namespaced: true },
    { name: "services", kind: "Service", namespaced: true },
    { name: "pods", kind: "Pod", namespaced: true },
    { name: "persistentvolumeclaims", kind: "PersistentVolumeClaim", namespaced: true },
  ],
  "apps/v1": [{ name: "deployments", kind: "Deployment", namespaced: true }],
  "networking.k8s.io/v1": [{ name: "networkpolicies", kind: "NetworkPolicy", namespaced: true }],
  "node.k8s.io/v1": [{ name: "runtimeclasses", kind: "RuntimeClass", namespaced: false }],
  "extensions.agents.x-k8s.io/v1beta1": [
    { name: "sandboxtemplates", kind: "SandboxTemplate", namespaced: true },
    { name: "sandboxwarmpools", kind: "SandboxWarmPool", namespaced: true },
    { name: "sandboxclaims", kind: "SandboxClaim", namespaced: true },
  ],
};

export interface FakeApiServer {
  url: string;
  kubeconfig: string;
  requests: Recorded[];
  objects: Map<string, Record<string, unknown>>;
  /** The exit status the next exec reports. */
  execExit: number;
  /** The stand-in kubelet: runs a created pod (with the store, for its ConfigMaps) to its end. */
  runPod?: (
    pod: Record<string, unknown>,
    objects: Map<string, Record<string, unknown>>,
  ) => Promise<{ exitCode: number; log: string }>;
  close(): Promise<void>;
}

const readBody = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let data = "";
    req.on("data", (c) => (data += c));
    req.on("end", () => resolve(data));
  });

export async function startFakeApiServer(dir: string): Promise<FakeApiServer> {
  const requests: Recorded[] = [];
  const objects = new Map<string, Record<string, unknown>>();
  const reads = new Map<string, number>();
  /** Pods the stand-in kubelet ran, by key: their log once they ended. */
  const logs = new Map<string, string>();
  const state: FakeApiServer = {
    url: "",
    kubeconfig: path.join(dir, "kubeconfig"),
    requests,
    objects,
    execExit: 0,
    close: async () => {},
  };
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const text = await readBody(req);
    const contentType = req.headers["content-type"];
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text; // apply-patch+yaml may be YAML; the client sends JSON (a YAML subset)
    }
    requests.push({
      method: req.method ?? "",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      ...(contentType ? { contentType } : {}),
      body,
    });
    const reply = (code: number, value: unknown) => {
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(value));
    };
    // discovery: /api/v1, /apis/GROUP/VERSION
    const gv = url.pathname === "/api/v1" ? "v1" : /^\/apis\/([^/]+\/[^/]+)$/.exec(url.pathname)?.[1];
    if (gv && RESOURCES[gv])
      return reply(200, {
        kind: "APIResourceList",
        groupVersion: gv,
        resources: RESOURCES[gv]!.map((r) => ({
          ...r,
          singularName: "",
          verbs: ["create", "delete", "get", "list", "patch"],
        })),
      });
    if (req.method === "GET" && url.pathname.endsWith("/log")) {
      const log = logs.get(url.pathname.replace(/\/log$/, ""));
      if (log === undefined) return reply(404, { kind: "Status", status: "Failure", code: 404 });
      res.writeHead(200, { "content-type": "text/plain" });
      return res.end(log);
    }
    const key = url.pathname.replace(/\/(exec|status)$/, "");
    if (req.method === "PATCH" || req.method === "POST") {
      const object = structuredClone(body as Record<string, unknown>);
      if (object.kind === "Service") object.spec = { ...(object.spec as object), clusterIP: "10.96.0.77" };
      const name = (object.metadata as { name: string }).name;
      const stored = req.method === "POST" ? `${key}/${name}` : key;
      objects.set(stored, object);
      if (object.kind === "Pod" && req.method === "POST") {
        object.status = { phase: "Pending" };
        const run = state.runPod?.(object, objects) ?? Promise.resolve({ exitCode: 0, log: "no kubelet\n" });
        void run.then(
          ({ exitCode, log }) => {
            logs.set(stored, log);
            object.status = { phase: exitCode === 0 ? "Succeeded" : "Failed" };
          },
          (error: Error) => {
            logs.set(stored, `stand-in kubelet: ${error.message}\n`);
            object.status = { phase: "Failed" };
          },
        );
      }
      return reply(req.method === "POST" ? 201 : 200, object);
    }
    if (req.method === "GET" && objects.has(key)) {
      const object = objects.get(key)!;
      const n = (reads.get(key) ?? 0) + 1;
      reads.set(key, n);
      if (object.kind === "SandboxClaim" && n >= 2) object.status = { sandbox: { name: "fourwall-abcde" } };
      return reply(200, object);
    }
    if (req.method === "DELETE" && objects.delete(key))
      return reply(200, { kind: "Status", status: "Success" });
    return reply(404, { kind: "Status", status: "Failure", reason: "NotFound", code: 404 });
  });
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (protocols.has("v4.channel.k8s.io") ? "v4.channel.k8s.io" : false),
  });
  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url ?? "/", "http://x");
    requests.push({ method: "EXEC", path: url.pathname, query: Object.fromEntries(url.searchParams) });
    wss.handleUpgrade(req, socket, head, (ws) => {
      const argv = url.searchParams.getAll("command");
      const channel = (n: number, data: string) =>
        ws.send(Buffer.concat([Buffer.from([n]), Buffer.from(data)]));
      channel(1, `${JSON.stringify(argv)}\n`);
      channel(2, "a line on stderr\n");
      const status =
        state.execExit === 0
          ? { status: "Success" }
          : {
              status: "Failure",
              reason: "NonZeroExitCode",
              details: { causes: [{ reason: "ExitCode", message: String(state.execExit) }] },
            };
      channel(3, JSON.stringify(status));
      ws.close();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  writeFileSync(
    state.kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      // plain HTTP on loopback: the client allows it only with TLS verification off
      clusters: [{ name: "stand-in", cluster: { server: state.url, "insecure-skip-tls-verify": true } }],
      users: [{ name: "tester", user: { token: "stand-in-token" } }],
      contexts: [
        { name: "stand-in", context: { cluster: "stand-in", user: "tester", namespace: "default" } },
      ],
      "current-context": "stand-in",
    }),
  );
  state.close = () =>
    new Promise<void>((resolve) => {
      wss.close();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
