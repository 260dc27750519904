import { hostText, type NormalHost, normaliseHost } from "../rules/hostname.js";

// One comparison for "does this Host header (or absolute-form authority) name the target?", used by
// plain HTTP in absolute form (http.ts) and by plain HTTP inside tunnels (tunnel-http.ts), so both
// read a name the same way the proxy's rules do (normalised: case, trailing dot, IP spellings).

const AUTHORITY = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s/?#@]+)(?::(\d{1,5}))?$/;

/** True when `value` (host[:port], no userinfo) names `target` on `port`; no port means 80. */
export function authorityMatches(value: string, target: NormalHost, port: number): boolean {
  const m = AUTHORITY.exec(value.trim());
  if (!m) return false;
  const named = normaliseHost(m[1]!);
  if ("error" in named) return false;
  return hostText(named) === hostText(target) && (m[2] === undefined ? 80 : Number(m[2])) === port;
}
