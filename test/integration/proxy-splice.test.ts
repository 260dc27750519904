import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type EgressEvent, type ProxyHandle, startProxy } from "../../src/walls/egress/proxy/proxy.js";
import { spliceHelperPath } from "../../src/walls/egress/proxy/splice.js";
import { compileEgressPlan } from "../../src/walls/egress/rules/rules.js";
import { egressSchema } from "../../src/walls/egress/schema.js";
import { startSquid } from "../../src/walls/egress/squid/squid.js";

// The bulk data path: a tunnel that has carried spliceAfterBytes is handed to native/fourwall-splice,
// which moves its bytes with splice(2). Every byte must arrive intact and in order both ways, half-closes
// must pass through, the audit event must count every byte (before and after the hand-off), idle
// tunnels must still time out, and close() must still end them. All on 127.0.0.1.

const SIZE = 24 << 20;
let server: Server;
let port = 0;
const digest = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/**
 * The origin: reads "<upload bytes> <download bytes>\n", then sends `download` random bytes and, at
 * once, reads `upload` bytes; after the client's FIN it answers with the sha256 of what it received.
 */
before(async () => {
  server = createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    let header = "";
    const hash = createHash("sha256");
    let body = false;
    s.on("data", (d: Buffer) => {
      if (body) {
        hash.update(d);
        return;
      }
      header += d.toString("latin1");
      const nl = header.indexOf("\n");
      if (nl < 0) return;
      body = true;
      const [, down] = header.slice(0, nl).split(" ").map(Number);
      const rest = Buffer.from(header.slice(nl + 1), "latin1");
      if (rest.length > 0) hash.update(rest);
      const payload = randomBytes(down!);
      s.write(`${digest(payload)}\n`);
      s.write(payload);
    });
    s.on("end", () => s.end(`\nRECEIVED ${hash.digest("hex")}\n`));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});
after(() => new Promise<void>((r) => server.close(() => r())));

async function proxy(limits: Record<string, number> = {}) {
  const events: EgressEvent[] = [];
  const handle = await startProxy({
    plan: compileEgressPlan(egressSchema.parse({ allow: [`tcp://[127.0.0.1/32]:${port}`] })),
    box: "splice",
    listen: [{ port: 0 }],
    onDecision: (e) => events.push(e),
    limits,
  });
  return { handle, events };
}

/** Reads exactly `n` bytes off a paused socket (or rejects when it closes first). */
function readExactly(s: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < n) return;
      s.removeListener("data", onData);
      s.removeListener("close", onClose);
      s.pause();
      if (buf.length > n) s.unshift(buf.subarray(n));
      resolve(buf.subarray(0, n));
    };
    const onClose = () => reject(new Error(`closed after ${buf.length} of ${n} bytes`));
    s.on("data", onData);
    s.once("close", onClose);
    s.resume();
  });
}

/** A tunnel to the origin through the proxy: HTTP CONNECT, or SOCKS5 (no authentication, IPv4 target). */
async function tunnel(handle: ProxyHandle, socks = false): Promise<Socket> {
  const where = handle.url
    ? { host: "127.0.0.1", port: Number(new URL(handle.url).port) }
    : { path: (handle.listeners[0] as { path: string }).path };
  const s = connect({ ...where, allowHalfOpen: true });
  await new Promise((r, j) => s.once("connect", r).once("error", j));
  if (socks) {
    s.write(Buffer.from([5, 1, 0]));
    assert.deepEqual([...(await readExactly(s, 2))], [5, 0]);
    s.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 255]));
    const reply = await readExactly(s, 10);
    assert.equal(reply[1], 0, "SOCKS5 reply: succeeded");
    return s;
  }
  const want = `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`;
  s.write(want);
  const reply = await readExactly(s, "HTTP/1.1 200 Connection Established\r\n\r\n".length);
  assert.match(reply.toString(), /^HTTP\/1\.1 200/);
  return s;
}

/** Uploads `up` random bytes and downloads `down` at the same time; checks both digests. */
async function exchange(s: Socket, up: number, down: number) {
  const payload = randomBytes(up);
  const received: Buffer[] = [];
  const finished = new Promise<Buffer>((resolve, reject) => {
    s.on("data", (d: Buffer) => received.push(d));
    s.on("end", () => resolve(Buffer.concat(received)));
    s.on("error", reject);
    s.resume(); // readExactly left it paused
  });
  s.write(`${up} ${down}\n`);
  s.write(payload, () => s.end()); // half-close after the upload; the answer comes after it
  const all = await finished;
  const nl = all.indexOf("\n");
  const sentDigest = all.subarray(0, nl).toString();
  const tail = all.lastIndexOf("\nRECEIVED ");
  const body = all.subarray(nl + 1, tail);
  assert.equal(body.length, down, "download length");
  assert.equal(digest(body), sentDigest, "download intact");
  assert.equal(
    all
      .subarray(tail + 10)
      .toString()
      .trim(),
    digest(payload),
    "upload intact",
  );
}

