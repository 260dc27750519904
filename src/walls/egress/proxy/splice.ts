import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import type { Socket } from "node:net";
import { nativeHelperPath } from "../../../core/paths.js";

// The bulk data path of tunnels (native/fourwall-splice.c). Node copies every byte through user space
// and a JavaScript callback; once a vetted tunnel has shown it is a bulk transfer, the proxy hands its
// two sockets to one helper process per proxy, which moves the bytes with splice(2) inside the kernel
// and reports the byte counts when the tunnel ends. Short exchanges never pay for the hand-off.
// Without the helper (not built) tunnels simply stay in Node.

export const spliceHelperPath = () => nativeHelperPath("splice");

export interface SpliceResult {
  up: number;
  down: number;
  error?: string;
}

interface ChannelHandle {
  unref?: () => void;
  ref?: () => void;
}

export class Splicer {
  private child: ChildProcess | undefined;
  private dead = false;
  private nextId = 1;
  private readonly waiting = new Map<number, (result: SpliceResult) => void>();
  private exited: Promise<void> | undefined;

  constructor(
    private readonly helper: string,
    private readonly idleMs: number,
  ) {}

  /** A splicer when the helper is built; undefined otherwise (tunnels then stay in Node). */
  static create(idleMs: number, helper = spliceHelperPath()): Splicer | undefined {
    return existsSync(helper) ? new Splicer(helper, idleMs) : undefined;
  }

  get available(): boolean {
    return !this.dead;
  }

  /** Tunnels the helper is carrying now. */
  live(): number {
    return this.waiting.size;
  }

  /** Tunnels handed to the helper so far. */
  adopted(): number {
    return this.nextId - 1;
  }

  private start(): ChildProcess | undefined {
    if (this.child) return this.child;
    if (this.dead) return undefined;
    const child = spawn(this.helper, [String(this.idleMs)], {
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    });
    this.child = child;
    child.on("message", (m: { t?: string; id?: number; up?: number; down?: number; error?: string }) => {
      if (m?.t !== "closed" || typeof m.id !== "number") return;
      const done = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      const result: SpliceResult = { up: Number(m.up) || 0, down: Number(m.down) || 0 };
      if (m.error && m.error !== "proxy-closed") result.error = m.error;
      done?.(result);
      this.idle();
    });
    child.on("error", () => {});
    // Gone once it has exited and its last reports are read (the channel has closed).
    const ended = Promise.all([
      new Promise((r) => child.once("exit", r)),
      new Promise((r) => child.once("disconnect", r)),
    ]);
    this.exited = ended.then(() => {
      this.dead = true;
      for (const [id, done] of this.waiting) {
        this.waiting.delete(id);
        done({ up: 0, down: 0, error: "splice-exited" });
      }
    });
    this.idle();
    return child;
  }

  /** The helper holds the proxy's process alive only while it carries tunnels. */
  private idle(): void {
    const channel = this.child?.channel as ChannelHandle | undefined;
    if (this.waiting.size === 0) {
      this.child?.unref();
      channel?.unref?.();
    } else {
      this.child?.ref();
      channel?.ref?.();
    }
  }

  /**
   * Hands both sockets over (Node closes its own handles once they are sent). The sockets must be
   * quiescent: not reading, nothing left to write. `onClosed` gets the bytes moved after the hand-off.
   */
  adopt(client: Socket, upstream: Socket, onClosed: (result: SpliceResult) => void): boolean {
    const child = this.start();
    if (!child?.connected) return false;
    const id = this.nextId++;
    this.waiting.set(id, onClosed);
    this.idle();
    const failed = (error: Error | null) => {
      if (!error || !this.waiting.has(id)) return;
      this.waiting.delete(id);
      client.destroy();
      upstream.destroy();
      onClosed({ up: 0, down: 0, error: "splice-failed" });
    };
    child.send({ id, side: "c" }, client, failed);
    child.send({ id, side: "u" }, upstream, failed);
    return true;
  }

  /** Ends every tunnel the helper carries (each is reported) and the helper. */
  async close(): Promise<void> {
    const child = this.child;
    this.dead = true;
    if (!child || !this.exited) return;
    if (child.connected) child.send({ t: "shutdown" });
    const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** What Node has read from `socket` and not yet passed on (the stream is no longer flowing). */
function drainReadable(socket: Socket): Buffer[] {
  const out: Buffer[] = [];
  for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null)
    out.push(chunk);
  return out;
}

/** Stops libuv reading the socket (Node's own pause() keeps reading up to its high-water mark). */
function stopReading(socket: Socket): void {
  const handle = (socket as unknown as { _handle?: { reading?: boolean; readStop?: () => number } })._handle;
  if (handle?.readStop) {
    handle.reading = false;
    handle.readStop();
  }
}

/** Writes `chunks` and resolves once `socket` has nothing left to write. */
function flush(socket: Socket, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) socket.write(c);
  if (socket.writableLength === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      socket.removeListener("drain", done);
      socket.removeListener("close", done);
      resolve();
    };
    socket.once("drain", done);
    socket.once("close", done);
  });
}

const isOpen = (s: Socket) => !s.destroyed && !s.readableEnded && !s.writableEnded && s.readyState === "open";

/**
 * Hands a pair of sockets that pipe() or relay() into each other to the splicer without losing or reordering a
 * byte: unpipe, take back what Node already read, stop reading, write it on, wait until both sides
 * have flushed, then `detach` (the caller's listeners and bookkeeping) and send both handles.
 * "not-now": nothing was touched (a half-closed tunnel, no helper): it keeps running in Node.
 * "closed": a side closed while quiescing: the caller finishes the tunnel the ordinary way.
 */
export async function handOffQuiet(
  splicer: Splicer,
  client: Socket,
  upstream: Socket,
  hooks: { unrelay?(): void; detach(): void; onClosed(result: SpliceResult): void },
): Promise<"handed-off" | "not-now" | "closed" | "failed"> {
  if (!splicer.available || !isOpen(client) || !isOpen(upstream)) return "not-now";
  // the relay stops: pipe()'s (squid's forwarder) or the tunnel's own (tunnel.ts relay())
  client.unpipe(upstream);
  upstream.unpipe(client);
  hooks.unrelay?.();
  const toUpstream = drainReadable(client);
  const toClient = drainReadable(upstream);
  stopReading(client);
  stopReading(upstream);
  await Promise.all([flush(upstream, toUpstream), flush(client, toClient)]);
  if (!isOpen(client) || !isOpen(upstream)) return "closed";
  hooks.detach();
  // Node closes its own handles once they are sent; nothing of ours listens any more.
  client.on("error", () => {});
  upstream.on("error", () => {});
  return splicer.adopt(client, upstream, hooks.onClosed) ? "handed-off" : "failed";
}
