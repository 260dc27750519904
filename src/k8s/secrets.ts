/**
 * The effectful half of credentials on a cluster, for `fourwall k8s apply` only: the secrets read
 * where fourwall runs (the policy's fromEnv / fromFile, as `fourwall run` reads them), new sentinels,
 * a new CA whose key goes into the proxies' Secret and nowhere else, and the system trust store the
 * agents' bundle starts from. Rendering (src/k8s/credentials.ts) stays pure.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import { type EgressPlan, planCredentials, systemBundle } from "../walls/egress/index.js";
import type { CredentialMaterials } from "./credentials.js";

export async function gatherCredentials(
  egress: EgressPlan,
  name: string,
  env: Record<string, string | undefined> = process.env,
): Promise<{ materials?: CredentialMaterials; notes: string[] }> {
  if ((egress.credentials ?? []).length === 0) return { notes: [] };
  const plan = planCredentials(egress, {
    hostEnv: env,
    home: os.homedir(),
    readFile: (file) => {
      try {
        return readFileSync(file, "utf8").slice(0, 64 * 1024);
      } catch {
        return undefined;
      }
    },
    writable: [],
  });
  // the CA module loads x509 code: only when there is something to sign
  const { createClusterCa } = await import("../walls/egress/credentials/ca.js");
  return {
    materials: {
      ca: await createClusterCa(name),
      systemBundle: systemBundle(),
      bindings: plan.bindings,
      secrets: plan.secrets,
    },
    notes: plan.notes,
  };
}
