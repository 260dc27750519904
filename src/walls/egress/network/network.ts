import { shellQuote } from "../../../core/shell.js";
/**
 * The kernel side of the egress wall (namespaces runtime): the box gets a network namespace of
 * its own with nothing but `lo`, so the kernel has no route anywhere. The one way out is the
 * proxy's unix socket, bind-mounted into the box; a bridge inside the box (native/fourwall-bridge,
 * or socat through bridgeScript) listens on 127.0.0.1:3128 and carries each connection to it. No resolver is reachable: proxy-aware clients
 * hand names to the proxy, and DNS tunnelling carries nothing. The agent holds no CAP_NET_ADMIN
 * over the namespace, so it cannot add a route or an interface; if the proxy dies, nothing leaves.
 */
import type { EgressPlan } from "../rules/rules.js";
import { planTransparent, procNetTcpAddress, type TransparentPlan } from "./transparent.js";

/** Where the proxy's socket appears inside the box. */
export const BOX_NET_DIR = "/run/fourwall";
export const BOX_PROXY_SOCKET = `${BOX_NET_DIR}/proxy.sock`;
export const BOX_PROXY_PORT = 3128;

export interface BoxNetworkPlan {
  /** The in-box address proxy-aware clients use. */
  proxyUrl: string;
  port: number;
  socketInBox: string;
  /** Whether the proxy behind the bridge speaks SOCKS5 too (the builtin one does, squid does not). */
  socks: boolean;
  /** Transparent mode: the box's hosts file and the forwarders that carry its names to the proxy. */
  transparent?: TransparentPlan;
  /** The box's NO_PROXY: its own loopback names, minus those an allow rule names (they mean the host's). */
  noProxy: string[];
}

/** What clients in the box reach directly, without the proxy: the box's own loopback. */
export const BOX_LOCAL_NAMES = ["localhost", "127.0.0.1", "::1"];

/**
 * The box's loopback names that no allow rule names. A rule such as `-a 127.0.0.1:8080` means the
 * host's port (the proxy connects there); NO_PROXY listing 127.0.0.1 would send clients to the box's
 * own, empty loopback instead, defeating the explicit allow without a word.
 */
export function noProxyFor(allow: Pick<EgressPlan, "allow">["allow"]): string[] {
  const named = (name: string) =>
    allow.some((r) => {
      if (r.host.kind === "name") return !r.host.wildcard && r.host.name === name;
      if (name === "127.0.0.1") return r.host.family === 4 && r.host.network.startsWith("127.");
      return name === "::1" && r.host.family === 6 && r.host.network === "::1";
    });
  return BOX_LOCAL_NAMES.filter((name) => !named(name));
}

export function planBoxNetwork(
  egress?: Pick<EgressPlan, "proxy" | "transparent" | "allow">,
  options: { hostname?: string; readlink?: (p: string) => string | undefined } = {},
): BoxNetworkPlan {
  const net: BoxNetworkPlan = {
    proxyUrl: `http://127.0.0.1:${BOX_PROXY_PORT}`,
    port: BOX_PROXY_PORT,
    socketInBox: BOX_PROXY_SOCKET,
    socks: egress?.proxy !== "squid",
    noProxy: noProxyFor(egress?.allow ?? []),
  };
  if (egress?.transparent) net.transparent = planTransparent(egress, options);
  return net;
}

/** The variables that point proxy-aware tools at the bridge (both spellings, per-tool ones too). */
export function proxyEnvironment(net: BoxNetworkPlan): Record<string, string> {
  return proxyEnvironmentAt("127.0.0.1", net.port, net.socks !== false, net.noProxy);
}

/** The same variables for a proxy at HOST:PORT (a cluster's proxy Service, for instance). */
export function proxyEnvironmentAt(
  host: string,
  portNumber: number,
  socksToo: boolean,
  direct: string[] = BOX_LOCAL_NAMES,
): Record<string, string> {
  const url = `http://${host}:${portNumber}`;
  // ALL_PROXY is for clients that prefer SOCKS; behind squid it points at the HTTP proxy instead.
  const socks = socksToo ? `socks5h://${host}:${portNumber}` : url;
  const noProxy = direct.join(",");
  const port = String(portNumber);
  return {
    HTTP_PROXY: url,
    HTTPS_PROXY: url,
    ALL_PROXY: socks,
    NO_PROXY: noProxy,
    http_proxy: url,
    https_proxy: url,
    all_proxy: socks,
    no_proxy: noProxy,
    // npm, yarn, pip, gRPC, the JVM (Gradle, Maven): each has its own spelling
    npm_config_proxy: url,
    npm_config_https_proxy: url,
    YARN_HTTP_PROXY: url,
    YARN_HTTPS_PROXY: url,
    PIP_PROXY: url,
    grpc_proxy: url,
    JAVA_TOOL_OPTIONS: `-Dhttp.proxyHost=${host} -Dhttp.proxyPort=${port} -Dhttps.proxyHost=${host} -Dhttps.proxyPort=${port} -Dhttp.nonProxyHosts=${direct.filter((d) => d !== "::1").join("|")}`,
  };
}

/**
 * The box's first process: start the bridge (and, in transparent mode, one forwarder per mapped name
 * and port), wait until each listens (a client that starts at once must not race them), then exec
 * the command. Arguments: the rest of argv is the command. Written for /bin/sh; reads /proc/net/tcp
 * rather than trying a connection, which would cost one connection to the proxy per box.
 */
export function bridgeScript(net: BoxNetworkPlan, options: { readyFd?: number } = {}): string {
  const quiet = "</dev/null >/dev/null 2>&1 &";
  const forwards = net.transparent?.forwards ?? [];
  const listeners = [
    procNetTcpAddress("127.0.0.1", net.port),
    ...forwards.map((f) => procNetTcpAddress(f.address, f.port)),
  ];
  return [
    // (every word that carries a path or a name is one quoted sh word: data, never code)
    `socat TCP-LISTEN:${net.port},bind=127.0.0.1,fork,reuseaddr ${shellQuote(`UNIX-CONNECT:${net.socketInBox}`)} ${quiet}`,
    // Each captured connection becomes CONNECT host:port to the bridge: the proxy judges it by name.
    ...forwards.map(
      (f) =>
        `socat TCP-LISTEN:${f.port},bind=${f.address},fork,reuseaddr ${shellQuote(`PROXY:127.0.0.1:${f.host}:${f.port},proxyport=${net.port}`)} ${quiet}`,
    ),
    // Shell builtins only: forking grep and sleep took longer than socat needs to listen. Poll at
    // once a few times, then back off with sleep.
    'listening() { while read -r _ a b st _; do [ "$a $b $st" = "$1 00000000:0000 0A" ] && return 0; done </proc/net/tcp; return 1; }',
    "i=0",
    `for l in ${listeners.join(" ")}; do`,
    '  until listening "$l"; do',
    '    i=$((i+1)); [ "$i" -gt 2000 ] && { echo "fourwall: the egress bridge did not start" >&2; exit 125; }',
    '    [ "$i" -gt 20 ] && sleep 0.001',
    "  done",
    "done",
    // Tell fourwall the box is ready (bridge listening, about to become the command), then make
    // sure the command does not inherit the pipe.
    ...(options.readyFd === undefined
      ? []
      : [`echo ready >&${options.readyFd}`, `exec ${options.readyFd}>&-`]),
    'exec "$@"',
  ].join("\n");
}
