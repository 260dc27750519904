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

function systemBundle(): string {
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
    live.push({ entry, sentinel: binding.sentinel, secret });
  }
  const system = systemBundle();
  const extra: string[] = [];
  for (const file of egress.trust ?? []) {
    try {
      extra.push(readFileSync(file, "utf8"));
    } catch (error) {
      throw new CredentialSetupError(`egress.trust: cannot read ${file}: ${(error as Error).message}`);
    }
  }
  let upstreamTrust: ReturnType<typeof createSecureContext>;
  try {
    upstreamTrust = createSecureContext({ ca: [system, ...extra] });
  } catch (error) {
    throw new CredentialSetupError(`egress.trust: not a PEM certificate list: ${(error as Error).message}`);
  }
  const { createRunCa } = await import("./ca.js");
  const ca = await createRunCa(runId);
  // Only certificates leave this process: the box trusts the CA; it never sees a key.
  writeFileSync(path.join(netDir, "ca.pem"), ca.certPem, { mode: 0o444 });
  writeFileSync(path.join(netDir, "ca-bundle.pem"), `${system.trimEnd()}\n${ca.certPem}`, { mode: 0o444 });
  return { live, input: egress.input ?? [], ca, upstreamTrust, ...(onEvent ? { onEvent } : {}) };
}
