import path from "node:path";
import type { EgressPlan } from "../rules/rules.js";

// Transparent mode (egress.transparent: true), for tools that ignore proxy settings. Pure planning:
//
//  - Name resolution in the box answers only the policy's exact host names: a generated /etc/hosts
//    maps each one to a loopback address of its own (127.77.x.y, inside the box's own lo), and an
//    empty resolv.conf leaves no resolver (glibc falls back to 127.0.0.1:53, where nothing listens).
//    Every other name fails to resolve, so nothing but allowlisted names ever resolves.
//  - For each name and allowed port, a forwarder in the box (socat) listens on that address and
//    carries every connection to the proxy by name (CONNECT host:port through the bridge), so the
//    proxy's rules, address guard and SNI check apply exactly as for a proxy-aware client.
//
// What a hosts file cannot hold is said, not guessed: wildcard rules (no file can list every
// subdomain), CIDR rules (an address needs a route, and the box has none), port ranges wider than
// MAX_RANGE ports. Proxy-aware clients still reach all of those through the proxy.

/** The loopback block the mapped names live in (inside the box's own network namespace). */
export const TRANSPARENT_PREFIX = "127.77";
/** A port range wider than this gets no forwarders (one process per port). */
export const MAX_RANGE = 16;

export interface TransparentForward {
  /** The in-box address the name resolves to. */
  address: string;
  port: number;
  /** The host name the proxy is asked for. */
  host: string;
}

export interface TransparentPlan {
  /** The box's /etc/hosts. */
  hosts: string;
  forwards: TransparentForward[];
  /** Where the generated files are bound in the box: /etc/hosts and /etc/resolv.conf, symlinks followed. */
  hostsTarget: string;
  resolvTarget: string;
  /** Whether a forwarder needs a port below 1024 (the box's netns must allow unprivileged binds there). */
  lowPorts: boolean;
  /** What transparent mode cannot capture, one line each, for the user. */
  notes: string[];
}

/** The address of the i-th mapped name: 127.77.0.1 … 127.77.0.254, 127.77.1.1, … (never .0 or .255). */
export function mappedAddress(i: number): string {
  const hi = Math.floor(i / 254);
  if (hi > 255) throw new RangeError("transparent mode maps at most 65,024 names");
  return `${TRANSPARENT_PREFIX}.${hi}.${(i % 254) + 1}`;
}

/** The path a file lands on when bound at `target`: bwrap follows a symlink there, relative to the new root. */
export function followLinks(
  target: string,
  readlink: ((p: string) => string | undefined) | undefined,
): string {
  let current = target;
  for (let i = 0; i < 16 && readlink; i++) {
    const link = readlink(current);
    if (link === undefined) break;
    current = path.resolve(path.dirname(current), link);
  }
  return current;
}

export function planTransparent(
  egress: Pick<EgressPlan, "allow">,
  options: { hostname?: string; readlink?: (p: string) => string | undefined } = {},
): TransparentPlan {
  const notes: string[] = [];
  const ports = new Map<string, Set<number>>();
  for (const rule of egress.allow) {
    const h = rule.host;
    if (h.kind === "cidr") {
      notes.push(
        `${rule.source}: an address rule cannot be captured (the box has no route); proxy-aware clients only`,
      );
      continue;
    }
    if (h.wildcard) {
      notes.push(
        `${rule.source}: a hosts file cannot list every subdomain; list the exact names for proxy-unaware tools (proxy-aware clients reach them regardless)`,
      );
      continue;
    }
    if (rule.path !== undefined) {
      notes.push(
        `${rule.source}: a path rule needs a proxy-aware client (a captured connection is a tunnel, which hides the path)`,
      );
      continue;
    }
    const set = ports.get(h.name) ?? new Set<number>();
    for (const [lo, hi] of rule.ports) {
      if (hi - lo + 1 > MAX_RANGE) {
        notes.push(
          `${rule.source}: ports ${lo}-${hi} are too many to capture (at most ${MAX_RANGE} per range); proxy-aware clients only`,
        );
        continue;
      }
      for (let p = lo; p <= hi; p++) set.add(p);
    }
    ports.set(h.name, set);
  }
  const forwards: TransparentForward[] = [];
  const hostLines = [
    "# fourwall transparent mode: only the policy's host names resolve in this box, each to an",
    "# address of the box's own where a forwarder carries connections to the egress proxy.",
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    ...(options.hostname ? [`127.0.1.1\t${options.hostname}`] : []),
  ];
  [...ports.keys()].forEach((name, i) => {
    const address = mappedAddress(i);
    hostLines.push(`${address}\t${name}`);
    for (const port of [...ports.get(name)!].sort((a, b) => a - b))
      forwards.push({ address, port, host: name });
  });
  return {
    hosts: `${hostLines.join("\n")}\n`,
    forwards,
    hostsTarget: followLinks("/etc/hosts", options.readlink),
    resolvTarget: followLinks("/etc/resolv.conf", options.readlink),
    lowPorts: forwards.some((f) => f.port < 1024),
    notes,
  };
}

/** /proc/net/tcp's spelling of a local IPv4 address and port ("0100007F:0C38" for 127.0.0.1:3128). */
export function procNetTcpAddress(address: string, port: number): string {
  const hex = address
    .split(".")
    .map((b) => Number(b).toString(16).toUpperCase().padStart(2, "0"))
    .reverse()
    .join("");
  return `${hex}:${port.toString(16).toUpperCase().padStart(4, "0")}`;
}
