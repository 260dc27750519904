import { isIPv4, isIPv6 } from "node:net";

// Pure: the kernel half of the egress wall as a firewall ruleset, for a box (or container) whose network
// namespace has a real interface: nothing leaves but TCP to the proxy's address and port. Default drop,
// and reject (TCP reset, ICMP admin-prohibited) for what leaves, so a blocked client fails at once
// instead of hanging; IPv4 and IPv6 alike; no DNS (names go to the proxy). Loopback stays open: it
// leads nowhere outside the namespace. The rules are meant to be loaded from outside the namespace
// (`nsenter --net=... nft -f`, or by the container runtime): a box holding CAP_NET_ADMIN could flush them.
//
// fourwall's own boxes (namespaces runtime) need none of this: their namespace has no interface but
// lo, which is tighter. `fourwall egress render` prints these for a container host (the classic squid
// plus firewall recipe) and for audit.

export interface ProxyAddress {
  host: string;
  port: number;
}

export class FirewallError extends Error {
  override name = "FirewallError";
}

/** Parses ADDRESS:PORT ([v6]:PORT for IPv6); the address must be an IP (a firewall cannot match names). */
export function parseProxyAddress(text: string): ProxyAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text.trim());
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !host || !(isIPv4(host) || (m[1] !== undefined && isIPv6(host))) || port < 1 || port > 65535)
    throw new FirewallError(
      `"${text}" is not ADDRESS:PORT of the proxy (e.g. 172.17.0.1:3128 or [fd00::1]:3128)`,
    );
  return { host, port };
}

const family = (p: ProxyAddress) => (isIPv6(p.host) ? 6 : 4);

function header(p: ProxyAddress, tool: string): string[] {
  return [
    `# fourwall egress wall (${tool}): the box may open TCP connections to the proxy at ${family(p) === 6 ? `[${p.host}]` : p.host}:${p.port}`,
    "# and nothing else: no other host, no DNS, no UDP, IPv4 and IPv6 alike. Default drop; what the box",
    "# sends elsewhere is rejected so it fails at once. Load it into the box's network namespace from",
    "# outside (the box must never hold CAP_NET_ADMIN, or it could flush these rules).",
  ];
}

/** An nftables ruleset (nft -f) for the box's network namespace. */
export function renderNftables(proxy: ProxyAddress): string {
  const daddr = family(proxy) === 6 ? "ip6 daddr" : "ip daddr";
  return [
    "#!/usr/sbin/nft -f",
    ...header(proxy, "nftables"),
    "",
    "table inet fourwall_egress",
    "delete table inet fourwall_egress",
    "table inet fourwall_egress {",
    "  chain output {",
    "    type filter hook output priority filter; policy drop;",
    '    oifname "lo" accept',
    `    ${daddr} ${proxy.host} tcp dport ${proxy.port} accept`,
    "    meta l4proto tcp reject with tcp reset",
    "    reject with icmpx type admin-prohibited",
    "  }",
    "  chain input {",
    "    type filter hook input priority filter; policy drop;",
    '    iifname "lo" accept',
    "    ct state established,related accept",
    "  }",
    "  chain forward {",
    "    type filter hook forward priority filter; policy drop;",
    "  }",
    "}",
    "",
  ].join("\n");
}

function iptablesTable(proxy: ProxyAddress | undefined, v6: boolean): string[] {
  const rejectOther = v6 ? "icmp6-adm-prohibited" : "icmp-admin-prohibited";
  const mask = v6 ? "128" : "32";
  return [
    "*filter",
    ":INPUT DROP [0:0]",
    ":FORWARD DROP [0:0]",
    ":OUTPUT DROP [0:0]",
    "-A INPUT -i lo -j ACCEPT",
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "-A OUTPUT -o lo -j ACCEPT",
    ...(proxy ? [`-A OUTPUT -d ${proxy.host}/${mask} -p tcp -m tcp --dport ${proxy.port} -j ACCEPT`] : []),
    "-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset",
    `-A OUTPUT -j REJECT --reject-with ${rejectOther}`,
    "COMMIT",
  ];
}

/** The same rules for iptables-restore (IPv4) and ip6tables-restore (IPv6), as two marked sections. */
export function renderIptables(proxy: ProxyAddress): string {
  const v6 = family(proxy) === 6;
  return [
    ...header(proxy, "iptables"),
    "",
    "# --- IPv4: iptables-restore < this section",
    ...iptablesTable(v6 ? undefined : proxy, false),
    "",
    "# --- IPv6: ip6tables-restore < this section",
    ...iptablesTable(v6 ? proxy : undefined, true),
    "",
  ].join("\n");
}

/** Splits renderIptables' output into its IPv4 and IPv6 sections. */
export function iptablesSections(text: string): { v4: string; v6: string } {
  const [, v4 = "", v6 = ""] = text.split(/^# --- IPv[46]: .*$/m);
  return { v4: `${v4.trim()}\n`, v6: `${v6.trim()}\n` };
}
