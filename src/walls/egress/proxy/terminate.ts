import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { SentinelInBody } from "../credentials/swap.js";
import { hostText, type NormalHost, normaliseHost } from "../rules/hostname.js";
import type { TunnelCheck } from "../rules/rules.js";
import { authorityMatches } from "./authority.js";
import { denialBody } from "./authorize.js";
import { connectionTokens, deny, forwardHeaders } from "./http.js";
import { relayResponse, requestBody, withoutLength } from "./swap-pipeline.js";
import type { EgressEvent, ProxyContext } from "./types.js";

// A tunnel the proxy opens up: to a host a credential is bound to (or the input gate screens), the
// box's TLS ends here with a leaf from the run's CA, each request is judged and swapped like plain
// HTTP, and goes on over the proxy's own TLS connection, verified against the system trust store
// (and egress.trust). HTTP/1.1 only: ALPN offers http/1.1, so h2 clients fall back to it.

const TLS_HANDSHAKE = 0x16;

interface Opened {
  host: NormalHost;
  port: number;
  addresses: string[];
  secure: boolean;
}

const tunnels = new WeakMap<Socket, Opened>();
const servers = new WeakMap<ProxyContext, { server: Server; agent: HttpsAgent }>();

function innerServer(ctx: ProxyContext): { server: Server; agent: HttpsAgent } {
  let inner = servers.get(ctx);
  if (inner) return inner;
  const server = createHttpServer({
    maxHeaderSize: ctx.limits.maxHeaderBytes,
    headersTimeout: ctx.limits.headerTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: 5_000,
  });
  server.timeout = ctx.limits.idleTimeoutMs;
  const agent = new HttpsAgent({
    keepAlive: true,
    maxSockets: 256,
    maxFreeSockets: 64,
    timeout: ctx.limits.idleTimeoutMs,
  });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const opened = tunnels.get(req.socket);
    if (!opened) {
      res.destroy();
      return;
    }
    handleRequest(ctx, opened, agent, req, res);
  });
  server.on("upgrade", (_req, socket: Socket) => {
    socket.end(
      "HTTP/1.1 403 Forbidden\r\nX-Fourwall-Denied: upgrade-not-supported\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
  });
  server.on("clientError", (_err, socket: Socket) => socket.destroy());
  server.emit("listening");
  inner = { server, agent };
  servers.set(ctx, inner);
  return inner;
}

/** Stops the inner server's bookkeeping and the upstream pool (the proxy is closing). */
export function closeTerminator(ctx: ProxyContext): void {
  const inner = servers.get(ctx);
  if (!inner) return;
  inner.agent.destroy();
  inner.server.close(() => {});
}

/**
 * The tunnel is allowed and names a host the proxy terminates: answer the client (`established`),
 * then read its first bytes: TLS is served with the run CA's leaf for the target (a ClientHello
 * naming another host fails), plain HTTP is followed directly (unless the port is TLS only).
 */
export function terminateTunnel(
  ctx: ProxyContext,
  client: Socket,
  established: string | Buffer,
  head: Buffer,
  to: { host: NormalHost; port: number; addresses: string[]; check: TunnelCheck },
  event: EgressEvent,
  started: number,
): void {
  const creds = ctx.creds!;
  const ca = creds.options.ca!;
  if (client.destroyed) return;
  client.setTimeout(0);
  client.setNoDelay(true);
  client.write(established);
  event.terminated = true;
  let ended = false;
  const end = (reason?: string, error?: string) => {
    if (ended) return;
    ended = true;
    if (reason) {
      event.decision = "deny";
      event.reason = reason;
      delete event.rule;
    }
    event.bytesUp = client.bytesRead;
    event.bytesDown = client.bytesWritten;
    event.durationMs = Date.now() - started;
    if (error) event.error = error;
    ctx.emit(event);
  };
  const unwatch = ctx.idle.watch([client], () => client.destroy());
  client.on("close", () => {
    unwatch();
    end();
  });
  client.on("error", () => client.destroy());
  const serve = (first: Buffer) => {
    client.pause();
    if (first.length > 0) client.unshift(first);
    const { server } = innerServer(ctx);
    if (first[0] !== TLS_HANDSHAKE) {
      if (to.check === "tls") {
        end("tunnel-not-tls");
        client.destroy();
        return;
      }
      tunnels.set(client, { host: to.host, port: to.port, addresses: to.addresses, secure: false });
      server.emit("connection", client);
      client.resume();
      return;
    }
    void ca.contextFor(to.host.kind === "ip" ? to.host.ip.replace(/^\[|\]$/g, "") : to.host.name).then(
      (secureContext) => {
        if (client.destroyed) return;
        const tls = new TLSSocket(client, {
          isServer: true,
          secureContext,
          ALPNProtocols: ["http/1.1"],
          // The leaf names the tunnel's host only; a ClientHello for another name is refused outright.
          SNICallback: (servername, cb) => {
            event.sni = servername.slice(0, 256);
            const norm = normaliseHost(servername);
            if (
              to.host.kind === "name" &&
              !("error" in norm) &&
              norm.kind === "name" &&
              norm.name === to.host.name
            )
              cb(null, secureContext);
            else {
              end("sni-mismatch");
              cb(new Error("sni-mismatch"));
            }
          },
        });
        tls.on("error", () => client.destroy());
        tunnels.set(tls, { host: to.host, port: to.port, addresses: to.addresses, secure: true });
        server.emit("connection", tls);
      },
      () => {
        end(undefined, "ca-failed");
        client.destroy();
      },
    );
  };
  if (head.length > 0) {
    serve(head);
    return;
  }
  client.once("data", (chunk: Buffer) => serve(chunk));
  client.resume();
}

