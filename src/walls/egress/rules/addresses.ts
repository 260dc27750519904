import { isIPv4, isIPv6 } from "node:net";

// Pure classification of IP addresses for the resolved-address guard. Everything that is not plainly
// "public unicast on the internet" is reported with the reason it is not, so a denial can say why.
// IPv6 forms that carry an IPv4 address (mapped, SIIT, NAT64, 6to4, IPv4-compatible) are judged by the
// address they carry: ::ffff:127.0.0.1 is loopback, 64:ff9b::a9fe:a9fe is the metadata service.

export type AddressClass =
  | "public"
  | "unspecified"
  | "loopback"
  | "private"
  | "link-local"
  | "cgnat"
  | "multicast"
  | "broadcast"
  | "reserved"
  | "documentation"
  | "benchmarking"
  | "unique-local"
  | "metadata"
  | "invalid";

/** Parses a dotted-quad IPv4 address into 4 bytes (strict: no numeric shorthand; normalise first). */
export function parseIPv4(text: string): Uint8Array | undefined {
  if (!isIPv4(text)) return undefined;
  return Uint8Array.from(text.split(".").map(Number));
}

/** Parses an IPv6 address (optionally with an embedded dotted IPv4 tail; no zone, no brackets) into 16 bytes. */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (!isIPv6(text) || text.includes("%")) return undefined;
  let head = text;
  const tail: number[] = [];
  const lastColon = head.lastIndexOf(":");
  if (head.includes(".", lastColon)) {
    const v4 = parseIPv4(head.slice(lastColon + 1));
    if (!v4) return undefined;
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    head = head.slice(0, lastColon + 1);
    // "::1.2.3.4" leaves "::", "64:ff9b::1.2.3.4" leaves "64:ff9b::", "1::2:1.2.3.4" leaves "1::2:".
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16)));
  let words: number[];
  const gap = head.indexOf("::");
  if (gap >= 0) {
    const left = groups(head.slice(0, gap));
    const right = [...groups(head.slice(gap + 2)), ...tail];
    words = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  } else {
    words = [...groups(head), ...tail];
  }
  if (words.length !== 8) return undefined;
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[i * 2] = w >> 8;
    bytes[i * 2 + 1] = w & 0xff;
  });
  return bytes;
}

/** Parses either family; strips a zone id ("fe80::1%eth0") since it does not change what the address is. */
export function parseIP(text: string): Uint8Array | undefined {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const zone = bare.indexOf("%");
  const noZone = zone >= 0 ? bare.slice(0, zone) : bare;
  return parseIPv4(noZone) ?? parseIPv6(noZone);
}

/** True when the first `prefix` bits of `bytes` equal those of `network` (same length). */
export function inPrefix(bytes: Uint8Array, network: Uint8Array, prefix: number): boolean {
  if (bytes.length !== network.length) return false;
  const whole = prefix >> 3;
  for (let i = 0; i < whole; i++) if (bytes[i] !== network[i]) return false;
  const rest = prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (bytes[whole]! & mask) === (network[whole]! & mask);
}

interface Range {
  cidr: string;
  network: Uint8Array;
  prefix: number;
  kind: AddressClass;
}

function range(cidr: string, kind: AddressClass): Range {
  const [ip, bits] = cidr.split("/");
  const network = parseIP(ip!);
  if (!network) throw new Error(`bad built-in range ${cidr}`);
  return { cidr, network, prefix: bits === undefined ? network.length * 8 : Number(bits), kind };
}

// Cloud metadata and host-agent endpoints come first: they sit inside wider ranges (link-local, CGNAT,
// even public space for Azure's WireServer) and deserve the sharper name in a denial.
/**
 * The range tables, built on first use: parsing them costs ~10 ms at start-up (node's isIPv6
 * compiles its pattern on first call), and most boxes start long before their first request.
 */
let builtTables:
  | {
      V4: Range[];
      V6: Range[];
      GLOBAL_UNICAST_V6: Range;
      EMBEDDING: Array<{ range: Range; offset: number; unroutable: boolean }>;
    }
  | undefined;
