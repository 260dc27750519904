/**
 * The same policy, on Kubernetes (pure: policy + options → objects). The four walls map onto what a
 * cluster already has, not onto a scheduler of fourwall's own:
 *   isolation  → a RuntimeClass (gVisor, or Kata for the microVM tier), a non-root fixed uid, every
 *                capability dropped, no privilege escalation, seccomp (RuntimeDefault or fourwall's
 *                own table as a Localhost profile), no host namespaces, no service-account token;
 *   filesystem → a read-only root, one writable workdir (size-limited emptyDir, or a PVC), /tmp
 *                and HOME as size-limited emptyDirs, no hostPath, no service links in the env;
 *   egress     → a default-deny NetworkPolicy whose one way out is fourwall's proxy (a Deployment +
 *                Service running `fourwall egress serve` with the policy's rules as a ConfigMap,
 *                or squid with the configuration generated from the policy: `--proxy squid`);
 *                the proxy's own egress refuses internal ranges and cloud metadata;
 *   credentials→ the secrets in a Secret mounted into the proxy only, the agents holding sentinels
 *                and the CA's certificate from a ConfigMap (src/k8s/credentials.ts);
 *   gate       → not on a cluster yet (there is no human at a pod's terminal): see docs/scale.md.
 * The agent-sandbox flavor renders kubernetes-sigs/agent-sandbox's SandboxTemplate + SandboxWarmPool
 * (claimed by `fourwall k8s run`); the pod flavor a plain Pod.
 */
import type { Policy } from "../policy/schema.js";
import { dockerSeccomp } from "../runtimes/docker.js";
import type { EgressPlan } from "../walls/egress/index.js";
import {
  proxyEnvironmentAt,
  renderSquidConfig,
  renderSquidHosts,
  SQUID_ERROR_TEMPLATE,
  SQUID_SNI_HELPER,
  squidFiles,
} from "../walls/egress/index.js";
import {
  agentCredentialData,
  agentCredentials,
  CREDENTIALS_ANNOTATION,
  CREDENTIALS_DIR,
  CREDENTIALS_FILE,
  FILLED_AT_APPLY,
} from "./credentials.js";
import { K8sOptionError, type K8sOptions, type ProxyBackend } from "./options.js";

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export interface Rendered {
  objects: K8sObject[];
  /** Files that are not objects: the Localhost seccomp profile, which lives on each node's disk. */
  files: { path: string; content: string; why: string }[];
  notes: string[];
}

export const PROXY_PORT = 3128;
export const SECCOMP_PROFILE_PATH = "fourwall/seccomp.json";
/** Internal and metadata ranges the proxy pods may never reach (the proxy's own guard refuses them too). */
export const BLOCKED_RANGES = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "169.254.0.0/16",
  "127.0.0.0/8",
  "0.0.0.0/8",
  "192.0.0.0/24",
  "198.18.0.0/15",
  "224.0.0.0/4",
  "240.0.0.0/4",
];

const ROLE = "fourwall.dev/role";
const BOX = "fourwall.dev/box";

/** What rendering reads from files where fourwall runs (the CLI reads them): egress.trust's certificates. */
export interface RenderInputs {
  /** The contents of egress.trust's files, in order. */
  trust?: string[];
}

/** Where the proxy pod finds egress.trust's certificates (from its policy ConfigMap). */
const trustPath = (i: number) => `/etc/fourwall/trust-${i}.pem`;

/**
 * The egress slice the cluster's proxy gets. Credentials go with the builtin proxy (their values in
 * the proxy's Secret, filled at apply), egress.trust's files into the ConfigMap beside the policy.
 * The input gate is built for `fourwall run` only (its hooks run on the host): left out, with a note.
 */
function clusterEgress(
  egress: Policy["egress"],
  plan: EgressPlan,
  backend: ProxyBackend,
  notes: string[],
): Policy["egress"] {
  const { credentials, input, trust, ...rest } = egress;
  if ((input?.length ?? 0) > 0)
    notes.push(
      "egress.input (the input gate) is not rendered for Kubernetes yet: run it with `fourwall run`",
    );
  if (!holdsCredentials(plan, backend)) return rest;
  return {
    ...rest,
    credentials,
    ...(trust && trust.length > 0 ? { trust: trust.map((_, i) => trustPath(i)) } : {}),
  };
}

