import { connect, type Socket } from "node:net";
import { refusalText } from "../rules/explain.js";
import { hostText, type NormalHost, normaliseHost } from "../rules/hostname.js";
import type { TunnelCheck } from "../rules/rules.js";
import { readClientHello } from "./sni.js";
import { handOffQuiet } from "./splice.js";
import { TunnelHttpInspector } from "./tunnel-http.js";
import type { EgressEvent, ProxyContext } from "./types.js";

// Upstream connection and byte shuttling for CONNECT and SOCKS. The only per-chunk work is the SNI peek
// on the client's first flight; after that both directions are relayed with backpressure (relay(), a
// lighter pipe()), and the byte counts come from the upstream socket's own counters at the end.

/**
 * `from` → `to` with backpressure, ending `to` when `from` ends: what pipe() does for two sockets whose
 * errors and closes the tunnel handles itself, with two listeners instead of pipe()'s nine closures
 * per direction (a new tunnel's latency and an open tunnel's memory are mostly such per-socket
 * objects). The returned stop() detaches and pauses `from`, as unpipe() does.
 */
export function relay(from: Socket, to: Socket): () => void {
  const onDrain = () => from.resume();
  const onData = (chunk: Buffer) => {
    if (!to.write(chunk)) {
      from.pause();
      to.once("drain", onDrain);
    }
  };
  const onEnd = () => to.end();
  from.on("data", onData);
  from.once("end", onEnd);
  from.resume();
  return () => {
    from.removeListener("data", onData);
    from.removeListener("end", onEnd);
    to.removeListener("drain", onDrain);
    from.pause();
  };
}

export type ConnectFailure = "connect-refused" | "connect-timeout" | "connect-unreachable" | "connect-failed";

/** Connects to the vetted addresses in order (never to a name, so nothing re-resolves). */
export function openUpstream(
  ctx: ProxyContext,
  addresses: string[],
  port: number,
): Promise<{ socket: Socket; address: string } | { error: ConnectFailure; address: string }> {
  const candidates = addresses.slice(0, 4);
  return new Promise((resolve) => {
    let last: ConnectFailure = "connect-failed";
    const attempt = (i: number) => {
      const address = candidates[i];
      if (address === undefined) {
        resolve({ error: last, address: candidates[candidates.length - 1] ?? "" });
        return;
      }
      const socket = connect({ host: address, port, allowHalfOpen: true, noDelay: true });
      ctx.track(socket);
      const timer = setTimeout(() => {
        last = "connect-timeout";
        socket.destroy();
        attempt(i + 1);
      }, ctx.limits.connectTimeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        socket.on("error", () => socket.destroy());
        resolve({ socket, address });
      });
      socket.once("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        socket.destroy();
        last =
          err.code === "ECONNREFUSED"
            ? "connect-refused"
            : err.code === "ENETUNREACH" || err.code === "EHOSTUNREACH"
              ? "connect-unreachable"
              : "connect-failed";
        attempt(i + 1);
      });
    };
    attempt(0);
  });
}

/** The first byte of a TLS record carrying a handshake message (a ClientHello starts with one). */
const TLS_HANDSHAKE = 0x16;

function sniMatches(target: NormalHost, sni: string | undefined): boolean {
  // An IP target: a standard client sends no SNI (RFC 6066 forbids addresses there).
  if (target.kind === "ip") return sni === undefined;
  if (sni === undefined) return false;
  const norm = normaliseHost(sni);
  return !("error" in norm) && norm.kind === "name" && norm.name === target.name;
}

/**
 * Joins client and upstream. `head` holds bytes the client already sent. What the tunnel must carry
 * (`to.check`, from the rules: match.ts tunnelCheck) is judged on its first bytes before any reach the
 * upstream: a TLS ClientHello whose SNI names the target ("tls"; a named target needs an SNI, an IP
 * target must send none), or that or plain HTTP whose every request names the target ("inspect"), or
 * anything ("raw", a tcp:// rule). A refusal closes the tunnel (with a 403 in place of a refused HTTP
 * request) and emits a deny event instead of the allow event.
 */
/**
 * The connection is up: unless the client already left, answer it (`established`: CONNECT's 200 or
 * SOCKS5's success reply) and relay. Shared by CONNECT and SOCKS, which differ only in that reply.
 */
