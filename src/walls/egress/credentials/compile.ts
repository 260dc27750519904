import path from "node:path";
import { inPrefix, parseIP } from "../rules/addresses.js";
import type { HostPattern, NormalHost } from "../rules/hostname.js";
import type { CredentialPolicy, InputRulePolicy } from "./schema.js";

// Pure: the credentials and input-gate slices → compiled entries in the EgressPlan (plain JSON, cached
// with the policy). Host patterns use the egress rules' syntax (parsed by the caller's parseHost).

export interface CompiledCredential {
  name: string;
  source: { env: string } | { file: string };
  /** As written, for messages. */
  hostSources: string[];
  hosts: HostPattern[];
  methods?: string[];
  paths?: string[];
  outOfScope: "refuse" | "pass";
  body: boolean;
  /** Where the box sees the sentinel. */
  env?: string;
  file?: string;
  git: boolean;
  optional: boolean;
}

export interface CompiledInputRule {
  hostSources: string[];
  /** undefined: every host ("*"). */
  hosts?: HostPattern[];
  maxBytes?: number;
  contentTypes?: string[];
  hook?: string[];
  hookMaxBytes: number;
}

export class CredentialError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export function compileCredentials(
  entries: CredentialPolicy[],
  parseHost: (text: string) => HostPattern,
): CompiledCredential[] {
  const names = new Set<string>();
  return entries.map((entry, i) => {
    const name =
      entry.name ??
      entry.fromEnv ??
      path.basename(entry.fromFile ?? `credential-${i}`).replace(/[^\w.-]/g, "_");
    if (names.has(name))
      throw new CredentialError(`credentials.${i}.name`, `two entries are named ${name}: name them apart`);
    names.add(name);
    const hosts = entry.hosts.map((h, j) => {
      try {
        return parseHost(h);
      } catch (error) {
        throw new CredentialError(`credentials.${i}.hosts.${j}`, (error as Error).message);
      }
    });
    const out: CompiledCredential = {
      name,
      source: entry.fromEnv !== undefined ? { env: entry.fromEnv } : { file: entry.fromFile! },
      hostSources: entry.hosts,
      hosts,
      outOfScope: entry.outOfScope,
      body: entry.body,
      git: entry.git,
      optional: entry.optional,
    };
    if (entry.methods) out.methods = [...new Set(entry.methods)];
    if (entry.paths) out.paths = entry.paths;
    const boxEnv = entry.env ?? entry.fromEnv;
    if (boxEnv !== undefined) out.env = boxEnv;
    if (entry.file !== undefined) out.file = path.posix.normalize(entry.file);
    return out;
  });
}

export function compileInputRules(
  rules: InputRulePolicy[],
  parseHost: (text: string) => HostPattern,
): CompiledInputRule[] {
  return rules.map((rule, i) => {
    const out: CompiledInputRule = { hostSources: rule.hosts, hookMaxBytes: rule.hookMaxBytes };
    if (!rule.hosts.includes("*"))
      out.hosts = rule.hosts.map((h, j) => {
        try {
          return parseHost(h);
        } catch (error) {
          throw new CredentialError(`input.${i}.hosts.${j}`, (error as Error).message);
        }
      });
    if (rule.maxBytes !== undefined) out.maxBytes = rule.maxBytes;
    if (rule.contentTypes) out.contentTypes = rule.contentTypes;
    if (rule.hook) out.hook = rule.hook;
    return out;
  });
}

/** Whether a host pattern (exact name, *.suffix for subdomains, CIDR) covers a normalised host. */
export function patternCovers(pattern: HostPattern, host: NormalHost): boolean {
  if (pattern.kind === "cidr") {
    if (host.kind !== "ip") return false;
    const ip = parseIP(host.ip);
    const net = parseIP(pattern.network);
    return (
      ip !== undefined && net !== undefined && ip.length === net.length && inPrefix(ip, net, pattern.prefix)
    );
  }
  if (host.kind !== "name") return false;
  return pattern.wildcard ? host.name.endsWith(`.${pattern.name}`) : host.name === pattern.name;
}

/** Whether a credential may be sent to this host. */
export function boundTo(entry: CompiledCredential, host: NormalHost): boolean {
  return entry.hosts.some((p) => patternCovers(p, host));
}

/** A method and path inside an entry's scope (no lists: everything). */
export function inScope(entry: CompiledCredential, method: string, pathname: string): boolean {
  if (entry.methods && !entry.methods.includes(method)) return false;
  if (entry.paths && !entry.paths.some((p) => prefixMatches(p, pathname))) return false;
  return true;
}

/** As egress path rules: /v1 matches /v1 and /v1/x, not /v10; /v1/ matches /v1/x only. */
export function prefixMatches(prefix: string, pathname: string): boolean {
  if (!pathname.startsWith(prefix)) return false;
  return prefix.endsWith("/") || pathname.length === prefix.length || pathname[prefix.length] === "/";
}

/** Whether pattern `outer` covers every host `inner` covers (names only; equal CIDRs). */
function covers(outer: HostPattern, inner: HostPattern): boolean {
  if (outer.kind === "cidr" || inner.kind === "cidr")
    return (
      outer.kind === "cidr" &&
      inner.kind === "cidr" &&
      outer.network === inner.network &&
      outer.prefix <= inner.prefix
    );
  if (!outer.wildcard) return !inner.wildcard && outer.name === inner.name;
  return inner.name.endsWith(`.${outer.name}`);
}

/**
 * A bound host must be one egress allows (and no deny rule refuses outright): a credential never
 * opens a way out by itself. Throws a CredentialError naming the entry's host and the fix.
 */
export function checkBoundHostsAllowed(
  credentials: CompiledCredential[],
  allow: Array<{ host: HostPattern }>,
  deny: Array<{ host: HostPattern; path?: string; source: string }>,
): void {
  credentials.forEach((entry, i) => {
    entry.hosts.forEach((host, j) => {
      const field = `credentials.${i}.hosts.${j}`;
      const text = entry.hostSources[j]!;
      const denied = deny.find((d) => d.path === undefined && covers(d.host, host));
      if (denied)
        throw new CredentialError(
          field,
          `${text} is refused by egress.deny "${denied.source}": a secret cannot go there`,
        );
      if (!allow.some((a) => covers(a.host, host)))
        throw new CredentialError(
          field,
          `${text} is not allowed by egress.allow: a credential does not open a host by itself; add it (egress.allow: [${text}], or --allow ${text})`,
        );
    });
  });
}
