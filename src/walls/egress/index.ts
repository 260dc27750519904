// The egress wall's public surface: what the policy loader, the box builder and the CLI import.
export {
  type AddressClass,
  classifyAddress,
  internalRangesV4,
  internalRangesV6,
  isPublicAddress,
} from "./addresses.js";
export { type BackendOptions, startEgressBackend } from "./backend.js";
export {
  FirewallError,
  type ProxyAddress,
  parseProxyAddress,
  renderIptables,
  renderNftables,
} from "./firewall.js";
export { hostText, type NormalHost, normaliseHost } from "./host.js";
export { DEFAULT_LIMITS, startProxy } from "./proxy.js";
export {
  type AddressVerdict,
  type CompiledRule,
  compileEgressPlan,
  type DenyReason,
  decide,
  type EgressPlan,
  type HostPattern,
  type MethodLimit,
  parseRule,
  RuleError,
  type RuleRequest,
  type RuleVerdict,
  vetAddress,
} from "./rules.js";
export { type EgressPolicy, type EgressPolicyInput, egressSchema } from "./schema.js";
export { type SpliceResult, Splicer } from "./splice.js";
export { type SquidHandle, type SquidOptions, startSquid } from "./squid.js";
export { renderSquidConfig, renderSquidHosts, SQUID_LOGFORMAT, SquidConfigError } from "./squid-config.js";
export { parseSquidLogLine } from "./squid-log.js";
export { planTransparent, type TransparentForward, type TransparentPlan } from "./transparent.js";
export type { AskRequest, EgressEvent, ListenSpec, ProxyHandle, ProxyLimits, ProxyOptions } from "./types.js";
