/**
 * `fourwall k8s render`: every object for every preset and flavor validates — core kinds against
 * Kubernetes' own OpenAPI schemas (kubernetes-models), agent-sandbox kinds against the project's CRDs
 * (test/fixtures/k8s/agent-sandbox) — and every security field the walls promise is there. A golden
 * file per flavor (and one for the squid proxy) shows the whole rendering; regenerate with
 * FOURWALL_GOLDEN=1.
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
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { stringify } from "yaml";
import { DEFAULT_OPTIONS, type K8sOptions } from "../../../src/k8s/options.js";
import {
  BLOCKED_RANGES,
  type K8sObject,
  renderManifests,
  SQUID_DIR,
  sandboxClaim,
  squidStartScript,
} from "../../../src/k8s/render.js";
import { loadPolicy } from "../../../src/policy/load.js";
import { PRESET_NAMES } from "../../../src/policy/presets.js";
import { renderSquidConfig } from "../../../src/walls/egress/index.js";

const FIXTURES = path.resolve(import.meta.dirname, "../../fixtures/k8s/agent-sandbox");
const GOLDEN = path.resolve(import.meta.dirname, "golden");

const core: Record<string, (o: K8sObject) => { validate(): void }> = {
  ConfigMap: (o) => new ConfigMap(o as never),
  Deployment: (o) => new Deployment(o as never),
  NetworkPolicy: (o) => new NetworkPolicy(o as never),
  PersistentVolumeClaim: (o) => new PersistentVolumeClaim(o as never),
  Pod: (o) => new Pod(o as never),
  RuntimeClass: (o) => new RuntimeClass(o as never),
  Secret: (o) => new Secret(o as never),
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

/** A policy with two bound secrets (one for git) and a private upstream CA. */
export const CREDENTIAL_FLAGS = {
  egress: {
    allow: ["api.example.com", "github.com"],
    credentials: [
      { fromEnv: "EXAMPLE_KEY", hosts: ["api.example.com"], file: "/run/secrets/example" },
      { fromEnv: "GITHUB_TOKEN", hosts: ["github.com"], git: true },
    ],
    trust: ["/nonexistent/private-ca.pem"],
  },
};
export const TRUST_PEM = "-----BEGIN CERTIFICATE-----\nnot read in a unit test\n-----END CERTIFICATE-----\n";

function render(preset: string, options: Partial<K8sOptions> = {}, flags: Record<string, unknown> = {}) {
  const { policy, egress } = loadPolicy({ cwd: "/nonexistent", flags, presets: [preset] });
  const inputs = egress.trust ? { trust: egress.trust.map(() => TRUST_PEM) } : {};
  return renderManifests(policy, egress, { ...DEFAULT_OPTIONS, ...options }, inputs);
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
    { flavor: "agent-sandbox", proxy: "squid" },
    { flavor: "pod", proxy: "squid", proxyAddress: "10.96.0.50" },
  ];
  for (const preset of PRESET_NAMES)
    for (const variant of variants)
      test(`${preset} ${JSON.stringify(variant)}`, () => {
        const { objects } = render(preset, variant);
        assert.deepEqual(objects.map(invalid).filter(Boolean), []);
      });
  for (const variant of variants.filter((v) => v.proxy !== "squid"))
    test(`bound credentials ${JSON.stringify(variant)}`, () => {
      const { objects } = render("node-dev", variant, CREDENTIAL_FLAGS);
      assert.ok(objects.some((o) => o.kind === "Secret"));
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
        // configMaps: the CA certificate and sentinels (credentials), read-only and small
        assert.ok(emptyDir?.sizeLimit || v.persistentVolumeClaim || v.configMap, `${v.name} is bounded`);
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

describe("k8s render: squid as the cluster's proxy (--proxy squid)", () => {
  const { objects } = render("node-dev", { proxy: "squid", proxyImage: "fourwall-egress-squid:1" });
  const deployment = objects.find((o) => o.kind === "Deployment")!;
  const proxyPod = (deployment.spec as { template: { spec: Record<string, unknown> } }).template.spec as {
    containers: {
      image: string;
      command: string[];
      args?: string[];
      volumeMounts: { mountPath: string }[];
    }[];
    volumes: { name: string; emptyDir?: object }[];
    securityContext: Record<string, unknown>;
  };

  test("the Deployment runs squid with the configuration generated from the policy, same security context", () => {
    const { policy, egress } = loadPolicy({ cwd: "/nonexistent", flags: {}, presets: ["node-dev"] });
    const map = objects.find((o) => o.kind === "ConfigMap")! as K8sObject & { data: Record<string, string> };
    assert.equal(
      map.data["squid.conf"],
      renderSquidConfig(egress, {
        listen: { host: "0.0.0.0", port: 3128 },
        dir: SQUID_DIR,
        box: "default/fourwall",
      }),
    );
    assert.equal(map.data["policy.json"], undefined);
    assert.match(map.data["squid.conf"]!, /^http_port 0\.0\.0\.0:3128 ssl-bump/m);
    assert.deepEqual(Object.keys(map.data).sort(), ["error.txt", "hosts", "no-sni.sh", "squid.conf"]);
    const [proxy] = proxyPod.containers;
    assert.equal(proxy!.image, "fourwall-egress-squid:1");
    assert.deepEqual(proxy!.command, ["/bin/sh", "-c", squidStartScript()]);
    assert.equal(proxy!.args, undefined);
    assert.match(squidStartScript(), /exec squid -N -f \/etc\/fourwall\/squid\.conf$/);
    assert.ok(proxy!.volumeMounts.some((m) => m.mountPath === SQUID_DIR));
    assert.ok(proxyPod.volumes.some((v) => v.name === "squid" && v.emptyDir));
    assert.equal(proxyPod.securityContext.runAsNonRoot, true);
    // agents: squid speaks no SOCKS, so every proxy variable names HTTP
    const [pod] = agentPods(objects);
    const env = JSON.stringify(pod);
    assert.equal(env.includes("socks5h://"), false);
    assert.equal(policy.egress.proxy, "builtin", "the flag, not the policy, chose squid");
  });

  test("a policy that cannot be rendered for squid (unknown: ask) is refused", () => {
    const { policy, egress } = loadPolicy({
      cwd: "/nonexistent",
      flags: { egress: { unknown: "ask" } },
      presets: ["node-dev"],
    });
    assert.throws(
      () => renderManifests(policy, egress, { ...DEFAULT_OPTIONS, proxy: "squid" }),
      /unknown: ask needs the builtin proxy/,
    );
  });
});

describe("k8s render: golden files", () => {
  const goldens = [
    { file: "agent-sandbox", options: { flavor: "agent-sandbox" } },
    { file: "pod", options: { flavor: "pod" } },
    { file: "squid", options: { flavor: "agent-sandbox", proxy: "squid" } },
    { file: "credentials", options: { flavor: "agent-sandbox" }, flags: CREDENTIAL_FLAGS },
  ] as const;
  for (const { file: name, options, ...rest } of goldens)
    test(`${name}`, () => {
      const { objects } = render("node-dev", options, "flags" in rest ? rest.flags : {});
      const text = objects.map((o) => stringify(o, { aliasDuplicateObjects: false })).join("---\n");
      const file = path.join(GOLDEN, `${name}.yaml`);
      if (process.env.FOURWALL_GOLDEN === "1") writeFileSync(file, text);
      assert.equal(
        text,
        readFileSync(file, "utf8"),
        `rendering changed: review, then FOURWALL_GOLDEN=1 to accept`,
      );
    });
});
