/**
 * The effectful half of `fourwall k8s`: applying rendered objects (server-side apply, field manager
 * "fourwall", kubeconfig found as kubectl finds it) and running one command in a claimed sandbox.
 * Loaded only by `k8s apply|run|prove` (the client library is large).
 */
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CoreV1Api,
  Exec,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  type V1Status,
} from "@kubernetes/client-node";
import type { K8sOptions } from "./options.js";
import { type K8sObject, type Rendered, sandboxClaim } from "./render.js";

export interface Cluster {
  objects: KubernetesObjectApi;
  config: KubeConfig;
}

/** The cluster kubectl would talk to: KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
export function connect(): Cluster {
  const config = new KubeConfig();
  config.loadFromDefault();
  if (!config.getCurrentCluster())
    throw new Error("no cluster in the kubeconfig (set KUBECONFIG or ~/.kube/config)");
  return { config, objects: KubernetesObjectApi.makeApiClient(config) };
}

/** The order objects must exist in: what others refer to first. */
const ORDER = [
  "RuntimeClass",
  "Secret",
  "ConfigMap",
  "Service",
  "Deployment",
  "NetworkPolicy",
  "CiliumNetworkPolicy",
  "PersistentVolumeClaim",
  "SandboxTemplate",
  "SandboxWarmPool",
  "Pod",
];

export async function apply(cluster: Cluster, object: K8sObject): Promise<KubernetesObject> {
  return cluster.objects.patch(
    object as KubernetesObject,
    undefined,
    undefined,
    "fourwall",
    true,
    PatchStrategy.ServerSideApply,
  );
}

/**
 * Applies the proxy's Service first and re-renders with its cluster IP pinned, so agents reach the
 * proxy by address and need no DNS at all; then everything else, in dependency order.
 */
export async function applyAll(
  cluster: Cluster,
  render: (proxyAddress?: string) => Rendered,
  log: (line: string) => void,
): Promise<Rendered> {
  const first = render();
  const service = first.objects.find((o) => o.kind === "Service")!;
  const applied = (await apply(cluster, service)) as KubernetesObject & { spec?: { clusterIP?: string } };
  const ip = applied.spec?.clusterIP;
  const rendered = ip && /^\d+\.\d+\.\d+\.\d+$/.test(ip) ? render(ip) : first;
  if (rendered === first)
    log("the proxy Service has no IPv4 cluster IP: agents reach it by name (DNS allowed to kube-dns)");
  const sorted = [...rendered.objects].sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind));
  for (const object of sorted) {
    await apply(cluster, object);
    log(`applied ${object.kind}/${object.metadata.name}`);
  }
  return rendered;
}

/** The exit status a pod exec reports on its status channel (0 on Success). */
export function execExitCode(status: V1Status): number {
  if (status.status === "Success") return 0;
  const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
  const code = Number(cause?.message);
  return Number.isInteger(code) ? code : 1;
}

/**
 * `fourwall k8s run`: claims a sandbox from the warm pool, runs the command in it with the caller's
 * stdout and stderr, returns its exit status, and releases the claim (also on SIGINT/SIGTERM).
 */
export async function runInSandbox(
  cluster: Cluster,
  o: K8sOptions,
  command: string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; log: (line: string) => void },
  timeoutMs = 120_000,
): Promise<number> {
  const claim = sandboxClaim(o, `${o.name}-run-${randomBytes(4).toString("hex")}`);
  const release = () =>
    cluster.objects
      .delete(claim as KubernetesObject)
      .catch((error: unknown) => io.log(`could not release ${claim.metadata.name}: ${String(error)}`));
  const onSignal = () => void release().then(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await cluster.objects.create(claim as KubernetesObject);
    io.log(`claimed ${claim.metadata.name}`);
    const pod = await waitForSandbox(cluster, claim, timeoutMs);
    io.log(`running in ${pod}`);
    return await execIn(cluster, o.namespace, pod, command, io);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await release();
  }
}

async function waitForSandbox(cluster: Cluster, claim: K8sObject, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const current = (await cluster.objects.read(claim as never)) as {
      status?: { sandbox?: { name?: string } };
    };
    const name = current.status?.sandbox?.name;
    if (name) return name; // agent-sandbox names a sandbox's pod after the sandbox
    await sleep(500);
  }
  throw new Error(
    `no sandbox was bound to ${claim.metadata.name} within ${timeoutMs / 1000} s (is the warm pool running?)`,
  );
}

function execIn(
  cluster: Cluster,
  namespace: string,
  pod: string,
  command: string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
): Promise<number> {
  // The exec streams end with the socket; the caller's own streams stay open.
  const pass = (to: NodeJS.WritableStream) =>
    new Writable({
      write(chunk, _enc, done) {
        to.write(chunk, done);
      },
    });
  return new Promise((resolve, reject) => {
    new Exec(cluster.config)
      .exec(namespace, pod, "agent", command, pass(io.stdout), pass(io.stderr), null, false, (status) =>
        resolve(execExitCode(status)),
      )
      .then((socket) => socket.on("close", () => resolve(1)))
      .catch(reject);
  });
}

/** How a pod that runs to its end ended: its phase and its container's log. */
export interface PodEnd {
  phase: "Succeeded" | "Failed";
  log: string;
}

/**
 * Creates `objects` (a ConfigMap the pod mounts, then the pod), waits for the pod to end, reads its
 * log, and deletes everything it created (also on a timeout or an error).
 */
export async function runPodToEnd(
  cluster: Cluster,
  objects: K8sObject[],
  log: (line: string) => void,
  timeoutMs = 180_000,
): Promise<PodEnd> {
  const pod = objects.find((o) => o.kind === "Pod");
  if (!pod) throw new Error("runPodToEnd: no Pod among the objects");
  const made: K8sObject[] = [];
  try {
    for (const object of objects) {
      await cluster.objects.create(object as KubernetesObject);
      made.push(object);
      log(`created ${object.kind}/${object.metadata.name}`);
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const current = (await cluster.objects.read(pod as never)) as { status?: { phase?: string } };
      const phase = current.status?.phase;
      if (phase === "Succeeded" || phase === "Failed") {
        const text = await cluster.config.makeApiClient(CoreV1Api).readNamespacedPodLog({
          name: pod.metadata.name,
          namespace: pod.metadata.namespace ?? "default",
          container: "agent",
        });
        return { phase, log: String(text) };
      }
      if (Date.now() > deadline)
        throw new Error(
          `${pod.metadata.name} did not end within ${timeoutMs / 1000} s (phase ${phase ?? "unknown"}): is the image pulled, does it have python3?`,
        );
      await sleep(1000);
    }
  } finally {
    for (const object of made.reverse())
      await cluster.objects
        .delete(object as KubernetesObject)
        .catch((error: unknown) =>
          log(`could not delete ${object.kind}/${object.metadata.name}: ${String(error)}`),
        );
  }
}