/**
 * Whether the cluster's proxy holds credentials: the builtin proxy with entries. squid cannot swap:
 * a required entry is refused, optional ones (the presets' keys) are left out with a note.
 */
function holdsCredentials(plan: EgressPlan, backend: ProxyBackend, notes?: string[]): boolean {
  const entries = plan.credentials ?? [];
  if (entries.length === 0) return false;
  if (backend !== "squid") return true;
  const required = entries.find((e) => !e.optional);
  if (required)
    throw new K8sOptionError(
      `--proxy squid: credential ${required.name} needs the builtin proxy (squid cannot swap a sentinel for its secret)`,
    );
  notes?.push("--proxy squid: the optional credentials are left out (squid cannot swap them)");
  return false;
}

export function renderManifests(
  policy: Policy,
  egress: EgressPlan,
  o: K8sOptions,
  inputs: RenderInputs = {},
): Rendered {
  const ns = o.namespace;
  const labels = (role: "agent" | "egress") => ({
    "app.kubernetes.io/managed-by": "fourwall",
    [ROLE]: role,
    [BOX]: o.name,
  });
  const meta = (name: string, role: "agent" | "egress") => ({ name, namespace: ns, labels: labels(role) });
  const proxyName = `${o.name}-egress`;
  const proxyHost = o.proxyAddress ?? `${proxyName}.${ns}.svc.cluster.local`;
  const notes: string[] = [];
  const files: Rendered["files"] = [];
  if (!o.proxyAddress)
    notes.push(
      `agents reach the proxy by name (${proxyHost}), so their NetworkPolicy lets them ask the cluster's DNS (UDP/TCP 53 to kube-dns): ` +
        "DNS is then a narrow channel out; pass --proxy-address (or use `fourwall k8s apply`, which pins the Service's IP) to close it",
    );

  const backend: ProxyBackend = o.proxy ?? policy.egress.proxy;
  const credentials = holdsCredentials(egress, backend, notes);
  const names = credentialNames(o);
  const objects: K8sObject[] = [];
  if (o.renderRuntimeClass) objects.push(runtimeClass(o));
  objects.push(
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: meta(`${proxyName}-policy`, "egress"),
      data:
        backend === "squid"
          ? squidData(egress, o)
          : {
              "policy.json": `${JSON.stringify({ egress: clusterEgress(policy.egress, egress, backend, notes) }, null, 2)}\n`,
              ...(credentials ? trustData(egress, inputs) : {}),
            },
    },
    proxyDeployment(o, meta(proxyName, "egress"), labels("egress"), backend, credentials),
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta(proxyName, "egress"),
      spec: {
        selector: labels("egress"),
        ports: [{ name: "proxy", port: PROXY_PORT, targetPort: PROXY_PORT, protocol: "TCP" }],
        ...(o.proxyAddress ? { clusterIP: o.proxyAddress } : {}),
      },
    },
    agentNetworkPolicy(o, meta(`${o.name}-agent-egress`, "agent"), labels),
    proxyNetworkPolicy(meta(`${proxyName}-egress`, "egress"), labels, egress),
  );
  if (credentials) {
    objects.push(
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: meta(names.secret, "egress"),
        type: "Opaque",
        stringData: { [CREDENTIALS_FILE.slice(CREDENTIALS_DIR.length + 1)]: FILLED_AT_APPLY },
      },
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: meta(names.agentMap, "agent"),
        data: agentCredentialData(egress),
      },
    );
    notes.push(
      `the Secret ${names.secret} (proxy only) and the ConfigMap ${names.agentMap} (the agents' sentinels and CA certificate) hold placeholders: \`fourwall k8s apply\` fills them from ${(egress.credentials ?? []).map((e) => ("env" in e.source ? `$${e.source.env}` : e.source.file)).join(", ")} and a new CA`,
    );
  }
  if (o.cilium)
    objects.push(ciliumPolicy(meta(`${proxyName}-fqdn`, "egress"), labels("egress"), egress, notes));

  const pod = agentPodSpec(policy, o, proxyHost, backend, credentials ? egress : undefined);
  if (o.seccomp === "fourwall")
    files.push({
      path: SECCOMP_PROFILE_PATH,
      content: `${JSON.stringify(dockerSeccomp("runc"), null, 2)}\n`,
      why: `copy to /var/lib/kubelet/seccomp/${SECCOMP_PROFILE_PATH} on every node that runs agents`,
    });
  if (o.workdirPvc && o.flavor === "pod")
    objects.push({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: meta(`${o.name}-work`, "agent"),
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: o.workdirSize } } },
    });
  if (o.flavor === "pod") {
    objects.push({
      apiVersion: "v1",
      kind: "Pod",
      metadata: meta(o.name, "agent"),
      spec: { ...pod, restartPolicy: "Never" },
    });
  } else {
    objects.push({
      apiVersion: "extensions.agents.x-k8s.io/v1beta1",
      kind: "SandboxTemplate",
      metadata: meta(o.name, "agent"),
      spec: {
        podTemplate: { metadata: { labels: labels("agent") }, spec: pod },
        // fourwall renders its own NetworkPolicy (above): one the controller manages could allow more.
        networkPolicyManagement: "Unmanaged",
        envVarsInjectionPolicy: "Disallowed",
        ...(o.workdirPvc
          ? { volumeClaimTemplates: [workClaim(o)], volumeClaimTemplatesPolicy: "Disallowed" }
          : {}),
      },
    });
    objects.push({
      apiVersion: "extensions.agents.x-k8s.io/v1beta1",
      kind: "SandboxWarmPool",
      metadata: meta(o.name, "agent"),
      spec: { replicas: o.warmPool, sandboxTemplateRef: { name: o.name } },
    });
  }
  return { objects, files, notes };
}

