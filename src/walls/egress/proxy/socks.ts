import type { Socket } from "node:net";
import { formatIPv6 } from "../rules/hostname.js";
import { allowEvent, authorize, denyEvent, type Target } from "./authorize.js";
import { openUpstream, startTunnel } from "./tunnel.js";
import type { ProxyContext } from "./types.js";

// SOCKS5 (RFC 1928), the subset agents use: no authentication, CONNECT only, names resolved here (the
// proxy must see the name to apply rules and to refuse internal addresses). Replies carry the standard
// codes, so `curl --socks5-hostname` reports "not allowed by ruleset" for a denial.

const REP = {
  ok: 0x00,
  failure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  refused: 0x05,
  ttlExpired: 0x06,
  commandUnsupported: 0x07,
  addressUnsupported: 0x08,
} as const;

const MAX_HANDSHAKE = 1024;

function replyCode(socket: Socket, code: number): void {
  // BND.ADDR/PORT are meaningless through this proxy: always 0.0.0.0:0.
  socket.end(Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]));
  setTimeout(() => socket.destroy(), 2000).unref();
}

type Parsed = { need: true } | { error: number } | { host: string; port: number; used: number };

/** Parses the request after the greeting: VER CMD RSV ATYP DST.ADDR DST.PORT. */
function parseRequest(buf: Buffer): Parsed {
  if (buf.length < 4) return { need: true };
  if (buf[0] !== 0x05 || buf[2] !== 0x00) return { error: REP.failure };
  if (buf[1] !== 0x01) return { error: REP.commandUnsupported };
  const atyp = buf[3];
  let host: string;
  let p = 4;
  if (atyp === 0x01) {
    if (buf.length < p + 6) return { need: true };
    host = Array.from(buf.subarray(p, p + 4)).join(".");
    p += 4;
  } else if (atyp === 0x04) {
    if (buf.length < p + 18) return { need: true };
    host = `[${formatIPv6(buf.subarray(p, p + 16))}]`;
    p += 16;
  } else if (atyp === 0x03) {
    if (buf.length < p + 1) return { need: true };
    const len = buf[p]!;
    if (len === 0) return { error: REP.addressUnsupported };
    if (buf.length < p + 1 + len + 2) return { need: true };
    host = buf.toString("latin1", p + 1, p + 1 + len);
    p += 1 + len;
  } else return { error: REP.addressUnsupported };
  return { host, port: buf.readUInt16BE(p), used: p + 2 };
}

export function handleSocks(ctx: ProxyContext, client: Socket, first: Buffer): void {
  const started = Date.now();
  let buf = first;
  let stage = "greeting" as "greeting" | "request" | "busy";
  client.setTimeout(ctx.limits.headerTimeoutMs, () => client.destroy());

  const step = () => {
    if (stage === "greeting") {
      if (buf.length < 2) return;
      const n = buf[1]!;
      if (buf.length < 2 + n) return;
      const methods = buf.subarray(2, 2 + n);
      buf = buf.subarray(2 + n);
      if (!methods.includes(0x00)) {
        client.end(Buffer.from([0x05, 0xff]));
        setTimeout(() => client.destroy(), 2000).unref();
        stage = "busy";
        return;
      }
      client.write(Buffer.from([0x05, 0x00]));
      stage = "request";
    }
    if (stage !== "request") return;
    const parsed = parseRequest(buf);
    if ("need" in parsed) return;
    stage = "busy";
    client.removeListener("data", onData);
    client.pause();
    // The handshake is complete; what follows (lookup, ask, connect) has its own time limits.
    client.setTimeout(0);
    if ("error" in parsed) {
      replyCode(client, parsed.error);
      return;
    }
    void connectTarget(ctx, client, parsed.host, parsed.port, buf.subarray(parsed.used), started).catch(() =>
      client.destroy(),
    );
  };
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    if (buf.length > MAX_HANDSHAKE) {
      client.destroy();
      return;
    }
    step();
  };
  client.on("data", onData);
  step();
  if ((stage as string) !== "busy") client.resume();
}

async function connectTarget(
  ctx: ProxyContext,
  client: Socket,
  host: string,
  port: number,
  head: Buffer,
  started: number,
) {
  const target: Target = { kind: "socks", rawHost: host, port };
  const result =
    port === 0
      ? ({ ok: false, reason: "bad-target", host, status: 400 } as const)
      : await authorize(ctx, target);
  if (!result.ok) {
    ctx.emit(denyEvent(ctx, target, started, result));
    const code =
      result.status === 400
        ? REP.addressUnsupported
        : result.status === 403
          ? REP.notAllowed
          : REP.hostUnreachable;
    replyCode(client, code);
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
      Buffer.from([0x05, REP.ok, 0x00, 0x01, 0, 0, 0, 0, 0, 0]),
      head,
      { host: result.host, port: target.port, addresses: result.addresses, check: result.tunnel },
      event,
      started,
    );
    return;
  }
  const up = await openUpstream(ctx, result.addresses, port);
  event.address = up.address;
  if ("error" in up) {
    event.error = up.error;
    event.durationMs = Date.now() - started;
    ctx.emit(event);
    replyCode(
      client,
      up.error === "connect-refused"
        ? REP.refused
        : up.error === "connect-timeout"
          ? REP.ttlExpired
          : REP.hostUnreachable,
    );
    return;
  }
  startTunnel(
    ctx,
    client,
    up.socket,
    Buffer.from([0x05, REP.ok, 0x00, 0x01, 0, 0, 0, 0, 0, 0]),
    head,
    { host: result.host, port: target.port, check: result.tunnel },
    event,
    started,
  );
}