/** Asks for `down` random bytes and checks them against the digest the origin sends first; then closes. */
async function download(s: Socket, down: number) {
  let buf = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf("\n");
      if (nl >= 0 && buf.length >= nl + 1 + down) resolve();
    });
    s.on("error", reject);
    s.on("close", () => reject(new Error(`closed after ${buf.length} bytes`)));
    s.resume();
    s.write(`1 ${down}\n`);
  });
  const nl = buf.indexOf("\n");
  assert.equal(
    digest(buf.subarray(nl + 1, nl + 1 + down)),
    buf.subarray(0, nl).toString(),
    "download intact",
  );
  s.destroy();
}

const built = spliceHelperPath();

describe("the splice data path", {
  skip: existsSync(built) ? false : `${built} is not built (npm run setup)`,
}, () => {
  test("a bulk tunnel is handed off; every byte arrives intact both ways; the half-close passes; the event counts all", async () => {
    const { handle, events } = await proxy();
    try {
      const s = await tunnel(handle);
      await exchange(s, SIZE, SIZE);
      assert.equal(handle.splicedTunnels?.(), 1, "the tunnel went to the splice helper");
      await waitFor(() => events.length === 1);
      const e = events[0]!;
      assert.equal(e.decision, "allow");
      assert.ok(e.bytesUp >= SIZE && e.bytesUp < SIZE + 1024, `bytesUp ${e.bytesUp}`);
      assert.ok(e.bytesDown >= SIZE && e.bytesDown < SIZE + 1024, `bytesDown ${e.bytesDown}`);
      assert.equal(e.error, undefined);
      await waitFor(() => handle.openSockets() === 0);
    } finally {
      await handle.close();
    }
  });

  test("a SOCKS5 tunnel is handed off too", async () => {
    const { handle } = await proxy();
    try {
      await exchange(await tunnel(handle, true), 1 << 20, 8 << 20);
      assert.equal(handle.splicedTunnels?.(), 1);
    } finally {
      await handle.close();
    }
  });

  test("short exchanges stay in Node (no hand-off cost for them)", async () => {
    const { handle } = await proxy();
    try {
      await Promise.all(Array.from({ length: 8 }, async () => exchange(await tunnel(handle), 1000, 20_000)));
      assert.equal(handle.splicedTunnels?.(), 0);
    } finally {
      await handle.close();
    }
  });

  test("many bulk tunnels at once", async () => {
    const { handle, events } = await proxy();
    try {
      await Promise.all(
        Array.from({ length: 12 }, async () => exchange(await tunnel(handle), 2 << 20, 2 << 20)),
      );
      assert.equal(handle.splicedTunnels?.(), 12);
      await waitFor(() => events.length === 12);
    } finally {
      await handle.close();
    }
  });

  test("an idle handed-off tunnel still times out, and is reported", async () => {
    const { handle, events } = await proxy({ idleTimeoutMs: 400 });
    try {
      const s = await tunnel(handle);
      s.on("error", () => {});
      s.on("data", () => {});
      s.resume();
      const closed = new Promise((r) => s.once("end", r)); // the proxy's side ends (the client is half-open)
      s.write(`1 ${1 << 20}\n`); // the origin sends 1 MiB, then waits for one byte that never comes
      await closed;
      assert.equal(handle.splicedTunnels?.(), 1);
      await waitFor(() => events.length === 1);
      assert.equal(events[0]!.error, "idle-timeout");
    } finally {
      await handle.close();
    }
  });

  test("close() ends handed-off tunnels too, and reports them", async () => {
    const { handle, events } = await proxy();
    const s = await tunnel(handle);
    s.on("error", () => {});
    s.on("data", () => {});
    s.resume();
    s.write(`1 ${1 << 20}\n`);
    await waitFor(() => handle.splicedTunnels?.() === 1);
    const closed = new Promise((r) => s.once("end", r));
    await handle.close();
    await closed;
    assert.equal(events.length, 1);
    assert.equal(handle.openSockets(), 0);
  });

  test("squid's box-side socket forwarder hands bulk transfers to the helper too", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "fwtest-splice-squid-"));
    chmodSync(dir, 0o711); // squid runs as the proxy user when the tests run as root
    const handle = await startSquid({
      plan: compileEgressPlan(
        egressSchema.parse({ allow: [`tcp://[127.0.0.1/32]:${port}`], proxy: "squid" }),
      ),
      box: "splicesquid",
      socketPath: path.join(dir, "proxy.sock"),
      dir: path.join(dir, "squid"),
    });
    try {
      // squid ends a whole tunnel when the client half-closes, so: download only, then close
      await download(await tunnel(handle), SIZE);
      assert.equal(handle.splicedTunnels?.(), 1);
    } finally {
      await handle.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("without the helper (spliceAfterBytes 0) tunnels stay in Node and still work", async () => {
    const { handle } = await proxy({ spliceAfterBytes: 0 });
    try {
      await exchange(await tunnel(handle), 4 << 20, 4 << 20);
      assert.equal(handle.splicedTunnels?.(), 0);
    } finally {
      await handle.close();
    }
  });
});

async function waitFor(pred: () => boolean, ms = 5000) {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20)))
    if (pred()) return;
  assert.ok(pred(), "timed out waiting");
}