/** A claim on the warm pool: one sandbox for one `fourwall k8s run`. */
export function sandboxClaim(o: K8sOptions, claimName: string): K8sObject {
  return {
    apiVersion: "extensions.agents.x-k8s.io/v1beta1",
    kind: "SandboxClaim",
    metadata: {
      name: claimName,
      namespace: o.namespace,
      labels: { "app.kubernetes.io/managed-by": "fourwall", [BOX]: o.name },
    },
    spec: { warmPoolRef: { name: o.name }, lifecycle: { shutdownPolicy: "Delete" } },
  };
}

function runtimeClass(o: K8sOptions): K8sObject {
  return {
    apiVersion: "node.k8s.io/v1",
    kind: "RuntimeClass",
    metadata: { name: o.runtimeClass, labels: { "app.kubernetes.io/managed-by": "fourwall" } },
    handler: o.runtimeClass === "gvisor" ? "runsc" : "kata",
  };
}

function workClaim(o: K8sOptions) {
  return {
    metadata: { name: "work" },
    spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: o.workdirSize } } },
  };
}

const MiB = 1024 * 1024;

/** The agent's pod: the isolation and filesystem walls in Kubernetes' own words. */
export function agentPodSpec(
  policy: Policy,
  o: K8sOptions,
  proxyHost: string,
  backend: ProxyBackend = o.proxy ?? policy.egress.proxy,
  withCredentials?: EgressPlan,
) {
  const creds = withCredentials ? agentCredentials(withCredentials, credentialNames(o).agentMap) : undefined;
  const uid = policy.isolation.rootModeUid ?? 70000;
  const memory = `${Math.max(64, Math.floor(policy.isolation.limits.memory / MiB))}Mi`;
  const seccompProfile =
    o.seccomp === "fourwall"
      ? { type: "Localhost", localhostProfile: SECCOMP_PROFILE_PATH }
      : { type: "RuntimeDefault" };
  const env = Object.entries({
    ...proxyEnvironmentAt(proxyHost, PROXY_PORT, backend !== "squid"),
    HOME: "/home/agent",
  }).map(([name, value]): object => ({ name, value }));
  if (creds) env.push(...creds.env);
  const work = o.workdirPvc
    ? { name: "work", persistentVolumeClaim: { claimName: o.flavor === "pod" ? `${o.name}-work` : "work" } }
    : { name: "work", emptyDir: { sizeLimit: o.workdirSize } };
  return {
    runtimeClassName: o.runtimeClass,
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    hostNetwork: false,
    hostPID: false,
    hostIPC: false,
    shareProcessNamespace: false,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: uid,
      runAsGroup: uid,
      fsGroup: uid,
      seccompProfile,
    },
    containers: [
      {
        name: "agent",
        image: o.image,
        command: o.command,
        workingDir: "/work",
        env,
        securityContext: {
          runAsNonRoot: true,
          runAsUser: uid,
          allowPrivilegeEscalation: false,
          privileged: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
          seccompProfile,
        },
        resources: {
          requests: { cpu: "250m", memory: policy.isolation.limits.memory < 256 * MiB ? memory : "256Mi" },
          limits: { memory },
        },
        volumeMounts: [
          { name: "work", mountPath: "/work" },
          { name: "tmp", mountPath: "/tmp" },
          { name: "home", mountPath: "/home/agent" },
          ...(creds?.mounts ?? []),
        ],
      },
    ],
    volumes: [
      work,
      { name: "tmp", emptyDir: { sizeLimit: o.tmpSize } },
      { name: "home", emptyDir: { sizeLimit: "512Mi" } },
      ...(creds?.volumes ?? []),
    ],
  };
}

