// The egress wall's public entry: rules (pure), the box's network, the proxy's event types, squid's
// config. The proxy server and the squid process are wings loaded on demand (import() of proxy/backend.ts).

export * from "./credentials/compile.js";
export * from "./credentials/plan.js";
export {
  type ClusterCredentialFile,
  CredentialSetupError,
  loadClusterCredentials,
  systemBundle,
} from "./credentials/runtime.js";
export * from "./credentials/schema.js";
export * from "./credentials/sentinel.js";
export * from "./network/firewall.js";
export * from "./network/netns.js";
export * from "./network/network.js";
export type { CredentialEvent, ProxyCredentialOptions } from "./proxy/credentials.js";
export * from "./proxy/types.js";
export * from "./rules/addresses.js";
export * from "./rules/explain.js";
export * from "./rules/hostname.js";
export * from "./rules/match.js";
export * from "./rules/rules.js";
export * from "./schema.js";
export * from "./squid/config.js";
