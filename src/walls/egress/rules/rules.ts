import { createRequire } from "node:module";
import { isIPv4 } from "node:net";
import {
  type CompiledCredential,
  type CompiledInputRule,
  checkBoundHostsAllowed,
  compileCredentials,
  compileInputRules,
} from "../credentials/compile.js";
import type { EgressPolicy } from "../schema.js";
import { parseIP } from "./addresses.js";
import { formatIPv6, type HostPattern, type NormalHost, normaliseHost } from "./hostname.js";

// Pure: rule text -> compiled rules; matching lives in match.ts. The EgressPlan is plain JSON so the
// box builder, the squid renderer and a proxy in another process all read the same thing.

export type { HostPattern } from "./hostname.js";

export interface CompiledRule {
  /** The rule as written in the policy, for messages and the audit log. */
  source: string;
  host: HostPattern;
  /** Inclusive port ranges. A rule that names no port gets [[80,80],[443,443]] (allow) or every port (deny). */
  ports: Array<[number, number]>;
  /** Path prefix for plain HTTP; a rule with a path never matches a tunnel (CONNECT/SOCKS), which hides paths. */
  path?: string;
  /**
   * What a tunnel to this rule's ports must carry (tunnelCheck in match.ts). Absent: TLS with the
   * target's name as SNI, or plain HTTP whose every Host names the target; TLS only on port 443.
   * "tls" (written tls://host:port): TLS only. "tcp" (tcp://host:port): anything, unchecked: the
   * opt-out for other protocols (ssh, databases) on the rule's own ports.
   */
  protocol?: "tls" | "tcp";
}

export interface MethodLimit {
  source: string;
  /** undefined: every host ("*"). */
  host?: HostPattern;
  methods: string[];
}

export interface EgressPlan {
  version: 1;
  allow: CompiledRule[];
  deny: CompiledRule[];
  /** Pinned addresses per normalised name (like curl --resolve); they pass the internal-address guard. */
  pins: Record<string, string[]>;
  methods: MethodLimit[];
  unknown: "deny" | "ask";
  transparent: boolean;
  proxy: "builtin" | "squid";
  /** Secrets the proxy swaps in for their sentinels (credentials/); absent in plans made before them. */
  credentials?: CompiledCredential[];
  /** Extra CA files for upstream TLS the proxy itself speaks (bound hosts, the input gate). */
  trust?: string[];
  /** The input gate's rules for responses. */
  input?: CompiledInputRule[];
}

export type DenyReason =
  | "bad-target"
  | "deny-rule"
  | "not-allowed"
  | "port-not-allowed"
  | "path-not-allowed"
  | "method-not-allowed"
  | "tunnel-not-inspectable"
  | "tls-required";

export interface RuleRequest {
  kind: "http" | "connect" | "socks";
  host: NormalHost;
  port: number;
  method?: string;
  /** Normalised path (dot segments resolved), plain HTTP only. */
  path?: string;
}

/**
 * What the proxy checks inside an allowed tunnel before any byte of it reaches the origin:
 * "tls": a ClientHello whose SNI is the target's name; "inspect": that, or plain HTTP whose every
 * request names the target; "raw": nothing (a tcp:// rule).
 */
export type TunnelCheck = "tls" | "inspect" | "raw";

export type RuleVerdict =
  | { verdict: "allow"; rule: CompiledRule; tunnel?: TunnelCheck }
  | { verdict: "deny"; reason: DenyReason; rule?: string }
  | { verdict: "unknown" };

export class RuleError extends Error {
  constructor(
    readonly rule: string,
    why: string,
  ) {
    super(`egress rule "${rule}": ${why}`);
    this.name = "RuleError";
  }
}

const DEFAULT_PORTS: Array<[number, number]> = [
  [80, 80],
  [443, 443],
];
const ALL_PORTS: Array<[number, number]> = [[1, 65535]];

function parsePorts(rule: string, text: string): Array<[number, number]> {
  if (text === "*") return ALL_PORTS;
  return text.split(",").map((part) => {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    if (!m) throw new RuleError(rule, `"${part}" is not a port, a range like 8000-8100, or *`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || hi > 65535 || lo > hi)
      throw new RuleError(rule, `port ${part} is not within 1-65535 (a range goes low-high)`);
    return [lo, hi];
  });
}

/** Normalises a URL path so that /a/../b, %2e%2e and backslashes compare the way the origin will read them. */
export function normalisePath(path: string): string {
  // Concatenated, not resolved against a base: "//x" must stay a path, not become a host.
  return new URL(`http://h${path.startsWith("/") ? "" : "/"}${path}`).pathname;
}