/** The names of the credential objects: the proxy's Secret, the agents' ConfigMap, the proxy's Deployment. */
export function credentialNames(o: K8sOptions) {
  return {
    secret: `${o.name}-egress-credentials`,
    agentMap: `${o.name}-credentials`,
    deployment: `${o.name}-egress`,
  };
}

/** egress.trust's certificates for the proxy's ConfigMap (read by the CLI: rendering reads no file). */
function trustData(egress: EgressPlan, inputs: RenderInputs): Record<string, string> {
  const files = egress.trust ?? [];
  if (files.length !== (inputs.trust?.length ?? 0))
    throw new K8sOptionError(`egress.trust: the contents of ${files.join(", ")} were not read`);
  return Object.fromEntries(
    files.map((_, i) => [trustPath(i).slice("/etc/fourwall/".length), inputs.trust![i]!]),
  );
}

/** Where the squid backend keeps its files in the proxy pod (an emptyDir; the config names them). */
export const SQUID_DIR = "/run/fourwall-squid";

/** The squid backend's ConfigMap: the configuration generated from the policy, its hosts file, helper and error page. */
function squidData(egress: EgressPlan, o: K8sOptions): Record<string, string> {
  return {
    "squid.conf": renderSquidConfig(egress, {
      listen: { host: "0.0.0.0", port: PROXY_PORT },
      dir: SQUID_DIR,
      box: `${o.namespace}/${o.name}`,
    }),
    // the policy's pins, then the pod's own names (the cluster's DNS answers the rest)
    hosts: renderSquidHosts(egress, "127.0.0.1 localhost\n::1 localhost\n"),
    "no-sni.sh": SQUID_SNI_HELPER,
    "error.txt": SQUID_ERROR_TEMPLATE,
  };
}

/**
 * The squid container's start: the files the configuration names, put in the pod's writable dir
 * (the ConfigMap's copies, an error page for every template, a throwaway peek-only certificate
 * that signs nothing), the logs followed onto stdout/stderr for the cluster's log agent, then
 * squid in the foreground. Checked with Debian's squid-openssl 5.7 as uid 65532 in a private mount
 * and network namespace (an unlisted host gets 403 with X-Fourwall-Denied).
 */
