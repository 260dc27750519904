import { connect, type Socket } from "node:net";
import { hostText, type NormalHost, normaliseHost } from "../rules/hostname.js";
import { readClientHello } from "./sni.js";
import { handOffQuiet } from "./splice.js";
import type { EgressEvent, ProxyContext } from "./types.js";

// Upstream connection and byte shuttling for CONNECT and SOCKS. The only per-chunk work is the SNI peek
// on the client's first flight; after that both directions are plain pipe() with backpressure, and the
// byte counts come from the upstream socket's own counters at the end.

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

function sniMatches(target: NormalHost, sni: string | undefined): boolean {
  // An IP target: a standard client sends no SNI (RFC 6066 forbids addresses there).
  if (target.kind === "ip") return sni === undefined;
  if (sni === undefined) return false;
  const norm = normaliseHost(sni);
  return !("error" in norm) && norm.kind === "name" && norm.name === target.name;
}

/**
 * Joins client and upstream. `head` holds bytes the client already sent. If the client's first flight is
 * a TLS ClientHello whose SNI names another host than the target (or none), the tunnel is closed and a
 * deny event is emitted instead of the allow event.
 */
export function runTunnel(
  ctx: ProxyContext,
  client: Socket,
  upstream: Socket,
  head: Buffer,
  target: NormalHost,
  event: EgressEvent,
  started: number,
): void {
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
  upstream.pipe(client);

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
    client.pipe(upstream);
    if (threshold > 0) {
      client.on("data", watchBulk);
      upstream.on("data", watchBulk);
    }
  };
  if (ctx.unsafe.skipSniCheck) {
    start(head);
    return;
  }
  let seen = head;
  const judge = (): boolean => {
    const hello = readClientHello(seen);
    if (hello.state === "more") return false;
    if (hello.state === "hello") {
      if (hello.sni !== undefined) event.sni = hello.sni.slice(0, 256);
      if (sniMatches(target, hello.sni)) {
        start(seen);
        return true;
      }
    }
    if (hello.state === "not-tls") {
      start(seen);
      return true;
    }
    // Mismatch, missing SNI for a named target, or a malformed hello: fail closed.
    denied = true;
    event.decision = "deny";
    delete event.rule;
    event.reason =
      hello.state === "bad" ? "tls-malformed" : hello.sni === undefined ? "sni-missing" : "sni-mismatch";
    event.bytesUp = 0;
    event.bytesDown = upstream.bytesRead;
    event.durationMs = Date.now() - started;
    ctx.emit(event);
    finish();
    return true;
  };
  if (seen.length > 0 && judge()) return;
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    client.pause();
    if (judge()) {
      client.removeListener("data", onData);
      return;
    }
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
