/**
 * `fourwall k8s prove`: prove's probe program in a pod made from the rendered agent template (the
 * same runtime class, security context, read-only root, volumes and labels, so the agents'
 * NetworkPolicy holds it too), its report read from the pod's log and judged by prove's own
 * judges. Only the probes that can be judged from inside alone run: a cluster has no host
 * canaries fourwall can plant (no planted secrets, no loopback origins, no outside host), so the
 * write probes count a write that worked as a hole (the pod's root is the "host" there), and the
 * report says which probes were left out. Pure but for `proveInCluster`, which takes the cluster
 * calls as a parameter (src/k8s/cluster.ts).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { K8sOptions } from "../../k8s/options.js";
import type { K8sObject, Rendered } from "../../k8s/render.js";
import { syscallNumber } from "../../walls/isolation/index.js";
import { PROBES } from "../catalog.js";
import { evaluate, heldUp, parseProbeOutput, tally } from "../evaluate.js";
import { denied, fail, hole, type Judge, pass, text } from "../judges.js";
import type { HostEvidence, ProbeReport, ProbeSpec, ProveReport } from "../types.js";

/** The probes whose verdict needs nothing from the node: what the pod itself can see and try. */
export const CLUSTER_PROBES = [
  ...["isolation.capabilities", "isolation.no-new-privs", "isolation.seccomp", "isolation.uid"],
  ...["isolation.new-namespaces", "isolation.ptrace", "isolation.mount", "isolation.kernel-syscalls"],
  ...["filesystem.write-etc", "filesystem.write-usr", "filesystem.workdir-write"],
  "egress.firewall",
  ...["egress.cluster-listed", "egress.cluster-unlisted", "egress.cluster-metadata", "egress.cluster-direct"],
];

/** What the cluster's egress probes aim at; `direct` is tried without the proxy. */
export interface ClusterTargets {
  listed?: string;
  unlisted: string;
  metadata: string;
  direct: { host: string; port: number };
}

/**
 * The defaults: a name that cannot exist (the proxy refuses it by name, nothing is resolved), the
 * cloud metadata address through the proxy (refused by address class before any connection), and
 * the same address without the proxy (the agents' NetworkPolicy drops it). A listed origin is the
 * operator's to name (--probe-listed): the cluster has none fourwall can plant.
 */
export const DEFAULT_TARGETS: ClusterTargets = {
  unlisted: "http://unlisted.fourwall-prove.invalid/",
  metadata: "http://169.254.169.254/latest/meta-data/",
  direct: { host: "169.254.169.254", port: 80 },
};

/** Through the proxy, refused by it: a 403 holds; an answer from anywhere else is a hole. */
const refusedByProxy: Judge = (data) => {
  const detail = text(data.detail, "(no detail)");
  if (data.viaProxy !== true) return fail(`no proxy in the pod's environment: ${detail}`);
  if (data.code === "403") return pass(detail);
  if (data.code === "000") return fail(`the proxy did not answer: ${detail}`);
  return hole(`the proxy let it through: ${detail}`);
};

/** Through the proxy, answered: any 2xx/3xx from the listed origin. */
const answeredThroughProxy: Judge = (data) => {
  const detail = text(data.detail, "(no detail)");
  if (data.viaProxy !== true) return fail(`no proxy in the pod's environment: ${detail}`);
  return /^[23]\d\d$/.test(text(data.code))
    ? pass(detail)
    : fail(`expected the listed origin's answer: ${detail}`);
};

const clusterSpec = (id: string, title: string, expect: string, judge: Judge): ProbeSpec => ({
  id: `egress.${id}`,
  wall: "egress",
  title,
  expect,
  judge,
});

/** The egress probes only a cluster runs: judged from the proxy's answers, no host canary needed. */
export const CLUSTER_EGRESS_PROBES: ProbeSpec[] = [
  clusterSpec("cluster-listed", "a listed origin through the proxy", "answered", answeredThroughProxy),
  clusterSpec("cluster-unlisted", "an unlisted name through the proxy", "refused (403)", refusedByProxy),
  clusterSpec(
    "cluster-metadata",
    "cloud metadata (169.254.169.254) through the proxy",
    "refused (403)",
    refusedByProxy,
  ),
  clusterSpec("cluster-direct", "a connection without the proxy", "unreachable", denied),
];

