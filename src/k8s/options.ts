// What `fourwall k8s render|apply|run` may be told, checked once, with a message that names the flag.

export type Flavor = "agent-sandbox" | "pod";
export type RuntimeClassName = "gvisor" | "kata";
export type ProxyBackend = "builtin" | "squid";

export interface K8sOptions {
  flavor: Flavor;
  /** The agent's container image (it must hold the agent and its tools). */
  image: string;
  /**
   * The proxy's image, built from the project's Dockerfiles: `k8s/proxy.Dockerfile` (fourwall's
   * proxy) or `k8s/squid.Dockerfile` (squid-openssl and openssl).
   */
  proxyImage: string;
  /** Which proxy the Deployment runs: fourwall's own, or squid with the config generated from the policy. Absent: the policy's egress.proxy. */
  proxy?: ProxyBackend;
  /** Base name of every object (a DNS-1123 label). */
  name: string;
  namespace: string;
  /** agent-sandbox: sandboxes kept warm, ready to be claimed. */
  warmPool: number;
  runtimeClass: RuntimeClassName;
  /** Also render the RuntimeClass object (cluster-scoped: usually an admin's job). */
  renderRuntimeClass: boolean;
  /** RuntimeDefault, or fourwall's own profile as a Localhost profile (its file is rendered beside). */
  seccomp: "runtime-default" | "fourwall";
  /** The workdir: a size-limited emptyDir, or a PersistentVolumeClaim of this size. */
  workdirSize: string;
  workdirPvc: boolean;
  tmpSize: string;
  /** The agents' proxy address: the Service's cluster IP when known (then agents need no DNS at all). */
  proxyAddress?: string;
  /** Proxy replicas. */
  proxyReplicas: number;
  /** Also render a CiliumNetworkPolicy that limits the proxy's own egress to the allowed names. */
  cilium: boolean;
  /** The command of a `pod` flavor agent (agent-sandbox: the claim's exec runs it). */
  command: string[];
}

/** The squid backend's default image (k8s/squid.Dockerfile). */
export const SQUID_PROXY_IMAGE = "fourwall-egress-squid:latest";

export const DEFAULT_OPTIONS: K8sOptions = {
  flavor: "agent-sandbox",
  image: "node:20-bookworm-slim",
  proxyImage: "fourwall-egress:latest",
  name: "fourwall",
  namespace: "default",
  warmPool: 1,
  runtimeClass: "gvisor",
  renderRuntimeClass: false,
  seccomp: "runtime-default",
  workdirSize: "10Gi",
  workdirPvc: false,
  tmpSize: "1Gi",
  proxyReplicas: 2,
  cilium: false,
  command: ["sleep", "infinity"],
};

export class K8sOptionError extends Error {
  override name = "K8sOptionError";
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const QUANTITY = /^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** Checks every option; throws K8sOptionError naming the flag and what it takes. */
export function checkOptions(o: K8sOptions): K8sOptions {
  const bad = (flag: string, why: string): never => {
    throw new K8sOptionError(`${flag}: ${why}`);
  };
  // The longest derived name is NAME-egress-proxy (13 more characters) and must stay a DNS label.
  if (!DNS_LABEL.test(o.name) || o.name.length > 50)
    bad("--name", `"${o.name}" is not a DNS-1123 label of at most 50 characters`);
  if (!DNS_LABEL.test(o.namespace) || o.namespace.length > 63)
    bad("--namespace", `"${o.namespace}" is not a DNS-1123 label`);
  if (!["agent-sandbox", "pod"].includes(o.flavor))
    bad("--flavor", `takes agent-sandbox or pod, not "${o.flavor}"`);
  if (!["gvisor", "kata"].includes(o.runtimeClass))
    bad("--runtime-class", `takes gvisor or kata, not "${o.runtimeClass}"`);
  if (!Number.isInteger(o.warmPool) || o.warmPool < 0 || o.warmPool > 1000)
    bad("--warm-pool", "takes a whole number from 0 to 1000");
  if (!Number.isInteger(o.proxyReplicas) || o.proxyReplicas < 1 || o.proxyReplicas > 100)
    bad("--proxy-replicas", "takes a whole number from 1 to 100");
  for (const [flag, value] of [
    ["--workdir-size", o.workdirSize],
    ["--tmp-size", o.tmpSize],
  ] as const)
    if (!QUANTITY.test(value)) bad(flag, `"${value}" is not a Kubernetes quantity (e.g. 10Gi)`);
  if (!o.image.trim() || /\s/.test(o.image)) bad("--image", "takes an image reference");
  if (!o.proxyImage.trim() || /\s/.test(o.proxyImage)) bad("--proxy-image", "takes an image reference");
  if (o.proxy !== undefined && !["builtin", "squid"].includes(o.proxy))
    bad("--proxy", `takes builtin or squid, not "${o.proxy}"`);
  if (o.proxyAddress !== undefined && !IPV4.test(o.proxyAddress))
    bad("--proxy-address", "takes the proxy Service's IPv4 cluster IP");
  if (o.command.length === 0) bad("command", "the pod flavor needs a command");
  return o;
}
