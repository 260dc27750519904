/**
 * `fourwall k8s render`: every object for every preset and flavor validates — core kinds against
 * Kubernetes' own OpenAPI schemas (kubernetes-models), agent-sandbox kinds against the project's CRDs
 * (test/fixtures/k8s/agent-sandbox) — and every security field the walls promise is there. A golden
 * file per flavor shows the whole rendering; regenerate with FOURWALL_GOLDEN=1.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { Ajv } from "ajv";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { RuntimeClass } from "kubernetes-models/node.k8s.io/v1/RuntimeClass";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Pod } from "kubernetes-models/v1/Pod";
import { Service } from "kubernetes-models/v1/Service";
import { stringify } from "yaml";
import { DEFAULT_OPTIONS, type K8sOptions } from "../../../src/k8s/options.js";
import { BLOCKED_RANGES, type K8sObject, renderManifests, sandboxClaim } from "../../../src/k8s/render.js";
import { loadPolicy } from "../../../src/policy/load.js";
import { PRESET_NAMES } from "../../../src/policy/presets.js";

const FIXTURES = path.resolve(import.meta.dirname, "../../fixtures/k8s/agent-sandbox");
const GOLDEN = path.resolve(import.meta.dirname, "golden");

const core: Record<string, (o: K8sObject) => { validate(): void }> = {
  ConfigMap: (o) => new ConfigMap(o as never),
  Deployment: (o) => new Deployment(o as never),
  NetworkPolicy: (o) => new NetworkPolicy(o as never),
  PersistentVolumeClaim: (o) => new PersistentVolumeClaim(o as never),
  Pod: (o) => new Pod(o as never),
  RuntimeClass: (o) => new RuntimeClass(o as never),
  Service: (o) => new Service(o as never),
};

const ajv = new Ajv({ strict: false, allErrors: true });
const crds = Object.fromEntries(
  ["Sandbox", "SandboxTemplate", "SandboxWarmPool", "SandboxClaim"].map((kind) => {
    const fixture = JSON.parse(readFileSync(path.join(FIXTURES, `${kind}.json`), "utf8"));
    return [kind, { apiVersion: fixture.apiVersion as string, validate: ajv.compile(fixture.schema) }];
  }),
);

/** Undefined when the object is valid, else why. */
function invalid(o: K8sObject): string | undefined {
  const kind = o.kind;
  const crd = crds[kind];
  if (crd) {
    if (o.apiVersion !== crd.apiVersion)
      return `${o.kind}: apiVersion ${o.apiVersion}, the CRD serves ${crd.apiVersion}`;
    return crd.validate(o) ? undefined : `${kind}: ${ajv.errorsText(crd.validate.errors)}`;
  }
  const model = core[o.kind];
  if (!model)
    return o.kind === "CiliumNetworkPolicy" ? undefined : `${o.kind}: no schema to check it against`;
  try {
    model(o).validate();
    return undefined;
  } catch (error) {
    return `${o.kind}: ${(error as Error).message}`;
  }
}

function render(preset: string, options: Partial<K8sOptions> = {}) {
  const { policy, egress } = loadPolicy({ cwd: "/nonexistent", flags: {}, presets: [preset] });
  return renderManifests(policy, egress, { ...DEFAULT_OPTIONS, ...options });
}

const agentPods = (objects: K8sObject[]) =>
  objects.flatMap((o) => {
    if (o.kind === "Pod") return [o.spec as PodSpec];
    if (o.kind === "SandboxTemplate")
      return [(o.spec as { podTemplate: { spec: PodSpec } }).podTemplate.spec];
    return [];
  });

interface PodSpec {
  [k: string]: unknown;
  securityContext: Record<string, unknown>;
  containers: { securityContext: Record<string, unknown>; resources: { limits: Record<string, string> } }[];
  volumes: Record<string, unknown>[];
}

describe("k8s render: every object validates", () => {
  const variants: Partial<K8sOptions>[] = [
    { flavor: "agent-sandbox" },
    { flavor: "pod" },
    {
      flavor: "agent-sandbox",
      workdirPvc: true,
      seccomp: "fourwall",
      renderRuntimeClass: true,
      cilium: true,
    },
    {
      flavor: "pod",
      workdirPvc: true,
      runtimeClass: "kata",
      proxyAddress: "10.96.0.50",
      renderRuntimeClass: true,
    },
  ];
  for (const preset of PRESET_NAMES)
    for (const variant of variants)
      test(`${preset} ${JSON.stringify(variant)}`, () => {
        const { objects } = render(preset, variant);
        assert.deepEqual(objects.map(invalid).filter(Boolean), []);
      });

  test("a claim on the warm pool validates against SandboxClaim", () => {
    assert.equal(invalid(sandboxClaim(DEFAULT_OPTIONS, "fourwall-run-1")), undefined);
  });

  test("the checks can fail: a wrong type, an unknown CRD field and a missing required field are caught", () => {
    const { objects } = render("node-dev", { flavor: "agent-sandbox" });
    const template = structuredClone(objects.find((o) => o.kind === "SandboxTemplate")!);
    (template.spec as Record<string, unknown>).networkPolicyManagement = "Sometimes";
    assert.match(invalid(template) ?? "", /networkPolicyManagement/);
    const pool = structuredClone(objects.find((o) => o.kind === "SandboxWarmPool")!);
    delete (pool.spec as Record<string, unknown>).sandboxTemplateRef;
    assert.match(invalid(pool) ?? "", /sandboxTemplateRef/);
    const deployment = structuredClone(objects.find((o) => o.kind === "Deployment")!);
    (deployment.spec as { replicas: unknown }).replicas = "two";
    assert.match(invalid(deployment) ?? "", /replicas/);
  });
});