/**
 * Why the gate's probes do not run in a pod: there is no human at a pod's terminal and no gate
 * in the pod flavor or agent-sandbox (deletes and history rewrites in the workdir simply happen,
 * in an emptyDir that dies with the sandbox). Said in every cluster report.
 */
export const GATE_NOTE =
  "gate: not run in a cluster: a pod has no approval gate (no human at its terminal); destructive actions in the workdir are not held, the workdir is an emptyDir (or a claim's PVC) that dies with the sandbox — review cluster agents' results as pull requests, or run the gate where a human is (`fourwall run`)";

/** Where the probe program and its config are mounted in the pod (a ConfigMap, read-only). */
export const PROBE_DIR = "/opt/fourwall-probe";
const WORKDIR = "/work";
const HOME = "/home/agent";

/** probe.py's config for a pod: the agent's paths, no canaries. */
export function clusterProbeConfig(token: string, targets: ClusterTargets = DEFAULT_TARGETS) {
  const mark = `fourwall-probe-${token}`;
  return {
    token,
    probes: CLUSTER_PROBES,
    out: null,
    home: HOME,
    workdir: WORKDIR,
    proveDir: path.posix.join("/tmp", mark),
    isolation: {
      hostProcessMarker: null,
      // x86-64's numbers, from fourwall's own table (the nodes gVisor runs on)
      syscalls: {
        bpf: syscallNumber("bpf", "x64"),
        perf_event_open: syscallNumber("perf_event_open", "x64"),
        finit_module: syscallNumber("finit_module", "x64"),
        io_uring_setup: 425,
      },
    },
    filesystem: {
      secretFiles: [],
      dotenv: path.posix.join(WORKDIR, ".env"),
      writes: {
        "filesystem.write-etc": { create: [`/etc/${mark}`], append: [] },
        "filesystem.write-usr": { create: [`/usr/${mark}`, `/usr/local/bin/${mark}`], append: [] },
        "filesystem.workdir-write": { create: [path.posix.join(WORKDIR, `${mark}-ok`)], append: [] },
      },
      symlinks: [],
      plantedEnv: [],
      socketPath: null,
      abstractName: null,
    },
    egress: null,
    cluster: targets,
    outside: { skip: "no outside host in a cluster" },
    gate: { precious: "", setuid: "", history: { ref: "", reflogs: [], first: "" } },
    timeScale: 1,
  };
}

/** The agent's pod spec as rendered: the SandboxTemplate's pod template, or the Pod's spec. */
function agentTemplate(rendered: Rendered): {
  labels: Record<string, string>;
  spec: Record<string, unknown>;
} {
  for (const o of rendered.objects) {
    if (o.kind === "SandboxTemplate") {
      const t = (o.spec as { podTemplate: { metadata: { labels: Record<string, string> }; spec: object } })
        .podTemplate;
      return { labels: t.metadata.labels, spec: structuredClone(t.spec) as Record<string, unknown> };
    }
    if (o.kind === "Pod")
      return { labels: o.metadata.labels ?? {}, spec: structuredClone(o.spec) as Record<string, unknown> };
  }
  throw new Error("the rendered manifests hold no agent template");
}

interface Container {
  name: string;
  command?: string[];
  args?: string[];
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
}

/**
 * The ConfigMap holding the probe program and its config, and the prove pod: the agent's pod spec
 * with the probe as its command, the ConfigMap mounted read-only, the workdir an emptyDir (a
 * claim's volume belongs to its sandbox), never restarted, and a deadline.
 */
