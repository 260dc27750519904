// The egress wall's public surface: what the policy loader, the box builder and the CLI import.
export { type AddressClass, classifyAddress, isPublicAddress } from "./addresses.js";
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
export type { AskRequest, EgressEvent, ListenSpec, ProxyHandle, ProxyLimits, ProxyOptions } from "./types.js";