function handleRequest(
  ctx: ProxyContext,
  opened: Opened,
  agent: HttpsAgent,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const creds = ctx.creds!;
  const method = req.method ?? "GET";
  const host = hostText(opened.host);
  const via = opened.secure ? "tls" : "tunnel";
  let target = req.url ?? "/";
  const hosts = req.rawHeaders.filter((_, i) => i % 2 === 0).filter((h) => h.toLowerCase() === "host");
  const hostHeader = req.headers.host;
  // Inside the tunnel every request names the tunnel's own host, as tunnel-http.ts demands of plain ones.
  if (hosts.length !== 1 || !hostHeader || !authorityMatches(hostHeader, opened.host, opened.port)) {
    deny(res, 403, "host-mismatch", denialBody(method, host, opened.port, "host-mismatch"));
    return;
  }
  const abs = /^https?:\/\/[^/?#]*/i.exec(target);
  if (abs) target = target.slice(abs[0].length) || "/";
  if (!target.startsWith("/")) {
    deny(res, 400, "bad-request", denialBody(method, host, opened.port, "bad-request"));
    return;
  }
  const pathname = target.split("?")[0]!;
  // A credential refusal: logged (entry name, never a value) and answered 403 with the reason.
  const refuse = (reason: string, name: string, detail: string) => {
    creds.emit({
      action: "refuse",
      reason,
      names: [name],
      host,
      port: opened.port,
      method,
      path: pathname,
      via,
    });
    deny(res, 403, reason, denialBody(method, host, opened.port, detail));
  };
  const verdict = creds.judge(opened.host, { method, target, pathname, rawHeaders: req.rawHeaders });
  if (!verdict.ok) {
    refuse(verdict.reason, verdict.name, `${verdict.reason}: ${verdict.name}`);
    return;
  }
  if (verdict.swapped.length > 0 || verdict.passed.length > 0)
    creds.emit({
      action: verdict.swapped.length > 0 ? "swap" : "pass",
      names: verdict.swapped.length > 0 ? verdict.swapped : verdict.passed,
      host,
      port: opened.port,
      method,
      path: pathname,
      via,
    });
  const { body, resized } = requestBody(req, verdict);
  let headers = forwardHeaders(verdict.rawHeaders, connectionTokens(verdict.rawHeaders));
  if (resized) headers = withoutLength(headers);
  headers.host = hostHeader;
  const address = opened.addresses[0]!;
  let upstream: ReturnType<typeof httpRequest>;
  try {
    upstream = opened.secure
      ? httpsRequest({
          host: address,
          port: opened.port,
          // verified against the name the box asked for (an IP target: against the address)
          ...(opened.host.kind === "name" ? { servername: opened.host.name } : {}),
          ...(creds.options.upstreamTrust ? { secureContext: creds.options.upstreamTrust } : {}),
          method,
          path: verdict.target,
          headers,
          agent,
          setHost: false,
        })
      : httpRequest({
          host: address,
          port: opened.port,
          method,
          path: verdict.target,
          headers,
          agent: ctx.agent,
          setHost: false,
        });
  } catch {
    deny(res, 400, "bad-request", denialBody(method, host, opened.port, "bad-request"));
    return;
  }
  upstream.setTimeout(ctx.limits.idleTimeoutMs, () => upstream.destroy(new Error("idle-timeout")));
  upstream.on("error", (err: NodeJS.ErrnoException) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const code =
      err.message === "idle-timeout"
        ? "idle-timeout"
        : err.code === "ECONNREFUSED"
          ? "connect-refused"
          : /certificate|self.signed|unable to verify|altname/i.test(err.message) ||
              err.code?.startsWith("ERR_TLS") ||
              err.code?.includes("CERT")
            ? "upstream-tls-unverified"
            : "upstream-error";
    const text = `fourwall egress: ${code}\n`;
    res.writeHead(code === "idle-timeout" ? 504 : 502, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": Buffer.byteLength(text),
      "X-Fourwall-Error": code,
      Connection: "close",
    });
    res.end(text);
  });
  const rule = creds.inputRule(opened.host);
  upstream.on("response", (upRes) => {
    const drop = connectionTokens(upRes.rawHeaders);
    relayResponse(upRes, res, (raw) => forwardHeaders(raw, drop), {
      verdict,
      rule,
      info: { host, method, url: `${opened.secure ? "https" : "http"}://${hostHeader}${target}` },
      blocked: (reason) => {
        creds.emit({ action: "input-blocked", reason, host, port: opened.port, method, path: pathname, via });
        deny(res, 403, reason, denialBody(method, host, opened.port, reason));
      },
      done: (error) => {
        if (error === "input-too-large")
          creds.emit({
            action: "input-blocked",
            reason: error,
            host,
            port: opened.port,
            method,
            path: pathname,
            via,
          });
      },
    }).catch(() => res.destroy());
  });
  res.on("close", () => {
    if (!res.writableFinished) upstream.destroy();
  });
  if (body !== req)
    body.on("error", (err) => {
      upstream.destroy();
      if (err instanceof SentinelInBody)
        refuse("credential-exfiltration", err.credential, "credential-exfiltration");
      else res.destroy();
    });
  body.pipe(upstream);
}
