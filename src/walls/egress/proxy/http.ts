import {
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import { SentinelInBody } from "../credentials/swap.js";
import { hostText, normaliseHost } from "../rules/hostname.js";
import { authorityMatches } from "./authority.js";
import { allowEvent, authorize, denialBody, denyEvent, type Target } from "./authorize.js";
import { relayResponse, requestBody, type SwapVerdict, withoutLength } from "./swap-pipeline.js";
import type { ProxyContext } from "./types.js";

// Plain HTTP in absolute form (GET http://host/path). Unlike a tunnel, everything is visible here, so
// path and method rules apply, the Host header must agree with the target, and the request the origin
// receives is rebuilt from what was vetted: the normalised path, the vetted address, no proxy headers.

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);

/** Copies raw headers minus hop-by-hop ones, Proxy-*, and any the Connection header names. */
export function forwardHeaders(raw: string[], extraDrop: Set<string>): OutgoingHttpHeaders {
  const out: Record<string, string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || name.startsWith("proxy-") || extraDrop.has(name)) continue;
    const list = out[name] ?? [];
    list.push(raw[i + 1]!);
    out[name] = list;
  }
  return out;
}

export function connectionTokens(raw: string[]): Set<string> {
  const drop = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === "connection" || name === "proxy-connection")
      for (const t of raw[i + 1]!.split(",")) drop.add(t.trim().toLowerCase());
  }
  return drop;
}

export function deny(res: ServerResponse, status: number, reason: string, body: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
    "X-Fourwall-Denied": reason,
    Connection: "close",
  });
  res.end(body);
}

function hostHeaderAgrees(raw: string[], url: URL, port: number): boolean {
  const values: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === "host") values.push(raw[i + 1]!);
  if (values.length === 0) return true; // HTTP/1.0 style; the proxy sends the target's Host itself
  if (values.length > 1) return false;
  const target = normaliseHost(url.hostname);
  return !("error" in target) && authorityMatches(values[0]!, target, port);
}

