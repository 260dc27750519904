import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { allowEvent, authorize, denialBody, denyEvent, type Target } from "./authorize.js";
import { openUpstream, startTunnel } from "./tunnel.js";
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

export function handleConnect(
  ctx: ProxyContext,
  req: IncomingMessage,
  client: Socket,
  head: Buffer,
): Promise<void> {
  return handleConnectTarget(ctx, req.url ?? "", client, head);
}

/** CONNECT `url` (host:port) for a client whose request head has been read; `head`: bytes after it. */
export async function handleConnectTarget(
  ctx: ProxyContext,
  url: string,
  client: Socket,
  head: Buffer,
): Promise<void> {
  const started = Date.now();
  client.on("error", () => client.destroy());
  // No timer here: the request line is complete, and authorize() and openUpstream() bound their own
  // waits (lookup, ask, connect), so a held "ask" is not cut short by a header timeout.
  client.setTimeout(0);
  const m = TARGET.exec(url);
  const target: Target = {
    kind: "connect",
    rawHost: m?.[1] ?? url.slice(0, 256),
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
      denialBody("CONNECT", result.host, target.port, result.reason, result),
    );
    return;
  }
  if (client.destroyed) return;
  const event = allowEvent(ctx, target, started, result);
  // A host a credential is bound to (or the input gate screens): the proxy opens the tunnel up.
  if (ctx.creds && result.tunnel !== "raw" && ctx.creds.terminates(result.host)) {
    const { terminateTunnel } = await import("./terminate.js");
    terminateTunnel(
      ctx,
      client,
      "HTTP/1.1 200 Connection Established\r\n\r\n",
      head,
      { host: result.host, port: target.port, addresses: result.addresses, check: result.tunnel },
      event,
      started,
    );
    return;
  }
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
  startTunnel(
    ctx,
    client,
    up.socket,
    "HTTP/1.1 200 Connection Established\r\n\r\n",
    head,
    { host: result.host, port: target.port, check: result.tunnel },
    event,
    started,
  );
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A control character other than horizontal tab. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}
const REQUEST_LINE = /^CONNECT ([\x21-\x7e]{1,2048}) HTTP\/1\.[01]$/;

/**
 * The fast path for the common case: a whole, plain CONNECT head in the client's first chunk is read
 * here, without node:http's per-connection parser and request objects (a new tunnel's latency is
 * mostly such per-connection work). Anything unusual (a partial head, a folded or malformed header,
 * a control character) returns undefined, and node:http parses it as before, with its own errors.
 */
export function parseConnectHead(chunk: Buffer, maxBytes: number): { url: string; rest: Buffer } | undefined {
  const end = chunk.indexOf("\r\n\r\n");
  if (end < 0 || end + 4 > maxBytes) return undefined;
  const lines = chunk.toString("latin1", 0, end).split("\r\n");
  const m = REQUEST_LINE.exec(lines[0]!);
  if (!m) return undefined;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) return undefined;
    // obs-fold, NUL, CR/LF or another control character in a value: let node:http judge it
    if (hasControl(line.slice(colon + 1))) return undefined;
  }
  return { url: m[1]!, rest: chunk.subarray(end + 4) };
}
