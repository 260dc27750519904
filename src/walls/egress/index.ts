// The egress wall's public surface: what the policy loader, the box builder and the CLI import.

export {
  FirewallError,
  type ProxyAddress,
  parseProxyAddress,
  renderIptables,
  renderNftables,
} from "./network/firewall.js";
export { planTransparent, type TransparentForward, type TransparentPlan } from "./network/transparent.js";
export { type BackendOptions, startEgressBackend } from "./proxy/backend.js";
export { DEFAULT_LIMITS, startProxy } from "./proxy/proxy.js";
export { type SpliceResult, Splicer } from "./proxy/splice.js";
export type {
  AskRequest,
  EgressEvent,
  ListenSpec,
  ProxyHandle,
  ProxyLimits,
  ProxyOptions,
} from "./proxy/types.js";
export {
  type AddressClass,
  classifyAddress,
  internalRangesV4,
  internalRangesV6,
  isPublicAddress,
} from "./rules/addresses.js";
export { hostText, type NormalHost, normaliseHost } from "./rules/host.js";
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
} from "./rules/rules.js";
export { type EgressPolicy, type EgressPolicyInput, egressSchema } from "./schema.js";
export { renderSquidConfig, renderSquidHosts, SQUID_LOGFORMAT, SquidConfigError } from "./squid/config.js";
export { parseSquidLogLine } from "./squid/log.js";
export { type SquidHandle, type SquidOptions, startSquid } from "./squid/squid.js";
