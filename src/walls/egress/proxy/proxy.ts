/**
 * fourwall's egress proxy: the box's only way out.
 *
 * Data flow. Each listener (a unix socket bind-mounted into the box, or 127.0.0.1 in tests) accepts a
 * connection and looks at its first chunk: 0x05 is SOCKS5 (socks.ts); a whole, plain CONNECT head
 * goes straight to connect.ts; anything else is handed to one internal node:http server, which serves
 * plain HTTP in absolute form (http.ts) and the remaining CONNECTs (connect.ts).
 * All three turn the request into a Target and call authorize() (authorize.ts): normalise the host
 * (host.ts), apply deny/allow/port/path/method rules from the compiled EgressPlan (rules.ts,
 * match.ts), ask the human if the policy says so, resolve the name here (pins first) and refuse
 * internal addresses (addresses.ts). The proxy then connects to exactly the vetted address.
 * Tunnels peek at the client's first flight for a TLS ClientHello and close when its SNI names
 * another host (sni.ts, tunnel.ts), then relay both ways untouched; a tunnel that turns out to be a
 * bulk transfer is handed to a native helper that splices it in the kernel (splice.ts). Every
 * decision becomes one EgressEvent through options.onDecision.
 */
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { Agent, createServer as createHttpServer } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { systemLookup } from "./authorize.js";
import { handleConnect, handleConnectTarget, parseConnectHead } from "./connect.js";
import { CredentialRuntime } from "./credentials.js";
import { handleHttp } from "./http.js";
import { IdleSweeper } from "./idle.js";
import { handleSocks } from "./socks.js";
import { Splicer } from "./splice.js";
import type { EgressEvent, ProxyContext, ProxyHandle, ProxyLimits, ProxyOptions } from "./types.js";

export type { EgressEvent, ProxyHandle, ProxyOptions } from "./types.js";

export const DEFAULT_LIMITS: ProxyLimits = {
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  connectTimeoutMs: 10_000,
  lookupTimeoutMs: 5_000,
  askTimeoutMs: 120_000,
  maxHeaderBytes: 32 * 1024,
  maxConnections: 8192,
  spliceAfterBytes: 256 * 1024,
};

function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // absent: nothing to remove
  }
}

