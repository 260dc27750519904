import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { authorize, baseEvent, denialBody, denyEvent, type Target } from "./authorize.js";
import { hostText } from "./host.js";
import { openUpstream, runTunnel } from "./tunnel.js";
import type { ProxyContext } from "./types.js";

// HTTPS (and any other TCP) through CONNECT host:port. The reply to the client comes only after the
// upstream connection exists, so failures are real HTTP statuses rather than a tunnel that dies at once.

const TARGET = /^(\[[0-9a-fA-F:.%]+\]|[^:[\]\s]+):(\d{1,5})$/;

function reply(
  socket: Socket,
  status: number,
  text: string,
  headers: Record<string, string>,
  body: string,
): void {
  const lines = [`HTTP/1.1 ${status} ${text}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  lines.push(
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Connection: close",
  );
  socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
  // The socket is half-open after end(); a client that never closes its side is cut off.
  setTimeout(() => socket.destroy(), 2000).unref();
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  502: "Bad Gateway",
  504: "Gateway Timeout",
};

export async function handleConnect(
  ctx: ProxyContext,
  req: IncomingMessage,
  client: Socket,
  head: Buffer,
): Promise<void> {
  const started = Date.now();
  client.on("error", () => client.destroy());
  // No timer here: the request line is complete, and authorize() and openUpstream() bound their own
  // waits (lookup, ask, connect), so a held "ask" is not cut short by a header timeout.
  client.setTimeout(0);
  const m = TARGET.exec(req.url ?? "");
  const target: Target = {
    kind: "connect",
    rawHost: m?.[1] ?? (req.url ?? "").slice(0, 256),
    port: m ? Number(m[2]) : 0,
  };
  const result = m
    ? await authorize(ctx, target)
    : ({ ok: false, reason: "bad-target", host: target.rawHost, status: 400 } as const);
  if (!result.ok) {
    ctx.emit(denyEvent(ctx, target, started, result));
    reply(
      client,
      result.status,
      STATUS_TEXT[result.status] ?? "Forbidden",
      { "X-Fourwall-Denied": result.reason },
      denialBody("CONNECT", result.host, target.port, result.reason),
    );
    return;
  }
  if (client.destroyed) return;
  const event = baseEvent(ctx, target, started);
  event.host = hostText(result.host);
  event.decision = "allow";
  event.reason = result.reason;
  if (result.rule) event.rule = result.rule;
  const up = await openUpstream(ctx, result.addresses, target.port);
  event.address = up.address;
  if ("error" in up) {
    event.error = up.error;
    event.durationMs = Date.now() - started;
    ctx.emit(event);
    const status = up.error === "connect-timeout" ? 504 : 502;
    reply(
      client,
      status,
      STATUS_TEXT[status]!,
      { "X-Fourwall-Error": up.error },
      `fourwall egress: ${up.error}\n`,
    );
    return;
  }
  if (client.destroyed) {
    up.socket.destroy();
    return;
  }
  client.setTimeout(0);
  client.setNoDelay(true);
  client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
  runTunnel(ctx, client, up.socket, head, result.host, event, started);
}
