/**
 * Credentials on a cluster (pure). The secrets live in one Secret, mounted into the proxy
 * Deployment only; the agents get a ConfigMap with the sentinels and the CA's certificate, never a
 * key or a secret. `fourwall k8s render` cannot know the values (it must not print them, and the
 * sentinels are shaped from the secrets): it renders both objects with a placeholder, and
 * `fourwall k8s apply` fills them (`fillCredentials`) from the values it gathers where fourwall runs
 * (src/k8s/secrets.ts). Every apply makes new sentinels and a new CA, and rolls the proxies.
 */
import { createHash } from "node:crypto";
import {
  BOX_CA_BUNDLE,
  BOX_CA_CERT,
  BOX_NET_DIR,
  type ClusterCredentialFile,
  type CompiledCredential,
  type CredentialBinding,
  caEnvironment,
  type EgressPlan,
  gitBasicHeader,
  gitOrigins,
  type HeldSecrets,
} from "../walls/egress/index.js";

/** Where the proxy pod mounts its Secret, and the file `fourwall egress serve --credentials` reads. */
export const CREDENTIALS_DIR = "/etc/fourwall-credentials";
export const CREDENTIALS_FILE = `${CREDENTIALS_DIR}/credentials.json`;
/** What `k8s render` puts where a value is only known at `k8s apply`. */
export const FILLED_AT_APPLY = "<filled by fourwall k8s apply>";
/** The proxy pod's annotation that changes with every fill, so the proxies restart on the new Secret. */
export const CREDENTIALS_ANNOTATION = "fourwall.dev/credentials";

const sentinelKey = (name: string) => `sentinel.${name}`;
const gitKey = (name: string) => `git.${name}`;
const basename = (p: string) => p.slice(p.lastIndexOf("/") + 1);

export interface ConfigMapKeyEnv {
  name: string;
  value?: string;
  valueFrom?: { configMapKeyRef: { name: string; key: string; optional: boolean } };
}

/** What the agent's pod gets: variables (sentinels by reference, the CA paths), mounts, volumes. */
export interface AgentCredentials {
  env: ConfigMapKeyEnv[];
  mounts: { name: string; mountPath: string; subPath?: string; readOnly: true }[];
  volumes: object[];
}

/** The agent side: no value at all in the pod spec, only references to the agents' ConfigMap. */
export function agentCredentials(egress: EgressPlan, agentMap: string): AgentCredentials {
  const entries = egress.credentials ?? [];
  const env: ConfigMapKeyEnv[] = [];
  const ref = (key: string, optional: boolean) => ({ configMapKeyRef: { name: agentMap, key, optional } });
  const seen = new Set<string>();
  for (const e of entries)
    if (e.env && !seen.has(e.env)) {
      seen.add(e.env);
      env.push({ name: e.env, valueFrom: ref(sentinelKey(e.name), e.optional) });
    }
  env.push(...Object.entries(caEnvironment()).map(([name, value]) => ({ name, value })));
  // git's config from the environment (GIT_CONFIG_COUNT/KEY_n/VALUE_n): the root is read-only.
  // Optional entries are left out: a missing VALUE_n would stop git altogether.
  const git = entries.filter((e) => e.git && !e.optional).flatMap((e) => gitEntries(egress, e));
  if (git.length > 0) {
    env.push({ name: "GIT_CONFIG_COUNT", value: String(git.length) });
    git.forEach(([origin, name], i) => {
      env.push({ name: `GIT_CONFIG_KEY_${i}`, value: `http.https://${origin}/.extraHeader` });
      env.push({ name: `GIT_CONFIG_VALUE_${i}`, valueFrom: ref(gitKey(name), false) });
    });
  }
  const mounts: AgentCredentials["mounts"] = [
    { name: "fourwall-ca", mountPath: BOX_NET_DIR, readOnly: true },
  ];
  for (const e of entries)
    if (e.file)
      mounts.push({
        name: "fourwall-sentinels",
        mountPath: e.file,
        subPath: sentinelKey(e.name),
        readOnly: true,
      });
  const volumes: object[] = [
    {
      name: "fourwall-ca",
      configMap: {
        name: agentMap,
        items: [BOX_CA_CERT, BOX_CA_BUNDLE].map((p) => ({ key: basename(p), path: basename(p) })),
      },
    },
  ];
  if (entries.some((e) => e.file))
    volumes.push({ name: "fourwall-sentinels", configMap: { name: agentMap, optional: true } });
  return { env, mounts, volumes };
}