export async function startProxy(options: ProxyOptions): Promise<ProxyHandle> {
  if (options.listen.length === 0) throw new Error("startProxy: nothing to listen on");
  const limits: ProxyLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const splicer = limits.spliceAfterBytes ? Splicer.create(limits.idleTimeoutMs) : undefined;
  const onDecision = options.onDecision;
  const ctx: ProxyContext = {
    plan: options.plan,
    box: options.box ?? "box",
    limits,
    // A failing audit sink must not take the proxy down with it.
    emit: (event: EgressEvent) => {
      try {
        onDecision?.(event);
      } catch {}
    },
    ask: options.ask,
    lookup: options.lookup ?? systemLookup,
    unsafe: options.unsafeForTests ?? {},
    agent: new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, timeout: limits.idleTimeoutMs }),
    idle: new IdleSweeper(limits.idleTimeoutMs),
    track,
    untrack: (socket: Socket) => sockets.delete(socket),
    ...(splicer ? { splicer } : {}),
    ...(options.credentials
      ? { creds: new CredentialRuntime(options.credentials, options.box ?? "box") }
      : {}),
  };

  const http = createHttpServer({
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headerTimeoutMs,
    // node checks header deadlines on this interval (30 s by default): make slow-header clients go soon.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headerTimeoutMs / 2))),
    requestTimeout: 0, // uploads may be long; idleness is bounded by the socket timeout below
    keepAliveTimeout: 5_000,
    // A missing Host is judged by http.ts (the target is in the request line); node's own 400 would
    // leave no audit event behind.
    requireHostHeader: false,
  });
  http.timeout = limits.idleTimeoutMs;
  http.on("request", (req, res) => {
    handleHttp(ctx, req, res).catch(() => res.destroy());
  });
  http.on("connect", (req, socket: Socket, head: Buffer) => {
    handleConnect(ctx, req, socket, head).catch(() => socket.destroy());
  });
  // Upgrade (WebSocket over plain HTTP) would hand the socket over raw; clients use CONNECT for wss.
  http.on("upgrade", (req, socket: Socket) => {
    socket.on("error", () => socket.destroy());
    let host = "";
    let port = 0;
    try {
      const url = new URL(req.url ?? "");
      host = url.hostname;
      port = Number(url.port || 80);
    } catch {}
    ctx.emit({
      time: new Date().toISOString(),
      box: ctx.box,
      kind: "http",
      host,
      port,
      method: req.method ?? "GET",
      decision: "deny",
      reason: "upgrade-not-supported",
      bytesUp: 0,
      bytesDown: 0,
      durationMs: 0,
    });
    socket.end(
      "HTTP/1.1 403 Forbidden\r\nX-Fourwall-Denied: upgrade-not-supported\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    setTimeout(() => socket.destroy(), 2000).unref();
  });
  // Requests node's parser refuses never reach a handler: record them here, then answer and close.
  http.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    const tooBig = err.code === "HPE_HEADER_OVERFLOW";
    const timedOut = err.code === "ERR_HTTP_REQUEST_TIMEOUT" || err.code === "HPE_HEADERS_TIMEOUT";
    const reason = tooBig ? "header-too-large" : timedOut ? "header-timeout" : "bad-request";
    if (err.code !== "ECONNRESET") {
      const now = Date.now();
      ctx.emit({
        time: new Date(now).toISOString(),
        box: ctx.box,
        kind: "http",
        host: "",
        port: 0,
        decision: "deny",
        reason,
        bytesUp: 0,
        bytesDown: 0,
        durationMs: 0,
      });
    }
    if (socket.writable && !timedOut) {
      const status = tooBig ? "431 Request Header Fields Too Large" : "400 Bad Request";
      socket.end(
        `HTTP/1.1 ${status}\r\nX-Fourwall-Denied: ${reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      );
      // Half-open sockets stay until the peer closes too; a peer that never does is cut off.
      setTimeout(() => socket.destroy(), 2000).unref();
    } else socket.destroy();
  });
  // The HTTP server never listens itself; this starts its header-timeout bookkeeping all the same.
  http.emit("listening");

  const onConnection = (socket: Socket) => {
    track(socket);
    socket.on("error", () => socket.destroy());
    socket.setTimeout(limits.headerTimeoutMs, () => socket.destroy());
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      socket.setTimeout(0);
      if (chunk[0] === 0x05) {
        handleSocks(ctx, socket, chunk);
        return;
      }
      const fast = chunk[0] === 0x43 ? parseConnectHead(chunk, limits.maxHeaderBytes) : undefined; // "C"
      if (fast) {
        handleConnectTarget(ctx, fast.url, socket, fast.rest).catch(() => socket.destroy());
        return;
      }
      socket.unshift(chunk);
      http.emit("connection", socket);
      socket.resume();
    });
  };

  const servers: Server[] = [];
  const listeners: ProxyHandle["listeners"] = [];
  const unixPaths: string[] = [];
  try {
    for (const spec of options.listen) {
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, onConnection);
      server.maxConnections = limits.maxConnections;
      server.on("error", () => {});
      servers.push(server);
      if ("path" in spec) {
        removeStaleSocket(spec.path);
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen(spec.path, () => resolve());
        });
        if (spec.mode !== undefined) chmodSync(spec.path, spec.mode);
        unixPaths.push(spec.path);
        listeners.push({ path: spec.path });
      } else {
        const host = spec.host ?? "127.0.0.1";
        // Never reachable from outside the host: only loopback addresses are accepted here, unless
        // the caller says the network around the proxy is walled off (a pod, an internal network).
        if (host !== "127.0.0.1" && host !== "::1" && !("walledOff" in spec && spec.walledOff))
          throw new Error(`startProxy: refusing to listen on ${host}`);
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen(spec.port, host, () => resolve());
        });
        const addr = server.address();
        listeners.push({ host, port: typeof addr === "object" && addr ? addr.port : spec.port });
      }
    }
  } catch (err) {
    for (const s of servers) s.close();
    for (const p of unixPaths) removeStaleSocket(p);
    throw err;
  }

  const tcp = listeners.find((l): l is { host: string; port: number } => "port" in l);
  let closing: Promise<void> | undefined;
  const handle: ProxyHandle = {
    listeners,
    openSockets: () => sockets.size + 2 * (splicer?.live() ?? 0),
    splicedTunnels: () => splicer?.adopted() ?? 0,
    close() {
      closing ??= (async () => {
        const stopped = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
        for (const socket of sockets) socket.destroy();
        await splicer?.close();
        await Promise.all(stopped);
        ctx.agent.destroy();
        ctx.idle.stop();
        if (ctx.creds) (await import("./terminate.js")).closeTerminator(ctx);
        http.close(() => {});
        for (const p of unixPaths) removeStaleSocket(p);
      })();
      return closing;
    },
  };
  if (tcp) handle.url = `http://${tcp.host === "::1" ? "[::1]" : tcp.host}:${tcp.port}`;
  return handle;
}