export function startTunnel(
  ctx: ProxyContext,
  client: Socket,
  upstream: Socket,
  established: string | Buffer,
  head: Buffer,
  to: { host: NormalHost; port: number; check: TunnelCheck },
  event: EgressEvent,
  started: number,
): void {
  if (client.destroyed) {
    upstream.destroy();
    return;
  }
  client.setTimeout(0);
  client.setNoDelay(true);
  client.write(established);
  runTunnel(ctx, client, upstream, head, to, event, started);
}

export function runTunnel(
  ctx: ProxyContext,
  client: Socket,
  upstream: Socket,
  head: Buffer,
  to: { host: NormalHost; port: number; check: TunnelCheck },
  event: EgressEvent,
  started: number,
): void {
  const { host: target, port, check } = to;
  let finished = false;
  let denied = false;
  let handedOff = false;
  const finish = (error?: string) => {
    if (finished || handedOff) return;
    finished = true;
    unwatch();
    client.destroy();
    upstream.destroy();
    if (denied) return;
    event.bytesUp = upstream.bytesWritten;
    event.bytesDown = upstream.bytesRead;
    event.durationMs = Date.now() - started;
    if (error) event.error = error;
    ctx.emit(event);
  };
  const unwatch = ctx.idle.watch([client, upstream], () => finish("idle-timeout"));
  // A reset is how many clients and servers end a connection; only other errors are worth recording.
  const quiet = (err: NodeJS.ErrnoException) => err.code === "ECONNRESET" || err.code === "EPIPE";
  const onClientError = (err: NodeJS.ErrnoException) => finish(quiet(err) ? undefined : "client-error");
  const onUpstreamError = (err: NodeJS.ErrnoException) => finish(quiet(err) ? undefined : "upstream-error");
  client.on("error", onClientError);
  upstream.on("error", onUpstreamError);
  // Half-close both ways: a client that sends FIN after its request still gets the whole answer.
  let closed = 0;
  const onClose = () => {
    if (++closed === 2) finish();
  };
  const onClientClose = () => {
    if (!upstream.destroyed) upstream.end();
    onClose();
  };
  const onUpstreamClose = () => {
    if (!client.destroyed) client.end();
    onClose();
  };
  client.on("close", onClientClose);
  upstream.on("close", onUpstreamClose);
  const stopDown = relay(upstream, client);
  let stopUp: (() => void) | undefined;

  // Bulk transfers go to the splice helper once they have carried spliceAfterBytes.
  const threshold = ctx.splicer ? (ctx.limits.spliceAfterBytes ?? 0) : 0;
  const watchBulk = () => {
    if (upstream.bytesRead + upstream.bytesWritten < threshold) return;
    client.removeListener("data", watchBulk);
    upstream.removeListener("data", watchBulk);
    void handOff();
  };
  const handOff = async () => {
    const splicer = ctx.splicer;
    if (!splicer || finished) return;
    handedOff = true;
    const base = { up: upstream.bytesWritten, down: upstream.bytesRead };
    const outcome = await handOffQuiet(splicer, client, upstream, {
      unrelay() {
        stopUp?.();
        stopDown();
      },
      detach() {
        client.removeListener("error", onClientError);
        upstream.removeListener("error", onUpstreamError);
        client.removeListener("close", onClientClose);
        upstream.removeListener("close", onUpstreamClose);
        unwatch();
        ctx.untrack(client);
        ctx.untrack(upstream);
        // bytes Node passed on while quiescing count as before the hand-off
        base.up = upstream.bytesWritten;
        base.down = upstream.bytesRead;
      },
      onClosed(result) {
        finished = true;
        event.bytesUp = base.up + result.up;
        event.bytesDown = base.down + result.down;
        event.durationMs = Date.now() - started;
        if (result.error) event.error = result.error;
        ctx.emit(event);
      },
    });
    handedOff = outcome === "handed-off";
    // a side closed while quiescing, or the helper is gone: finish the ordinary way
    if (outcome === "closed" || outcome === "failed")
      finish(outcome === "failed" ? "splice-failed" : undefined);
  };

  const start = (first: Buffer) => {
    if (first.length > 0) upstream.write(first);
    stopUp = relay(client, upstream);
    if (threshold > 0) {
      client.on("data", watchBulk);
      upstream.on("data", watchBulk);
    }
  };
  // Nothing reaches the upstream before the tunnel's first bytes are judged (and, for plain HTTP,
  // before each request head is); the splice hand-off is armed only in start(), after that.
  let seen = head;
  const deny = (reason: string) => {
    denied = true;
    event.decision = "deny";
    delete event.rule;
    event.reason = reason;
    event.bytesUp = upstream.bytesWritten;
    event.bytesDown = upstream.bytesRead;
    event.durationMs = Date.now() - started;
    ctx.emit(event);
  };
  const judge = (): boolean => {
    if (seen.length === 0) return false;
    if (seen[0] !== TLS_HANDSHAKE) {
      if (check === "tls" && !ctx.unsafe.skipSniCheck) {
        deny("tunnel-not-tls");
        finish();
      } else if (ctx.unsafe.skipHostCheck) start(seen);
      else inspectHttp(seen);
      return true;
    }
    if (ctx.unsafe.skipSniCheck) {
      start(seen);
      return true;
    }
    const hello = readClientHello(seen);
    if (hello.state === "more") return false;
    if (hello.state === "hello") {
      if (hello.sni !== undefined) event.sni = hello.sni.slice(0, 256);
      if (sniMatches(target, hello.sni)) {
        start(seen);
        return true;
      }
    }
    // Mismatch, missing SNI for a named target, or a malformed hello: fail closed.
    deny(
      hello.state === "hello" ? (hello.sni === undefined ? "sni-missing" : "sni-mismatch") : "tls-malformed",
    );
    finish();
    return true;
  };

  // Plain HTTP: every request head on the connection is checked before it is passed on (tunnel-http.ts).
  // These tunnels stay in Node (never spliced): the next head must be seen too.
  const inspectHttp = (first: Buffer) => {
    const inspector = new TunnelHttpInspector(target, port, ctx.limits.maxHeaderBytes, ctx.creds?.sentinels);
    const feed = (chunk: Buffer) => {
      const r = inspector.push(chunk);
      let full = false;
      for (const b of r.forward) if (b.length > 0 && !upstream.write(b)) full = true;
      if (r.denied) {
        client.removeListener("data", feed);
        if (r.denied === "credential-exfiltration")
          ctx.creds?.emit({
            action: "refuse",
            reason: r.denied,
            host: hostText(target),
            port,
            via: "tunnel",
          });
        refuseHttp(r.denied, inspector.requests === 0);
        return;
      }
      if (full) {
        client.pause();
        upstream.once("drain", () => client.resume());
      }
    };
    client.on("data", feed);
    client.once("end", () => {
      if (!denied && !upstream.destroyed) upstream.end();
    });
    feed(first);
    client.resume();
  };
  // The answer to a refused request is a 403 in place of its response: at once when it is the first,
  // else after the origin has answered (and closed on) the requests before it, which were passed on.
  const refuseHttp = (reason: string, first: boolean) => {
    deny(reason);
    client.pause();
    const body = refusalText("a request in the tunnel", { host: hostText(target), port, reason });
    let answered = false;
    const answer = () => {
      if (answered || client.destroyed) return;
      answered = true;
      client.end(
        `HTTP/1.1 403 Forbidden\r\nX-Fourwall-Denied: ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      upstream.destroy();
      setTimeout(() => finish(), 2000).unref();
    };
    stopDown();
    if (first) {
      answer();
      return;
    }
    upstream.on("data", (d: Buffer) => client.write(d));
    upstream.once("end", answer);
    upstream.end();
    setTimeout(answer, 2000).unref();
  };

  if (check === "raw") {
    start(head);
    return;
  }
  if (judge()) return;
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    client.pause();
    client.removeListener("data", onData);
    if (judge()) return;
    client.on("data", onData);
    client.resume();
  };
  // A client that half-closes before its first byte has nothing to say; don't hold the upstream for it.
  const onEnd = () => {
    if (client.listeners("data").includes(onData)) finish();
  };
  client.on("data", onData);
  client.once("end", onEnd);
  client.resume();
}

export { hostText };