describe("k8s render: the walls' fields", () => {
  for (const flavor of ["agent-sandbox", "pod"] as const) {
    const { objects } = render("claude-code", { flavor });
    const [pod] = agentPods(objects);

    test(`${flavor}: isolation (runtime class, non-root fixed uid, no caps, no escalation, seccomp, no host namespaces, no token)`, () => {
      assert.ok(pod);
      assert.equal(pod.runtimeClassName, "gvisor");
      assert.equal(pod.automountServiceAccountToken, false);
      assert.equal(pod.enableServiceLinks, false);
      for (const hostNs of ["hostNetwork", "hostPID", "hostIPC"]) assert.equal(pod[hostNs], false, hostNs);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.ok(Number(pod.securityContext.runAsUser) > 0);
      assert.deepEqual(pod.securityContext.seccompProfile, { type: "RuntimeDefault" });
      for (const c of pod.containers) {
        assert.equal(c.securityContext.allowPrivilegeEscalation, false);
        assert.equal(c.securityContext.privileged, false);
        assert.equal(c.securityContext.readOnlyRootFilesystem, true);
        assert.deepEqual(c.securityContext.capabilities, { drop: ["ALL"] });
        assert.ok(c.resources.limits.memory, "a memory limit from the policy");
      }
    });

    test(`${flavor}: filesystem (no hostPath; workdir, /tmp and HOME size-limited)`, () => {
      assert.ok(pod);
      assert.equal(JSON.stringify(objects).includes("hostPath"), false);
      for (const v of pod.volumes) {
        const emptyDir = v.emptyDir as { sizeLimit?: string } | undefined;
        assert.ok(emptyDir?.sizeLimit || v.persistentVolumeClaim, `${v.name} is bounded`);
      }
    });

    test(`${flavor}: egress (agents: nothing in, out only to the proxy; proxy: no internal or metadata range)`, () => {
      const policies = objects.filter((o) => o.kind === "NetworkPolicy");
      const agent = policies.find(
        (p) =>
          (p.spec as { podSelector: { matchLabels: Record<string, string> } }).podSelector.matchLabels[
            "fourwall.dev/role"
          ] === "agent",
      );
      assert.ok(agent);
      const spec = agent.spec as {
        policyTypes: string[];
        ingress: unknown[];
        egress: { to: object[]; ports: { port: number }[] }[];
      };
      assert.deepEqual(spec.policyTypes, ["Ingress", "Egress"]);
      assert.deepEqual(spec.ingress, []);
      assert.equal(
        JSON.stringify(spec.egress).includes("ipBlock"),
        false,
        "agents get no address range at all",
      );
      assert.deepEqual(spec.egress[0]!.ports, [{ protocol: "TCP", port: 3128 }]);
      const proxy = policies.find((p) => p !== agent)!;
      const blocks = JSON.stringify(proxy.spec);
      for (const range of ["169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])
        assert.ok(blocks.includes(range), range);
      assert.ok(BLOCKED_RANGES.includes("169.254.0.0/16"));
    });
  }

  test("a pinned proxy address: agents get no DNS at all", () => {
    const { objects, notes } = render("node-dev", { proxyAddress: "10.96.0.50" });
    const agent = objects.find(
      (o) => o.kind === "NetworkPolicy" && o.metadata.name.endsWith("agent-egress"),
    )!;
    assert.equal(JSON.stringify(agent.spec).includes("53"), false);
    assert.deepEqual(notes, []);
    const [pod] = agentPods(objects);
    assert.ok(JSON.stringify(pod).includes("http://10.96.0.50:3128"));
  });

  test("fourwall's seccomp table as a Localhost profile: referenced by the pod, its file rendered", () => {
    const { objects, files } = render("node-dev", { seccomp: "fourwall" });
    const [pod] = agentPods(objects);
    assert.deepEqual(pod!.securityContext.seccompProfile, {
      type: "Localhost",
      localhostProfile: "fourwall/seccomp.json",
    });
    const profile = JSON.parse(files[0]!.content);
    assert.equal(profile.defaultAction, "SCMP_ACT_ALLOW");
    assert.ok(profile.syscalls.some((s: { names: string[] }) => s.names.includes("unshare")));
  });
});

describe("k8s render: golden files", () => {
  for (const flavor of ["agent-sandbox", "pod"] as const)
    test(`${flavor}`, () => {
      const { objects } = render("node-dev", { flavor });
      const text = objects.map((o) => stringify(o, { aliasDuplicateObjects: false })).join("---\n");
      const file = path.join(GOLDEN, `${flavor}.yaml`);
      if (process.env.FOURWALL_GOLDEN === "1") writeFileSync(file, text);
      assert.equal(
        text,
        readFileSync(file, "utf8"),
        `rendering changed: review, then FOURWALL_GOLDEN=1 to accept`,
      );
    });
});