function gitEntries(egress: EgressPlan, e: CompiledCredential): [string, string][] {
  return gitOrigins(egress, e).map((origin) => [origin, e.name]);
}

/** The agents' ConfigMap as rendered: every key it will hold, each a placeholder. */
export function agentCredentialData(egress: EgressPlan): Record<string, string> {
  const data: Record<string, string> = {
    [basename(BOX_CA_CERT)]: FILLED_AT_APPLY,
    [basename(BOX_CA_BUNDLE)]: FILLED_AT_APPLY,
  };
  for (const e of egress.credentials ?? []) {
    data[sentinelKey(e.name)] = FILLED_AT_APPLY;
    if (e.git && !e.optional && gitOrigins(egress, e).length > 0) data[gitKey(e.name)] = FILLED_AT_APPLY;
  }
  return data;
}

/** What `k8s apply` gathered where fourwall runs (src/k8s/secrets.ts). */
export interface CredentialMaterials {
  ca: { certPem: string; keyPem: string };
  /** The trust store the agents' bundle starts from (the system's, where fourwall runs). */
  systemBundle: string;
  bindings: CredentialBinding[];
  secrets: HeldSecrets;
}

interface Filled {
  objects: { kind: string; metadata: { name: string; annotations?: Record<string, string> } }[];
}

/**
 * The rendered objects with the values in (a copy): the proxy's Secret gets the credential file,
 * the agents' ConfigMap the sentinels and the CA's certificate (keys of optional entries left unset
 * are dropped), the proxy's pod template an annotation that changes with every fill.
 */
export function fillCredentials<R extends Filled>(
  rendered: R,
  names: { secret: string; agentMap: string; deployment: string },
  m: CredentialMaterials,
): R {
  const out = structuredClone(rendered);
  const file: ClusterCredentialFile = {
    version: 1,
    ca: { cert: m.ca.certPem, key: m.ca.keyPem },
    credentials: m.bindings.map((b) => ({
      name: b.name,
      sentinel: b.sentinel,
      secret: m.secrets.get(b.name)!,
    })),
  };
  const stamp = createHash("sha256")
    .update(m.ca.certPem)
    .update(m.bindings.map((b) => b.sentinel).join("\n"))
    .digest("hex")
    .slice(0, 16);
  for (const o of out.objects as (Filled["objects"][number] & Record<string, unknown>)[]) {
    if (o.kind === "Secret" && o.metadata.name === names.secret)
      o.stringData = { [basename(CREDENTIALS_FILE)]: `${JSON.stringify(file)}\n` };
    if (o.kind === "ConfigMap" && o.metadata.name === names.agentMap) {
      const data: Record<string, string> = {
        [basename(BOX_CA_CERT)]: m.ca.certPem,
        [basename(BOX_CA_BUNDLE)]: `${m.systemBundle.trimEnd()}\n${m.ca.certPem}`,
      };
      const wanted = o.data as Record<string, string>;
      for (const b of m.bindings) {
        data[sentinelKey(b.name)] = b.sentinel;
        if (gitKey(b.name) in wanted) data[gitKey(b.name)] = gitBasicHeader(b.sentinel);
      }
      o.data = data;
    }
    if (o.kind === "Deployment" && o.metadata.name === names.deployment) {
      const template = (o.spec as { template: { metadata: { annotations?: Record<string, string> } } })
        .template;
      template.metadata.annotations = { ...template.metadata.annotations, [CREDENTIALS_ANNOTATION]: stamp };
    }
  }
  return out;
}
