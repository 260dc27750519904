import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createSecureContext, rootCertificates } from "node:tls";
import type { ProxyCredentialOptions } from "../proxy/credentials.js";
import type { EgressPlan } from "../rules/rules.js";
import { type CredentialBoxPlan, HeldSecrets } from "./plan.js";
import type { LiveCredential } from "./swap.js";

// Effectful set-up for a box's credentials, at start: the run's CA (memory only), its certificate
// and a bundle (system + CA) in the run's net dir (bound read-only into the box at /run/fourwall),
// the upstream trust, and the live sentinel → secret table the proxy swaps with.

/** Where Debian (and most distributions) keep the system trust store as one PEM file. */
const SYSTEM_BUNDLES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];

export function systemBundle(): string {
  for (const file of SYSTEM_BUNDLES) if (existsSync(file)) return readFileSync(file, "utf8");
  return `${rootCertificates.join("\n")}\n`;
}

export class CredentialSetupError extends Error {}

export async function prepareCredentials(
  egress: EgressPlan,
  credentials: CredentialBoxPlan,
  runId: string,
  netDir: string,
  onEvent: ProxyCredentialOptions["onEvent"],
): Promise<ProxyCredentialOptions | undefined> {
  if (!credentials.terminates) return undefined;
  if (!(credentials.secrets instanceof HeldSecrets))
    throw new CredentialSetupError(
      "this box's plan came through a hand-off that drops secrets (a persistent box): credentials are supported by `fourwall run` only, for now",
    );
  const live: LiveCredential[] = [];
  for (const binding of credentials.bindings) {
    const entry = (egress.credentials ?? []).find((e) => e.name === binding.name);
    const secret = credentials.secrets.get(binding.name);
    if (!entry || !secret)
      throw new CredentialSetupError(`credential ${binding.name}: its secret is not held`);
    live.push({
      entry,
      sentinel: binding.sentinel,
      secret,
      ...(credentials.rawScrubOnly ? { rawScrubOnly: true } : {}),
    });
  }
  const system = systemBundle();
  const upstreamTrust = upstreamTrustFor(egress, system);
  const { createRunCa } = await import("./ca.js");
  const ca = await createRunCa(runId);
  // Only certificates leave this process: the box trusts the CA; it never sees a key.
  writeFileSync(path.join(netDir, "ca.pem"), ca.certPem, { mode: 0o444 });
  writeFileSync(path.join(netDir, "ca-bundle.pem"), `${system.trimEnd()}\n${ca.certPem}`, { mode: 0o444 });
  return { live, input: egress.input ?? [], ca, upstreamTrust, ...(onEvent ? { onEvent } : {}) };
}

/** Upstream trust for the proxy's own TLS: the system store plus the policy's egress.trust files. */
function upstreamTrustFor(egress: EgressPlan, system: string): ReturnType<typeof createSecureContext> {
  const extra: string[] = [];
  for (const file of egress.trust ?? []) {
    try {
      extra.push(readFileSync(file, "utf8"));
    } catch (error) {
      throw new CredentialSetupError(`egress.trust: cannot read ${file}: ${(error as Error).message}`);
    }
  }
  try {
    return createSecureContext({ ca: [system, ...extra] });
  } catch (error) {
    throw new CredentialSetupError(`egress.trust: not a PEM certificate list: ${(error as Error).message}`);
  }
}

/**
 * What a cluster's proxy reads from its Secret (`fourwall egress serve --credentials FILE`), written
 * by `fourwall k8s apply`: the CA every replica signs with, and each entry's sentinel and secret.
 */
export interface ClusterCredentialFile {
  version: 1;
  ca: { cert: string; key: string };
  credentials: { name: string; sentinel: string; secret: string }[];
}

/** The proxy's credential options from that file; entries the file lacks are optional ones left unset. */
export async function loadClusterCredentials(
  egress: EgressPlan,
  file: string,
  onEvent: ProxyCredentialOptions["onEvent"],
): Promise<ProxyCredentialOptions> {
  let data: ClusterCredentialFile;
  try {
    data = JSON.parse(readFileSync(file, "utf8")) as ClusterCredentialFile;
  } catch (error) {
    throw new CredentialSetupError(`--credentials: cannot read ${file}: ${(error as Error).message}`);
  }
  if (data?.version !== 1 || !data.ca?.cert || !data.ca?.key || !Array.isArray(data.credentials))
    throw new CredentialSetupError(
      `--credentials: ${file} is not a credential file written by fourwall k8s apply (placeholders from k8s render?)`,
    );
  const live: LiveCredential[] = [];
  for (const entry of egress.credentials ?? []) {
    const held = data.credentials.find((c) => c.name === entry.name);
    if (!held) {
      if (entry.optional) continue;
      throw new CredentialSetupError(`credential ${entry.name}: not in ${file}`);
    }
    if (held.secret.length < 8 || held.sentinel.length < 8 || held.secret === held.sentinel)
      throw new CredentialSetupError(`credential ${entry.name}: its secret or sentinel in ${file} is unfit`);
    live.push({ entry, sentinel: held.sentinel, secret: held.secret });
  }
  const { importCa } = await import("./ca.js");
  const ca = await importCa(data.ca.cert, data.ca.key);
  const upstreamTrust = upstreamTrustFor(egress, systemBundle());
  return { live, input: [], ca, upstreamTrust, ...(onEvent ? { onEvent } : {}) };
}
