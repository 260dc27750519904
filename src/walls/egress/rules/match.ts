import { classifyAddress, inPrefix, parseIP } from "./addresses.js";
import { type NormalHost, normaliseHost } from "./hostname.js";
import type {
  CompiledRule,
  EgressPlan,
  HostPattern,
  MethodLimit,
  RuleRequest,
  RuleVerdict,
  TunnelCheck,
} from "./rules.js";

// Matching a request against a compiled EgressPlan. The plan stays plain JSON; the lookup tables built
// from it (exact names, wildcard suffixes, CIDRs) are cached per plan object on first use, so each
// decision is a few map lookups rather than a scan of every rule.

interface Table<T> {
  exact: Map<string, T[]>;
  wild: Map<string, T[]>;
  cidr: Array<{ bytes: Uint8Array; prefix: number; item: T }>;
  any: T[];
}

function buildTable<T>(items: Array<{ host?: HostPattern; item: T }>): Table<T> {
  const table: Table<T> = { exact: new Map(), wild: new Map(), cidr: [], any: [] };
  for (const { host, item } of items) {
    if (!host) table.any.push(item);
    else if (host.kind === "cidr")
      table.cidr.push({ bytes: parseIP(host.network)!, prefix: host.prefix, item });
    else {
      const map = host.wildcard ? table.wild : table.exact;
      const list = map.get(host.name) ?? [];
      list.push(item);
      map.set(host.name, list);
    }
  }
  return table;
}

function lookupTable<T>(table: Table<T>, host: NormalHost): T[] {
  const out: T[] = [...table.any];
  if (host.kind === "ip") {
    const bytes = parseIP(host.ip);
    if (bytes) for (const c of table.cidr) if (inPrefix(bytes, c.bytes, c.prefix)) out.push(c.item);
    return out;
  }
  const exact = table.exact.get(host.name);
  if (exact) out.push(...exact);
  // Walk the parent names: a.b.example.com checks b.example.com, example.com, com.
  for (let dot = host.name.indexOf("."); dot >= 0; dot = host.name.indexOf(".", dot + 1)) {
    const hit = table.wild.get(host.name.slice(dot + 1));
    if (hit) out.push(...hit);
  }
  return out;
}

interface Matcher {
  allow: Table<CompiledRule>;
  deny: Table<CompiledRule>;
  methods: Table<MethodLimit>;
}

const matchers = new WeakMap<EgressPlan, Matcher>();

function matcherFor(plan: EgressPlan): Matcher {
  let m = matchers.get(plan);
  if (!m) {
    m = {
      allow: buildTable(plan.allow.map((r) => ({ host: r.host, item: r }))),
      deny: buildTable(plan.deny.map((r) => ({ host: r.host, item: r }))),
      methods: buildTable(plan.methods.map((l) => ({ host: l.host, item: l }))),
    };
    matchers.set(plan, m);
  }
  return m;
}

const portIn = (port: number, ports: Array<[number, number]>) =>
  ports.some(([lo, hi]) => port >= lo && port <= hi);

/** A prefix matches at a segment boundary: /v2 matches /v2 and /v2/x but not /v20; /v2/ matches /v2/x only. */
export function pathMatches(prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return prefix.endsWith("/") || path.length === prefix.length || path[prefix.length] === "/";
}

/** Method limits are restrictions: every limit whose host matches must name the method (CONNECT for tunnels). */
export function checkMethods(plan: EgressPlan, req: RuleRequest): RuleVerdict | undefined {
  const limits = lookupTable(matcherFor(plan).methods, req.host);
  const method = req.kind === "http" ? (req.method ?? "GET") : "CONNECT";
  for (const limit of limits) {
    if (!limit.methods.includes(method))
      return {
        verdict: "deny",
        reason: req.kind === "http" ? "method-not-allowed" : "tunnel-not-inspectable",
        rule: limit.source,
      };
  }
  return undefined;
}

/** The port TLS clients use; a tunnel there must be TLS whatever the rule says, unless a tcp:// rule opts out. */
export const TLS_PORT = 443;

