/**
 * What a refusal says: the host, the port, the address where one was resolved, and the flag or
 * policy line that would allow it. Used by the proxy's 403/502 bodies and by the box's exit summary,
 * so both name the same fix. Pure.
 */

export interface Refusal {
  host: string;
  port: number;
  /** The deny reason code (X-Fourwall-Denied). */
  reason: string;
  rule?: string | undefined;
  address?: string | undefined;
  method?: string | undefined;
}

/** Name resolution failed upstream: the request was allowed, the host is just not there. */
export const isUnreachable = (reason: string): boolean =>
  reason === "resolve-failed" || reason === "resolve-timeout";

const bracket = (host: string) => (host.includes(":") && !host.startsWith("[") ? `[${host}]` : host);
const hostPort = (host: string, port: number) => `${bracket(host)}:${port}`;

/** host[:port] as an allow rule names it (ports 80 and 443 are a rule's default; IPv6 in brackets). */
export function ruleFor(host: string, port: number): string {
  const cidr = host.includes("/");
  if (port === 80 || port === 443 || port === 0) return cidr ? host : bracket(host);
  return cidr ? `[${host}]:${port}` : hostPort(host, port);
}

/** The address as a one-address CIDR rule (the address guard lets an allowed CIDR through). */
const cidrFor = (address: string): string => (address.includes(":") ? `${address}/128` : `${address}/32`);

const flag = (rule: string, withPolicy: boolean) =>
  withPolicy ? `-a ${rule} (policy: egress.allow: ["${rule}"])` : `-a ${rule}`;

/** What was refused and why, in one sentence. */
export function why(r: Refusal): string {
  const target = hostPort(r.host, r.port);
  const viaRule = r.rule ? ` (rule ${r.rule})` : "";
  if (r.reason.startsWith("address-")) {
    const kind = r.reason.slice("address-".length);
    return r.address && r.address !== r.host
      ? `${r.host} resolved to ${r.address}, a ${kind} address, which the address guard refuses`
      : `${target} is a ${kind} address, which the address guard refuses`;
  }
  switch (r.reason) {
    case "not-allowed":
      return `no egress rule allows ${target}`;
    case "port-not-allowed":
      return `${r.host} is allowed, but not on port ${r.port}`;
    case "path-not-allowed":
      return `${target} is allowed for some paths only, not this one${viaRule}`;
    case "method-not-allowed":
      return `${r.method ?? "this method"} to ${target} is not among the allowed methods${viaRule}`;
    case "tunnel-not-inspectable":
      return `the tunnel to ${target} carried neither TLS naming ${r.host} nor plain HTTP${viaRule}`;
    case "tls-required":
      return `${target} is allowed for TLS only${viaRule}`;
    case "deny-rule":
      return `the policy denies ${target}${viaRule}`;
    case "resolve-failed":
      return `${r.host} could not be resolved (DNS): unreachable, not blocked`;
    case "resolve-timeout":
      return `resolving ${r.host} timed out (DNS): unreachable, not blocked`;
    case "ask-denied":
      return `${target} was asked about and refused`;
    case "proxy-auth":
      return `a request for ${target} reached squid's host port without the box's proxy credential: another local process, not the box`;
    default:
      return `${target} refused (${r.reason})`;
  }
}

/** The flag or policy line that would allow it; undefined when no policy change is the answer. */
export function fix(r: Refusal, withPolicy = true): string | undefined {
  if (r.reason.startsWith("address-")) {
    if (r.address && r.address !== r.host)
      return `if ${r.host} is meant to be at ${r.address}: --resolve ${r.host}=${r.address} (policy: egress.resolve), or allow the range: ${flag(ruleFor(cidrFor(r.address), r.port), withPolicy)}`;
    return `if you mean it: ${flag(ruleFor(r.host, r.port), withPolicy)}`;
  }
  switch (r.reason) {
    case "not-allowed":
    case "ask-denied":
    case "ask-timeout":
      return flag(ruleFor(r.host, r.port), withPolicy);
    case "port-not-allowed":
      return flag(`${ruleFor(r.host, 0)}:${r.port}`, withPolicy);
    case "path-not-allowed":
      return `allow the path prefix, or the whole host: ${flag(ruleFor(r.host, r.port), withPolicy)}`;
    case "tunnel-not-inspectable":
      return `for another protocol on that port: ${flag(`tcp://${ruleFor(r.host, 0)}:${r.port}`, withPolicy)}`;
    case "deny-rule":
      return r.rule ? `remove or narrow the deny rule ${r.rule}` : undefined;
    case "resolve-failed":
    case "resolve-timeout":
      return `check the name; if it has an address the proxy cannot look up: --resolve ${r.host}=ADDRESS`;
    default:
      return undefined;
  }
}

/** The fix as the exit summary shows it: just the flag. */
export function shortFix(r: Refusal): string | undefined {
  return fix(r, false)?.replace(/ \(policy: [^)]*\)/g, "");
}

/** One row of the exit summary: target, reason, and the flag that would allow it. */
export function summaryRow(r: Refusal): string {
  const f = shortFix(r);
  return `${hostPort(r.host, r.port)} (${r.reason})${f ? `: ${f}` : ""}`;
}

/** The body of a refusal as the client sees it. */
export function refusalText(kind: string, r: Refusal): string {
  const f = fix(r);
  const outcome = isUnreachable(r.reason) ? "failed" : "denied";
  return `fourwall egress: ${kind} to ${hostPort(r.host, r.port)} ${outcome} (${r.reason}): ${why(r)}${f ? `\n  fix: ${f}` : ""}\n`;
}