export function squidStartScript(): string {
  const f = squidFiles(SQUID_DIR);
  return [
    "set -eu",
    `cp /etc/fourwall/hosts ${f.hosts}`,
    `cp /etc/fourwall/no-sni.sh ${f.sniHelper} && chmod 755 ${f.sniHelper}`,
    `mkdir -p ${f.errors}`,
    `for t in /usr/share/squid/errors/templates/ERR_*; do cp /etc/fourwall/error.txt "${f.errors}/$(basename "$t")"; done`,
    `cp /usr/share/squid/errors/templates/error-details.txt ${f.errors}/`,
    `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj /CN=fourwall-peek-only -keyout ${f.bumpKey} -out ${f.bumpCert} 2>/dev/null`,
    // squid reopens its log paths (a /dev/stdout link is refused to a non-root user): real files, followed
    `touch ${f.accessLog} ${f.cacheLog}`,
    `tail -F -n +1 ${f.accessLog} & tail -F -n +1 ${f.cacheLog} >&2 &`,
    "exec squid -N -f /etc/fourwall/squid.conf",
  ].join("\n");
}

function proxyDeployment(
  o: K8sOptions,
  metadata: K8sObject["metadata"],
  selector: Record<string, string>,
  backend: ProxyBackend,
  credentials = false,
): K8sObject {
  const args = ["egress", "serve", "-p", "/etc/fourwall/policy.json", "--listen", `0.0.0.0:${PROXY_PORT}`];
  if (credentials) args.push("--credentials", CREDENTIALS_FILE);
  const secret = credentials
    ? {
        mount: [{ name: "credentials", mountPath: CREDENTIALS_DIR, readOnly: true }],
        // readable by the proxy's group only (fsGroup), never by another pod: the Secret is mounted nowhere else
        volume: [
          { name: "credentials", secret: { secretName: credentialNames(o).secret, defaultMode: 0o440 } },
        ],
        annotations: { annotations: { [CREDENTIALS_ANNOTATION]: FILLED_AT_APPLY } },
      }
    : { mount: [], volume: [], annotations: {} };
  const run = backend === "squid" ? { command: ["/bin/sh", "-c", squidStartScript()] } : { args };
  const squidDir =
    backend === "squid" ? [{ name: "squid", emptyDir: { medium: "Memory", sizeLimit: "64Mi" } }] : [];
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata,
    spec: {
      replicas: o.proxyReplicas,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: selector, ...secret.annotations },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            runAsGroup: 65532,
            ...(credentials ? { fsGroup: 65532 } : {}),
            seccompProfile: { type: "RuntimeDefault" },
          },
          containers: [
            {
              name: "proxy",
              image: o.proxyImage,
              ...run,
              ports: [{ name: "proxy", containerPort: PROXY_PORT, protocol: "TCP" }],
              readinessProbe: { tcpSocket: { port: PROXY_PORT }, periodSeconds: 5 },
              securityContext: {
                allowPrivilegeEscalation: false,
                privileged: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
              resources: { requests: { cpu: "250m", memory: "128Mi" }, limits: { memory: "512Mi" } },
              volumeMounts: [
                { name: "policy", mountPath: "/etc/fourwall", readOnly: true },
                { name: "tmp", mountPath: "/tmp" },
                ...squidDir.map(({ name }) => ({ name, mountPath: SQUID_DIR })),
                ...secret.mount,
              ],
            },
          ],
          volumes: [
            { name: "policy", configMap: { name: `${metadata.name}-policy` } },
            { name: "tmp", emptyDir: { sizeLimit: "256Mi" } },
            ...squidDir,
            ...secret.volume,
          ],
        },
      },
    },
  };
}

type Labels = (role: "agent" | "egress") => Record<string, string>;