/**
 * What an allowed tunnel to `port` must carry, from the allow rules that took it (`rules`: those on
 * this port, without a path). An explicit tcp:// opt-out wins (allow rules add up); otherwise port 443
 * or a tls:// mark on the port makes it TLS only; otherwise TLS or plain HTTP, each checked. A tunnel
 * no rule took (asked, or the test switch allowAll) gets the port's default.
 */
export function tunnelCheck(port: number, rules: CompiledRule[] = []): TunnelCheck {
  if (rules.some((r) => r.protocol === "tcp")) return "raw";
  if (port === TLS_PORT || rules.some((r) => r.protocol === "tls")) return "tls";
  return "inspect";
}

/** Applies deny, then allow (port, path), then method limits. "unknown" means no allow rule names the host. */
export function decide(plan: EgressPlan, req: RuleRequest): RuleVerdict {
  if (!Number.isInteger(req.port) || req.port < 1 || req.port > 65535)
    return { verdict: "deny", reason: "bad-target" };
  const m = matcherFor(plan);
  const tunnel = req.kind !== "http";
  for (const rule of lookupTable(m.deny, req.host)) {
    if (!portIn(req.port, rule.ports)) continue;
    if (rule.path === undefined) return { verdict: "deny", reason: "deny-rule", rule: rule.source };
    // A tunnel hides the path, so a path-scoped deny cannot be honoured inside it: refuse the tunnel.
    if (tunnel) return { verdict: "deny", reason: "tunnel-not-inspectable", rule: rule.source };
    if (req.path !== undefined && pathMatches(rule.path, req.path))
      return { verdict: "deny", reason: "deny-rule", rule: rule.source };
  }
  const allows = lookupTable(m.allow, req.host);
  if (allows.length === 0) return { verdict: "unknown" };
  const onPort = allows.filter((r) => portIn(req.port, r.ports));
  if (onPort.length === 0) return { verdict: "deny", reason: "port-not-allowed" };
  const hit = tunnel
    ? onPort.find((r) => r.path === undefined)
    : onPort.find((r) => r.path === undefined || (req.path !== undefined && pathMatches(r.path, req.path)));
  if (!hit) return { verdict: "deny", reason: tunnel ? "tunnel-not-inspectable" : "path-not-allowed" };
  const limited = checkMethods(plan, req);
  if (limited) return limited;
  if (!tunnel) {
    // Plain HTTP to a port a rule marks tls:// (and no tcp:// rule opens): the origin there speaks TLS.
    if (tunnelCheck(req.port, onPort) === "tls" && req.port !== TLS_PORT)
      return {
        verdict: "deny",
        reason: "tls-required",
        rule: onPort.find((r) => r.protocol === "tls")?.source,
      };
    return { verdict: "allow", rule: hit };
  }
  return {
    verdict: "allow",
    rule: hit,
    tunnel: tunnelCheck(
      req.port,
      onPort.filter((r) => r.path === undefined),
    ),
  };
}

export type AddressVerdict =
  | { ok: true; via: "pin" | "cidr" | "public" }
  | { ok: false; reason: string; rule?: string };

/**
 * The resolved-address guard for one address the proxy is about to connect to. Deny CIDRs always win;
 * then a pinned address or one inside an allow CIDR on this port passes; otherwise only public unicast.
 */
export function vetAddress(plan: EgressPlan, address: string, port: number, pinned: boolean): AddressVerdict {
  const norm = normaliseHost(address);
  if ("error" in norm || norm.kind !== "ip") return { ok: false, reason: "address-invalid" };
  const m = matcherFor(plan);
  for (const rule of lookupTable(m.deny, norm)) {
    if (portIn(port, rule.ports) && rule.path === undefined)
      return { ok: false, reason: "deny-rule", rule: rule.source };
  }
  if (pinned) return { ok: true, via: "pin" };
  if (lookupTable(m.allow, norm).some((r) => portIn(port, r.ports))) return { ok: true, via: "cidr" };
  const cls = classifyAddress(norm.ip);
  return cls === "public" ? { ok: true, via: "public" } : { ok: false, reason: `address-${cls}` };
}

/** Pinned addresses for a normalised name, if any. */
export function pinsFor(plan: EgressPlan, host: NormalHost): string[] | undefined {
  return host.kind === "name" ? plan.pins[host.name] : undefined;
}