export function proveObjects(
  rendered: Rendered,
  o: K8sOptions,
  token: string,
  probeSource: string,
  targets: ClusterTargets = DEFAULT_TARGETS,
): K8sObject[] {
  const name = `${o.name}-prove-${token}`;
  const { labels, spec } = agentTemplate(rendered);
  const containers = spec.containers as Container[];
  const agent = containers.find((c) => c.name === "agent")!;
  agent.command = ["python3", `${PROBE_DIR}/probe.py`, `${PROBE_DIR}/config.json`];
  delete agent.args;
  agent.volumeMounts.push({ name: "fourwall-probe", mountPath: PROBE_DIR, readOnly: true });
  const volumes = (spec.volumes as { name: string }[]).map((v) =>
    v.name === "work" ? { name: "work", emptyDir: { sizeLimit: o.workdirSize } } : v,
  );
  volumes.push({ name: "fourwall-probe", configMap: { name } } as { name: string });
  const meta = { name, namespace: o.namespace, labels: { ...labels, "fourwall.dev/prove": token } };
  return [
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: meta,
      data: {
        "probe.py": probeSource,
        "config.json": `${JSON.stringify(clusterProbeConfig(token, targets), null, 2)}\n`,
      },
    },
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: meta,
      spec: { ...spec, volumes, restartPolicy: "Never", activeDeadlineSeconds: 120 },
    },
  ];
}

/** Host evidence as the pod saw it: a write that worked landed (the pod's root is all there is). */
function podEvidence(reports: ProbeReport[]): HostEvidence {
  const landed: Record<string, string[]> = {};
  let workdirWrite: string | undefined;
  for (const r of reports) {
    if (!("data" in r) || !Array.isArray(r.data.attempts)) continue;
    const written = (r.data.attempts as string[]).filter((a) => a.endsWith(": written"));
    if (r.id === "filesystem.workdir-write")
      workdirWrite = written.length > 0 ? "written by fourwall prove" : undefined;
    else if (written.length > 0) landed[r.id] = written.map((a) => a.slice(0, a.lastIndexOf(": ")));
  }
  return {
    landed,
    workdirWrite,
    udpReceived: 0,
    outside: undefined,
    hostInit: { comm: "", start: "" },
    hostKernel: "",
    gate: { name: "", requests: [], precious: undefined, historyChanged: [] },
  };
}

/** The pod's log judged: the same report `fourwall prove` makes (table, --json). */
export function judgeClusterRun(
  log: string,
  phase: string,
  o: K8sOptions,
  meta: { token: string; started: number; policy: string; presets: string[] },
): ProveReport {
  const all = [...PROBES, ...CLUSTER_EGRESS_PROBES];
  const specs = CLUSTER_PROBES.map((id) => all.find((p) => p.id === id)!);
  const parsed = parseProbeOutput(log);
  const local = PROBES.filter((p) => !CLUSTER_PROBES.includes(p.id));
  const notes = [
    `${local.filter((p) => p.wall !== "gate").length} probes need canaries on the host and do not run in a cluster; run \`fourwall prove\` on a machine for them`,
    GATE_NOTE,
  ];
  if (!parsed.finished) notes.push(`the probe pod ended (${phase}) before the probe program's end`);
  const results = evaluate(
    specs,
    parsed.reports,
    {
      // "k8s …" is no local runtime: uid 0 in the pod is a hole, whatever the runtime class
      target: { kind: "box", runtime: `k8s ${o.runtimeClass}`, rlimits: [] },
      evidence: podEvidence(parsed.reports),
      root: false,
    },
    `no report: the probe pod ended ${phase}`,
  );
  const counts = tally(results);
  return {
    version: 1,
    runId: meta.token,
    target: { kind: "box", runtime: `k8s ${o.runtimeClass}`, policy: meta.policy, presets: meta.presets },
    launchedAs: `pod ${o.namespace}/${o.name}-prove-${meta.token}`,
    startedAt: new Date(meta.started).toISOString(),
    durationMs: Date.now() - meta.started,
    results,
    tally: counts,
    ok: heldUp(counts),
    notes,
  };
}

/** Runs the prove pod on a cluster (`runPod`: src/k8s/cluster.ts's runPodToEnd) and judges it. */
export async function proveInCluster(
  rendered: Rendered,
  o: K8sOptions,
  source: { policy: string; presets: string[]; probe: string },
  runPod: (objects: K8sObject[]) => Promise<{ phase: string; log: string }>,
  targets: ClusterTargets = DEFAULT_TARGETS,
): Promise<{ report: ProveReport; exitCode: number }> {
  const started = Date.now();
  const token = randomBytes(4).toString("hex");
  const ran = await runPod(proveObjects(rendered, o, token, readFileSync(source.probe, "utf8"), targets));
  const report = judgeClusterRun(ran.log, ran.phase, o, { token, started, ...source });
  return { report, exitCode: report.ok ? 0 : 1 };
}