/** Agents: nothing in, and out only to the proxy (and, without a pinned proxy IP, to the cluster DNS). */
function agentNetworkPolicy(o: K8sOptions, metadata: K8sObject["metadata"], labels: Labels): K8sObject {
  const egress: object[] = [
    {
      to: [{ podSelector: { matchLabels: labels("egress") } }],
      ports: [{ protocol: "TCP", port: PROXY_PORT }],
    },
  ];
  if (!o.proxyAddress)
    egress.push({
      to: [{ namespaceSelector: {}, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
      ports: [
        { protocol: "UDP", port: 53 },
        { protocol: "TCP", port: 53 },
      ],
    });
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata,
    spec: {
      podSelector: { matchLabels: labels("agent") },
      policyTypes: ["Ingress", "Egress"],
      ingress: [],
      egress,
    },
  };
}

/**
 * The proxy: in only from agents, out to public addresses only, on the ports the rules name, plus
 * the cluster DNS (the proxy resolves names itself). Plain NetworkPolicy cannot name hosts: the
 * names are the proxy's job; --cilium adds a CNI policy that holds the proxy itself to them.
 */
function proxyNetworkPolicy(metadata: K8sObject["metadata"], labels: Labels, egress: EgressPlan): K8sObject {
  const ports = rulePorts(egress);
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata,
    spec: {
      podSelector: { matchLabels: labels("egress") },
      policyTypes: ["Ingress", "Egress"],
      ingress: [
        {
          from: [{ podSelector: { matchLabels: labels("agent") } }],
          ports: [{ protocol: "TCP", port: PROXY_PORT }],
        },
      ],
      egress: [
        {
          to: [
            { ipBlock: { cidr: "0.0.0.0/0", except: BLOCKED_RANGES } },
            {
              ipBlock: {
                cidr: "::/0",
                except: ["fc00::/7", "fe80::/10", "::1/128", "::ffff:0:0/96", "64:ff9b::/96"],
              },
            },
          ],
          ...(ports ? { ports } : {}),
        },
        {
          to: [{ namespaceSelector: {}, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
          ports: [
            { protocol: "UDP", port: 53 },
            { protocol: "TCP", port: 53 },
          ],
        },
      ],
    },
  };
}

/** The TCP ports the allow rules name (undefined: a rule allows more ports than a list should hold). */
export function rulePorts(
  egress: EgressPlan,
): { protocol: "TCP"; port: number; endPort?: number }[] | undefined {
  const ranges = new Map<string, [number, number]>();
  for (const rule of egress.allow) for (const [a, b] of rule.ports) ranges.set(`${a}-${b}`, [a, b]);
  if (ranges.size === 0) return [{ protocol: "TCP", port: 443 }];
  if (ranges.size > 50) return undefined;
  return [...ranges.values()]
    .sort((x, y) => x[0] - y[0])
    .map(([a, b]) => (a === b ? { protocol: "TCP", port: a } : { protocol: "TCP", port: a, endPort: b }));
}

function ciliumPolicy(
  metadata: K8sObject["metadata"],
  selector: Record<string, string>,
  egress: EgressPlan,
  notes: string[],
): K8sObject {
  const fqdns: object[] = [];
  const cidrs: string[] = [];
  for (const rule of egress.allow) {
    if (rule.host.kind === "name")
      fqdns.push(
        rule.host.wildcard ? { matchPattern: `*.${rule.host.name}` } : { matchName: rule.host.name },
      );
    else cidrs.push(`${rule.host.network}/${rule.host.prefix}`);
  }
  if (egress.pins && Object.keys(egress.pins).length > 0)
    notes.push(
      "--cilium: names pinned with resolve are matched by name only; their pinned addresses are not added",
    );
  return {
    apiVersion: "cilium.io/v2",
    kind: "CiliumNetworkPolicy",
    metadata,
    spec: {
      endpointSelector: { matchLabels: selector },
      egress: [
        {
          toEndpoints: [
            { matchLabels: { "k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns" } },
          ],
          toPorts: [{ ports: [{ port: "53", protocol: "ANY" }], rules: { dns: [{ matchPattern: "*" }] } }],
        },
        ...(fqdns.length > 0 ? [{ toFQDNs: fqdns }] : []),
        ...(cidrs.length > 0 ? [{ toCIDRSet: cidrs.map((cidr) => ({ cidr })) }] : []),
      ],
    },
  };
}