export async function handleHttp(
  ctx: ProxyContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const started = Date.now();
  const rawUrl = req.url ?? "";
  const method = req.method ?? "GET";
  let url: URL | undefined;
  if (/^http:\/\//i.test(rawUrl)) {
    try {
      url = new URL(rawUrl);
    } catch {}
  }
  const target: Target = {
    kind: "http",
    rawHost: url?.hostname ?? "",
    port: url ? Number(url.port || 80) : 0,
    method,
  };
  if (!url) {
    // Origin-form ("GET /") means the client thinks we are the origin; https:// in absolute form would
    // ask the proxy to speak TLS for it. Neither is a request this proxy forwards.
    const reason = rawUrl.startsWith("/")
      ? "not-proxy-request"
      : /^[a-z][a-z0-9+.-]*:/i.test(rawUrl)
        ? "scheme-not-supported"
        : "bad-target";
    target.rawHost = rawUrl.slice(0, 256);
    ctx.emit(denyEvent(ctx, target, started, { ok: false, reason, host: target.rawHost, status: 400 }));
    deny(
      res,
      reason === "scheme-not-supported" ? 403 : 400,
      reason,
      denialBody(method, target.rawHost, 0, reason),
    );
    return;
  }
  target.path = url.pathname;
  if (!ctx.unsafe.skipHostCheck && !hostHeaderAgrees(req.rawHeaders, url, target.port)) {
    const reason = "host-mismatch";
    ctx.emit(denyEvent(ctx, target, started, { ok: false, reason, host: url.hostname, status: 403 }));
    deny(res, 403, reason, denialBody(method, url.hostname, target.port, reason));
    return;
  }
  const result = await authorize(ctx, target);
  if (!result.ok) {
    ctx.emit(denyEvent(ctx, target, started, result));
    deny(
      res,
      result.status,
      result.reason,
      denialBody(method, result.host, target.port, result.reason, result),
    );
    return;
  }
  // Credentials: a sentinel bound elsewhere (or out of scope) stops here; one bound here is swapped.
  let swap: SwapVerdict | undefined;
  let requestPath = url.pathname + url.search;
  let rawHeaders = req.rawHeaders;
  if (ctx.creds) {
    const verdict = ctx.creds.judge(result.host, {
      method,
      target: requestPath,
      pathname: url.pathname,
      rawHeaders,
    });
    if (!verdict.ok) {
      ctx.creds.emit({
        action: "refuse",
        reason: verdict.reason,
        names: [verdict.name],
        host: hostText(result.host),
        port: target.port,
        method,
        path: url.pathname,
        via: "http",
      });
      ctx.emit(
        denyEvent(ctx, target, started, {
          ok: false,
          reason: verdict.reason,
          host: hostText(result.host),
          status: 403,
        }),
      );
      deny(
        res,
        403,
        verdict.reason,
        denialBody(method, hostText(result.host), target.port, `${verdict.reason}: ${verdict.name}`),
      );
      return;
    }
    swap = verdict;
    requestPath = verdict.target;
    rawHeaders = verdict.rawHeaders;
    if (verdict.swapped.length > 0 || verdict.passed.length > 0)
      ctx.creds.emit({
        action: verdict.swapped.length > 0 ? "swap" : "pass",
        names: verdict.swapped.length > 0 ? verdict.swapped : verdict.passed,
        host: hostText(result.host),
        port: target.port,
        method,
        path: url.pathname,
        via: "http",
      });
  }
  const event = allowEvent(ctx, target, started, result);
  const address = result.addresses[0]!;
  event.address = address;

  const { body, resized } = requestBody(req, swap);
  let headers = forwardHeaders(rawHeaders, connectionTokens(rawHeaders));
  if (resized) headers = withoutLength(headers);
  headers.host = url.host;
  let upstream: ReturnType<typeof httpRequest>;
  try {
    upstream = httpRequest({
      host: address,
      port: target.port,
      method,
      path: requestPath,
      headers,
      agent: ctx.agent,
      setHost: false,
    });
  } catch {
    // node refuses to send some header values its parser let in; refuse the request rather than crash.
    event.error = "bad-request";
    event.durationMs = Date.now() - started;
    ctx.emit(event);
    deny(res, 400, "bad-request", denialBody(method, event.host, target.port, "bad-request"));
    return;
  }
  let upSocket: Socket | undefined;
  let base = { read: 0, written: 0 };
  let done = false;
  const finish = (error?: string) => {
    if (done) return;
    done = true;
    if (upSocket) {
      event.bytesUp = upSocket.bytesWritten - base.written;
      event.bytesDown = upSocket.bytesRead - base.read;
    }
    event.durationMs = Date.now() - started;
    if (error) event.error = error;
    ctx.emit(event);
  };
  upstream.on("socket", (s: Socket) => {
    upSocket = s;
    base = { read: s.bytesRead, written: s.bytesWritten };
  });
  upstream.setTimeout(ctx.limits.idleTimeoutMs, () => upstream.destroy(new Error("idle-timeout")));
  upstream.on("error", (err: NodeJS.ErrnoException) => {
    const code =
      err.message === "idle-timeout"
        ? "idle-timeout"
        : err.code === "ECONNREFUSED"
          ? "connect-refused"
          : "upstream-error";
    finish(code);
    if (!res.headersSent) {
      const body = `fourwall egress: ${code}\n`;
      res.writeHead(code === "idle-timeout" ? 504 : 502, {
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Length": Buffer.byteLength(body),
        "X-Fourwall-Error": code,
        Connection: "close",
      });
      res.end(body);
    } else res.destroy();
  });
  const inputRule = ctx.creds?.inputRule(result.host);
  upstream.on("response", (upRes) => {
    const drop = connectionTokens(upRes.rawHeaders);
    if (swap || inputRule) {
      relayResponse(upRes, res, (raw) => forwardHeaders(raw, drop), {
        verdict: swap,
        rule: inputRule,
        info: { host: hostText(result.host), method, url: url.href },
        blocked: (reason) => {
          ctx.creds?.emit({
            action: "input-blocked",
            reason,
            host: hostText(result.host),
            port: target.port,
            method,
            path: url.pathname,
            via: "http",
          });
          deny(res, 403, reason, denialBody(method, hostText(result.host), target.port, reason));
          finish(reason);
        },
        done: (error) => {
          if (error === "input-too-large")
            ctx.creds?.emit({
              action: "input-blocked",
              reason: error,
              host: hostText(result.host),
              port: target.port,
              method,
              path: url.pathname,
              via: "http",
            });
          finish(error);
        },
      }).catch(() => {
        res.destroy();
        finish("upstream-error");
      });
      return;
    }
    try {
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, forwardHeaders(upRes.rawHeaders, drop));
    } catch {
      upstream.destroy();
      res.destroy();
      finish("upstream-error");
      return;
    }
    upRes.pipe(res);
    upRes.on("error", () => res.destroy());
    upRes.on("end", () => finish());
  });
  // The client went away before the answer was complete: stop the upstream request too.
  res.on("close", () => {
    if (!res.writableFinished) {
      upstream.destroy();
      finish("client-closed");
    }
  });
  if (body !== req)
    body.on("error", (err) => {
      // a sentinel bound elsewhere in the body: nothing of it went on (StreamReplace holds it back)
      upstream.destroy();
      if (err instanceof SentinelInBody) {
        ctx.creds?.emit({
          action: "refuse",
          reason: "credential-exfiltration",
          names: [err.credential],
          host: hostText(result.host),
          port: target.port,
          method,
          path: url.pathname,
          via: "http",
        });
        event.decision = "deny";
        event.reason = "credential-exfiltration";
        deny(
          res,
          403,
          "credential-exfiltration",
          denialBody(method, hostText(result.host), target.port, "credential-exfiltration"),
        );
      } else res.destroy();
      finish();
    });
  body.pipe(upstream);
}
