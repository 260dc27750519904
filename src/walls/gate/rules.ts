import type { Decision, ExecRule, FsOp, FsRule, NetRule } from "./schema.js";

const RANK: Record<Decision, number> = { allow: 0, ask: 1, deny: 2 };

/** deny > ask > allow: the one place the ordering lives. */
export function strictest(decisions: Iterable<Decision>, fallback: Decision): Decision {
  let out: Decision | undefined;
  for (const d of decisions) if (out === undefined || RANK[d] > RANK[out]) out = d;
  return out ?? fallback;
}

const escapeRe = (s: string) => s.replace(/[.+^${}()|[\]\\]/g, "\\$&");

/** One word of an exec rule: * and ? are wildcards inside the word. */
function wordRegex(pattern: string): RegExp {
  return new RegExp(`^${escapeRe(pattern).replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "s");
}

/**
 * A path glob relative to the workdir: `*` and `?` stay within one name, `**` spans
 * directories (`dist/**` matches everything under dist, `**\/*.log` every log file).
 */
export function pathGlobRegex(pattern: string): RegExp {
  const clean = pattern.replace(/^\.\/+/, "").replace(/\/+$/, "");
  let out = "";
  for (let i = 0; i < clean.length; i++) {
    const c = clean[i]!;
    if (c === "*" && clean[i + 1] === "*") {
      const slash = clean[i + 2] === "/";
      out += slash ? "(?:.*/)?" : ".*";
      i += slash ? 2 : 1;
    } else if (c === "*") out += "[^/]*";
    else if (c === "?") out += "[^/]";
    else out += escapeRe(c);
  }
  return new RegExp(`^${out}$`);
}

/** Exec rules whose words are a prefix of `words` (the program as typed or its base name). */
export function matchExecRules(rules: readonly ExecRule[], words: readonly string[]): ExecRule[] {
  return rules.filter((rule) => {
    const pattern = rule.command.trim().split(/\s+/);
    if (pattern.length > words.length) return false;
    return pattern.every((p, i) => wordRegex(p).test(words[i]!));
  });
}

/** Decision for a change of a pre-existing file at `rel` (relative to the workdir). */
export function decideFs(
  rules: readonly FsRule[],
  fallback: Decision,
  rel: string,
  op: FsOp,
): { decision: Decision; rule?: FsRule } {
  const hits = rules.filter((r) => r.ops.includes(op) && pathGlobRegex(r.path).test(rel));
  if (hits.length === 0) return { decision: fallback };
  const decision = strictest(
    hits.map((r) => r.decision),
    fallback,
  );
  return { decision, rule: hits.find((r) => r.decision === decision)! };
}

function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, "");
  const h = host.toLowerCase().replace(/\.$/, "");
  if (p === "*") return true;
  if (p.startsWith("*.")) return h.endsWith(p.slice(1)) && h.length > p.length - 1;
  return p === h;
}

/** Decision for a host the proxy asks about; unmatched hosts ask (egress.unknown said ask). */
export function decideNet(rules: readonly NetRule[], host: string, method: string | undefined): Decision {
  const hits = rules.filter(
    (r) => hostMatches(r.host, host) && (!r.methods || (method !== undefined && r.methods.includes(method))),
  );
  return strictest(
    hits.map((r) => r.decision),
    "ask",
  );
}
