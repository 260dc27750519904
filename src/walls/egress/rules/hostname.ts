import { isIPv4, isIPv6 } from "node:net";
import { domainToASCII } from "node:url";
import { parseIPv6 } from "./addresses.js";

// One normal form for every host the proxy sees, in rules and in requests alike, so that no spelling of a
// name (case, trailing dot, Unicode, 0x7f.1, [::ffff:127.0.0.1], a zone id) can slip past a rule written
// in another spelling.

export type NormalHost = { kind: "name"; name: string } | { kind: "ip"; ip: string; family: 4 | 6 };

export type HostResult = NormalHost | { error: string };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Canonical text of IPv6 bytes (RFC 5952: lower case, longest zero run compressed). */
export function formatIPv6(bytes: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLen = 1; // a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

function normaliseIPv6(text: string): HostResult {
  const zone = text.indexOf("%");
  const bare = zone >= 0 ? text.slice(0, zone) : text;
  const bytes = isIPv6(bare) ? parseIPv6(bare) : undefined;
  if (!bytes) return { error: `"${text}" is not an IPv6 address` };
  // IPv4-mapped addresses reach the IPv4 host: match them against IPv4 rules.
  const mapped = bytes.subarray(0, 12).every((b, i) => (i < 10 ? b === 0 : b === 0xff));
  if (mapped) return { kind: "ip", ip: Array.from(bytes.subarray(12)).join("."), family: 4 };
  return { kind: "ip", ip: formatIPv6(bytes), family: 6 };
}

/**
 * Normalises a host as written in a rule, a request target, a Host header, a SOCKS request or an SNI:
 * brackets and zone ids dropped, IPv4 shorthand expanded, names lower-cased, IDN turned into ASCII, one
 * trailing dot removed. Anything that is not a valid name or address is an error (and so never matches).
 */
export function normaliseHost(input: string): HostResult {
  if (input.length === 0 || input.length > 1024) return { error: "empty or oversized host" };
  if (input.startsWith("[")) {
    if (!input.endsWith("]")) return { error: `"${input}" has an unclosed bracket` };
    return normaliseIPv6(input.slice(1, -1));
  }
  if (input.includes(":")) return normaliseIPv6(input);
  // Whitespace, control characters and URL delimiters never belong in a host; domainToASCII would
  // otherwise percent-decode ("%31" -> 0.0.0.1) or drop some of them silently.
  if (/[\s/\\?#@%*[\]]/.test(input) || hasControl(input))
    return { error: `"${input}" contains a character a host cannot have` };
  const ascii = domainToASCII(input.endsWith(".") ? input.slice(0, -1) : input);
  if (ascii === "") return { error: `"${input}" is not a valid host name` };
  if (isIPv4(ascii)) return { kind: "ip", ip: ascii, family: 4 };
  if (ascii.length > 253) return { error: `"${input}" is longer than 253 characters` };
  const labels = ascii.split(".");
  if (!labels.every((l) => LABEL.test(l))) return { error: `"${input}" is not a valid host name` };
  return { kind: "name", name: ascii };
}

/** The text form used in events and messages: names as-is, IPv6 in brackets. */
export function hostText(host: NormalHost): string {
  if (host.kind === "name") return host.name;
  return host.family === 6 ? `[${host.ip}]` : host.ip;
}

/** A host in a rule: a name (wildcard: subdomains of name, not name itself) or an address block. */
export type HostPattern =
  | { kind: "name"; name: string; wildcard: boolean } // wildcard: subdomains of name, not name itself
  | { kind: "cidr"; family: 4 | 6; network: string; prefix: number };