function parsePath(rule: string, text: string): string {
  if (/[?#*\s]/.test(text)) throw new RuleError(rule, "a path prefix cannot hold ?, #, * or spaces");
  return normalisePath(text);
}

function parseCidr(rule: string, ip: string, bits: string | undefined): HostPattern {
  const norm = normaliseHost(ip);
  if ("error" in norm || norm.kind !== "ip") throw new RuleError(rule, `"${ip}" is not an IP address`);
  // Rules are written in canonical dotted form; shorthand such as 10.1 or 167772160 is too easy to misread.
  if (norm.family === 4 && !ip.includes(":") && !isIPv4(ip))
    throw new RuleError(rule, `write the address in full dotted form (${norm.ip})`);
  const max = norm.family === 4 ? 32 : 128;
  if (bits !== undefined && !/^\d{1,3}$/.test(bits))
    throw new RuleError(rule, `prefix /${bits} is not a number`);
  let prefix = bits === undefined ? (ip.includes(":") ? 128 : max) : Number(bits);
  if (prefix > (ip.includes(":") ? 128 : 32)) throw new RuleError(rule, `prefix /${bits} is too long`);
  // An IPv4-mapped IPv6 range (::ffff:a.b.c.d/104) is an IPv4 range.
  if (norm.family === 4 && ip.includes(":")) prefix = Math.max(0, prefix - 96);
  const bytes = parseIP(norm.ip)!;
  const masked = bytes.map((b, i) => b & ((0xff << (8 - Math.min(8, Math.max(0, prefix - i * 8)))) & 0xff));
  if (masked.some((b, i) => b !== bytes[i])) {
    const net = norm.family === 4 ? Array.from(masked).join(".") : `[${formatIPv6(masked)}]`;
    throw new RuleError(rule, `host bits are set; the network is ${net}/${prefix}`);
  }
  return { kind: "cidr", family: norm.family, network: norm.ip, prefix };
}

function parseNamePattern(rule: string, text: string, side: "allow" | "deny"): HostPattern {
  const wildcard = text.startsWith("*.");
  const body = wildcard ? text.slice(2) : text;
  if (body.includes("*"))
    throw new RuleError(
      rule,
      "a wildcard may only be a whole leading label (*.example.com)" +
        (text === "*" ? "; there is no catch-all rule" : ""),
    );
  const norm = normaliseHost(body);
  if ("error" in norm) throw new RuleError(rule, norm.error);
  if (norm.kind === "ip") {
    if (wildcard)
      throw new RuleError(rule, "a wildcard cannot apply to an IP address; use a CIDR such as 10.0.0.0/8");
    return parseCidr(rule, body, undefined);
  }
  if (wildcard && side === "allow") {
    // A wildcard on a public suffix (com, co.uk, github.io, ...) would let the box reach anything anybody
    // registers there. Private-section suffixes count too: their subdomains belong to unrelated owners.
    const parsed = publicSuffixList().parse(norm.name, { allowPrivateDomains: true });
    if (parsed.publicSuffix === norm.name || !parsed.domain)
      throw new RuleError(
        rule,
        `"${norm.name}" is a public suffix shared by unrelated owners; list the exact host names you need instead`,
      );
  }
  return { kind: "name", name: norm.name, wildcard };
}

/**
 * tldts carries the whole public suffix list (~20 ms to load): only wildcard rules need it, and
 * compiled plans are cached, so load it on first use rather than on every start.
 */
let tldts: typeof import("tldts") | undefined;
function publicSuffixList(): typeof import("tldts") {
  tldts ??= createRequire(import.meta.url)("tldts") as typeof import("tldts");
  return tldts;
}

/**
 * Parses one rule: host | *.host | IP | CIDR, then optional :port (80, 8000-8100, 80,443, *), then optional
 * /path prefix. IPv6 and CIDRs with a port go in brackets: [::1]:8080, [10.0.0.0/8]:8080.
 */
export function parseRule(text: string, side: "allow" | "deny" = "allow"): CompiledRule {
  const rule = text;
  if (text !== text.trim() || text === "") throw new RuleError(rule, "empty, or surrounded by spaces");
  // tls:// and tcp:// name what a tunnel carries; any other scheme is a URL pasted by mistake.
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
  let protocol: "tls" | "tcp" | undefined;
  if (scheme) {
    const name = scheme[1]!;
    if (name !== "tls" && name !== "tcp")
      throw new RuleError(
        rule,
        "write the host without a scheme (example.com, not https://example.com); only tls:// and tcp:// mark what a tunnel carries",
      );
    if (side === "deny")
      throw new RuleError(rule, "a deny rule covers every protocol: drop the tls:// or tcp://");
    protocol = name;
    text = text.slice(scheme[0].length);
  }
  let hostPart: string;
  let portPart: string | undefined;
  let rest = "";
  let cidrBits: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw new RuleError(rule, "unclosed [");
    const inner = text.slice(1, close);
    const slash = inner.indexOf("/");
    hostPart = slash >= 0 ? inner.slice(0, slash) : inner;
    cidrBits = slash >= 0 ? inner.slice(slash + 1) : undefined;
    const after = text.slice(close + 1);
    const m = /^(?::([^/]*))?(\/.*)?$/.exec(after);
    if (!m) throw new RuleError(rule, `unexpected "${after}" after ]`);
    portPart = m[1];
    rest = m[2] ?? "";
    if (!hostPart.includes(":") && !isIPv4(hostPart))
      throw new RuleError(rule, "only IP addresses go in brackets");
    if (hostPart.includes(":")) hostPart = `[${hostPart}]`;
  } else if ((text.match(/:/g)?.length ?? 0) > 1) {
    // Bare IPv6, possibly a CIDR; a port would be ambiguous without brackets.
    const slash = text.indexOf("/");
    hostPart = `[${slash >= 0 ? text.slice(0, slash) : text}]`;
    cidrBits = slash >= 0 ? text.slice(slash + 1) : undefined;
    if (cidrBits !== undefined && !/^\d+$/.test(cidrBits))
      throw new RuleError(rule, "write an IPv6 rule with a port or path in brackets: [::1]:8080");
  } else {
    const m = /^([^:/]+)(?::([^/]*))?(\/.*)?$/.exec(text);
    if (!m) throw new RuleError(rule, "expected host[:port][/path]");
    hostPart = m[1]!;
    portPart = m[2];
    rest = m[3] ?? "";
    if (isIPv4(hostPart) && /^\/\d+:/.test(rest))
      throw new RuleError(rule, "write a CIDR with a port in brackets: [10.0.0.0/8]:8080");
    if (isIPv4(hostPart) && /^\/\d+$/.test(rest)) {
      if (portPart !== undefined)
        throw new RuleError(rule, "write a CIDR with a port in brackets: [10.0.0.0/8]:8080");
      cidrBits = rest.slice(1);
      rest = "";
    }
  }
  if (portPart === "") throw new RuleError(rule, "empty port after :");
  let host: HostPattern;
  if (cidrBits !== undefined) host = parseCidr(rule, hostPart, cidrBits);
  else if (hostPart.startsWith("[")) host = parseCidr(rule, hostPart.slice(1, -1), undefined);
  else host = parseNamePattern(rule, hostPart, side);
  const ports =
    portPart !== undefined ? parsePorts(rule, portPart) : side === "allow" ? DEFAULT_PORTS : ALL_PORTS;
  const compiled: CompiledRule = { source: rule, host, ports };
  if (rest) {
    if (protocol)
      throw new RuleError(rule, "a path is for plain HTTP; a tls:// or tcp:// rule cannot hold one");
    compiled.path = parsePath(rule, rest);
  }
  if (protocol) {
    if (portPart === undefined)
      throw new RuleError(rule, `name the port(s) this protocol uses (${protocol}://host:PORT)`);
    compiled.protocol = protocol;
  }
  return compiled;
}

function parseMethodKey(key: string): HostPattern | undefined {
  if (key === "*") return undefined;
  return parseHostOnly(key, "a methods key");
}

/** A host pattern in the rules' syntax, without port or path (methods keys, credential and input hosts). */
function parseHostOnly(text: string, what: string): HostPattern {
  const rule = parseRule(text, "deny");
  if (rule.path !== undefined || rule.ports !== ALL_PORTS)
    throw new RuleError(text, `${what} is a host pattern without port or path`);
  return rule.host;
}

/** Compiles the egress slice of a policy; throws a RuleError naming the first bad rule. */
export function compileEgressPlan(policy: EgressPolicy): EgressPlan {
  const pins: Record<string, string[]> = {};
  for (const entry of policy.resolve) {
    const eq = entry.indexOf("=");
    const name = normaliseHost(entry.slice(0, eq));
    const addr = normaliseHost(entry.slice(eq + 1));
    if ("error" in name || name.kind !== "name")
      throw new RuleError(entry, "resolve pins a host name: HOST=ADDRESS");
    if ("error" in addr || addr.kind !== "ip")
      throw new RuleError(entry, "the pinned address is not an IP address");
    const list = pins[name.name] ?? [];
    if (!list.includes(addr.ip)) list.push(addr.ip);
    pins[name.name] = list;
  }
  const allow = policy.allow.map((r) => parseRule(r, "allow"));
  const deny = policy.deny.map((r) => parseRule(r, "deny"));
  const credentials = compileCredentials(policy.credentials ?? [], (h) =>
    parseHostOnly(h, "a credential's host"),
  );
  checkBoundHostsAllowed(credentials, allow, deny);
  return {
    version: 1,
    allow,
    deny,
    pins,
    methods: Object.entries(policy.methods).map(([key, methods]) => {
      const host = parseMethodKey(key);
      const limit: MethodLimit = { source: key, methods: [...new Set(methods)] };
      if (host) limit.host = host;
      return limit;
    }),
    unknown: policy.unknown,
    transparent: policy.transparent,
    proxy: policy.proxy,
    // only when used: a plan without them stays as it was (k8s ConfigMaps, cached plans)
    ...(credentials.length > 0 ? { credentials } : {}),
    ...(policy.trust && policy.trust.length > 0 ? { trust: policy.trust } : {}),
    ...(policy.input && policy.input.length > 0
      ? { input: compileInputRules(policy.input, (h) => parseHostOnly(h, "an input gate host")) }
      : {}),
  };
}