function tables() {
  if (builtTables) return builtTables;
  const METADATA_V4 = [
    "169.254.169.254/32", // AWS, GCP, Azure IMDS, OCI, DigitalOcean, OpenStack, Hetzner
    "169.254.170.2/32", // AWS ECS task metadata and credentials
    "169.254.170.23/32", // AWS EKS Pod Identity agent
    "100.100.100.200/32", // Alibaba Cloud metadata
    "168.63.129.16/32", // Azure WireServer / host agent (public-looking, never a legitimate egress target)
  ].map((c) => range(c, "metadata"));

  const V4: Range[] = [
    ...METADATA_V4,
    range("0.0.0.0/8", "unspecified"),
    range("10.0.0.0/8", "private"),
    range("100.64.0.0/10", "cgnat"),
    range("127.0.0.0/8", "loopback"),
    range("169.254.0.0/16", "link-local"),
    range("172.16.0.0/12", "private"),
    range("192.0.0.0/24", "reserved"), // IETF protocol assignments
    range("192.0.2.0/24", "documentation"),
    range("192.88.99.0/24", "reserved"), // deprecated 6to4 relay anycast
    range("192.168.0.0/16", "private"),
    range("198.18.0.0/15", "benchmarking"),
    range("198.51.100.0/24", "documentation"),
    range("203.0.113.0/24", "documentation"),
    range("224.0.0.0/4", "multicast"),
    range("255.255.255.255/32", "broadcast"),
    range("240.0.0.0/4", "reserved"),
  ];

  const V6: Range[] = [
    range("fd00:ec2::254/128", "metadata"), // AWS IMDS over IPv6
    range("fd00:ec2::23/128", "metadata"), // AWS EKS Pod Identity over IPv6
    range("fd20:ce::254/128", "metadata"), // GCP metadata over IPv6
    range("::/128", "unspecified"),
    range("::1/128", "loopback"),
    range("64:ff9b:1::/48", "reserved"), // local-use NAT64: translated somewhere we cannot see
    range("100::/64", "reserved"), // discard-only
    range("2001::/32", "reserved"), // Teredo: the embedded client address is obfuscated, refuse outright
    range("2001:2::/48", "benchmarking"),
    range("2001:db8::/32", "documentation"),
    range("2001::/23", "reserved"), // IETF protocol assignments (ORCHID, AMT, ...)
    range("3fff::/20", "documentation"),
    range("fc00::/7", "unique-local"),
    range("fe80::/10", "link-local"),
    range("fec0::/10", "reserved"), // deprecated site-local
    range("ff00::/8", "multicast"),
  ];

  const GLOBAL_UNICAST_V6 = range("2000::/3", "public");

  // IPv6 prefixes that embed an IPv4 address, with the byte offset of that address.
  const EMBEDDING: Array<{ range: Range; offset: number; unroutable: boolean }> = [
    { range: range("::ffff:0:0/96", "reserved"), offset: 12, unroutable: false }, // IPv4-mapped
    { range: range("::ffff:0:0:0/96", "reserved"), offset: 12, unroutable: false }, // SIIT IPv4-translated
    { range: range("64:ff9b::/96", "reserved"), offset: 12, unroutable: false }, // well-known NAT64
    { range: range("2002::/16", "reserved"), offset: 2, unroutable: false }, // 6to4
    { range: range("::/96", "reserved"), offset: 12, unroutable: true }, // deprecated IPv4-compatible
  ];
  builtTables = { V4, V6, GLOBAL_UNICAST_V6, EMBEDDING };
  return builtTables;
}

/**
 * The IPv4 ranges the guard refuses, most specific first, as CIDR text with their class: for renderers
 * of other enforcement points (squid's dst ACLs) that must refuse the same space.
 */
export function internalRangesV4(): Array<{ cidr: string; kind: AddressClass }> {
  return tables().V4.map((r) => ({ cidr: r.cidr, kind: r.kind }));
}

/**
 * IPv6 space that is not plainly public, as CIDRs with a class, for renderers that cannot unpack an
 * embedded IPv4 address: stricter than classifyAddress (every IPv4-embedding prefix but the mapped
 * one is refused whole, and so is everything outside 2000::/3). ::ffff:0:0/96 is left out: squid
 * stores every IPv4 address in that form, so the IPv4 list already covers it.
 */
export function internalRangesV6(): Array<{ cidr: string; kind: AddressClass }> {
  return [
    ...tables()
      .V6.slice(0, 5)
      .map((r) => ({ cidr: r.cidr, kind: r.kind })), // metadata, ::, ::1
    { cidr: "::/96", kind: "reserved" }, // IPv4-compatible
    { cidr: "::ffff:0:0:0/96", kind: "reserved" }, // SIIT
    { cidr: "64:ff9b::/96", kind: "reserved" }, // NAT64
    { cidr: "2002::/16", kind: "reserved" }, // 6to4
    ...tables()
      .V6.slice(5)
      .map((r) => ({ cidr: r.cidr, kind: r.kind })),
    { cidr: "4000::/2", kind: "reserved" },
    { cidr: "8000::/2", kind: "reserved" },
    { cidr: "c000::/3", kind: "reserved" },
    { cidr: "e000::/4", kind: "reserved" },
    { cidr: "f000::/5", kind: "reserved" },
    { cidr: "f800::/6", kind: "reserved" },
    { cidr: "fe00::/9", kind: "reserved" },
  ];
}

function classifyBytes(bytes: Uint8Array): AddressClass {
  const { V4, V6, GLOBAL_UNICAST_V6, EMBEDDING } = tables();
  if (bytes.length === 4) {
    for (const r of V4) if (inPrefix(bytes, r.network, r.prefix)) return r.kind;
    return "public";
  }
  // ::, ::1 and the metadata addresses are decided before any embedding is unpacked.
  for (const r of V6.slice(0, 5)) if (inPrefix(bytes, r.network, r.prefix)) return r.kind;
  for (const e of EMBEDDING) {
    if (!inPrefix(bytes, e.range.network, e.range.prefix)) continue;
    const inner = classifyBytes(bytes.slice(e.offset, e.offset + 4));
    // An IPv4-compatible address with a public IPv4 inside goes nowhere real: call it reserved.
    return inner === "public" && e.unroutable ? "reserved" : inner;
  }
  for (const r of V6.slice(5)) if (inPrefix(bytes, r.network, r.prefix)) return r.kind;
  return inPrefix(bytes, GLOBAL_UNICAST_V6.network, GLOBAL_UNICAST_V6.prefix) ? "public" : "reserved";
}

/** Classifies an IPv4 or IPv6 address (text). Unparseable input is "invalid", never "public". */
export function classifyAddress(ip: string): AddressClass {
  const bytes = parseIP(ip);
  return bytes ? classifyBytes(bytes) : "invalid";
}

/** True only for ordinary public unicast addresses: the ones the proxy may reach without a pin or CIDR rule. */
export function isPublicAddress(ip: string): boolean {
  return classifyAddress(ip) === "public";
}
