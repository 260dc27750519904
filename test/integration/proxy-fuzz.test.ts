import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import { after, before, test } from "node:test";
import { type EgressEvent, type ProxyHandle, startProxy } from "../../src/walls/egress/proxy/proxy.js";
import { compileEgressPlan } from "../../src/walls/egress/rules/rules.js";
import { egressSchema } from "../../src/walls/egress/schema.js";
import { curlVia, type Origin, startCanary, startHttpOrigin, testLookup } from "../helpers/origins.js";

// Thousands of malformed and hostile inputs from a seeded PRNG (FUZZ_SEED=n to replay one run):
// request lines, headers, CONNECT targets, truncated or corrupted TLS records, SOCKS frames. The proxy
// must not crash, must never open a connection to the canary (a loopback port no rule allows, reachable
// by many spellings), must release every socket, and its memory must stay bounded.

const SEED = Number(process.env.FUZZ_SEED ?? 20261126);
const CASES = Number(process.env.FUZZ_CASES ?? 3000);
const PARALLEL = 48;

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let canary: Origin;
let origin: Origin;
let proxy: ProxyHandle;
const events: EgressEvent[] = [];

before(async () => {
  [canary, origin] = await Promise.all([startCanary(), startHttpOrigin()]);
  proxy = await startProxy({
    plan: compileEgressPlan(
      egressSchema.parse({
        allow: [`allowed.test:${origin.port}`, "*.wild.test", `getonly.test:${origin.port}`],
        deny: [`bad.wild.test`],
        resolve: [
          "allowed.test=127.0.0.1",
          "canary.test=127.0.0.1",
          "getonly.test=127.0.0.1",
          "x.wild.test=127.0.0.1",
        ],
        methods: { "getonly.test": ["GET"] },
      }),
    ),
    box: "fuzz",
    lookup: testLookup(),
    listen: [{ port: 0 }],
    limits: { headerTimeoutMs: 400, idleTimeoutMs: 1500, connectTimeoutMs: 500, maxHeaderBytes: 8192 },
    onDecision: (e) => {
      if (events.length < 20000) events.push(e);
    },
  });
});

after(async () => {
  await Promise.all([proxy?.close(), canary?.close(), origin?.close()]);
});

function makeGenerator(rand: () => number, cp: number, hp: number) {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const maybe = (p: number) => rand() < p;

  // Spellings of the canary: every one of them must be refused.
  const canaryHosts = [
    "canary.test",
    "CANARY.TEST.",
    "127.0.0.1",
    "0x7f.1",
    "2130706433",
    "017700000001",
    "127.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "localhost",
    "allowed.test",
    "x.wild.test",
    "bad.wild.test",
    "%61llowed.test",
    "allowed.test%00.evil",
    "allowed.test\t",
    "ａｌｌｏｗｅｄ.test",
  ];
  const target = () => `${pick(canaryHosts)}:${maybe(0.9) ? cp : pick([0, 65536, -1, 99999999, "x", ""])}`;
  const methods = [
    "GET",
    "POST",
    "HEAD",
    "PUT",
    "DELETE",
    "OPTIONS",
    "PATCH",
    "CONNECT",
    "TRACE",
    "FOO",
    "get",
    "G ET",
    "",
  ];
  const headerNames = [
    "Host",
    "host",
    "HOST",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Proxy-Connection",
    "Upgrade",
    "Expect",
    "X-A",
  ];
  const headerValues = () =>
    pick([
      `canary.test:${cp}`,
      `allowed.test:${hp}`,
      "chunked",
      "chunked, identity",
      "0",
      "-1",
      "18446744073709551616",
      "100-continue",
      "close",
      "keep-alive, Upgrade",
      "websocket",
      "a".repeat(int(12000)),
      "\x00\x01",
      "x\r\nHost: canary.test",
      bytes(int(40)).toString("latin1"),
    ]);
  const headers = () => {
    const n = int(6);
    let out = "";
    for (let i = 0; i < n; i++)
      out += `${pick(headerNames)}:${maybe(0.8) ? " " : ""}${headerValues()}${pick(["\r\n", "\n", "\r\n", "\r"])}`;
    return out;
  };

  const u16 = (n: number) => Buffer.from([(n >> 8) & 255, n & 255]);
  const clientHello = (sni: string) => {
    const name = Buffer.from(sni, "latin1");
    const ext = Buffer.concat([
      u16(0),
      u16(name.length + 5),
      u16(name.length + 3),
      Buffer.from([0]),
      u16(name.length),
      name,
    ]);
    const body = Buffer.concat([
      u16(0x0303),
      bytes(32),
      Buffer.from([0]),
      u16(2),
      Buffer.from([0x13, 0x01]),
      Buffer.from([1, 0]),
      u16(ext.length),
      ext,
    ]);
    const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 255]), body]);
    return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs]);
  };
  const mutate = (b: Buffer) => {
    const c = Buffer.from(b);
    const n = 1 + int(4);
    for (let i = 0; i < n; i++) c[int(c.length)] = int(256);
    return maybe(0.5) ? c.subarray(0, int(c.length)) : c;
  };

  const httpCase = () => {
    const scheme = pick(["http://", "http://", "HTTP://", "https://", "ftp://", "", "//"]);
    const path = pick(["/", "/a/../b", "/%2e%2e/", "/\\..\\", "?x", "", "/ /", "/\x00"]);
    const line = `${pick(methods)} ${scheme}${target()}${path} ${pick(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", ""])}`;
    let text = `${line}\r\n${headers()}${maybe(0.8) ? "\r\n" : ""}${maybe(0.3) ? bytes(int(64)).toString("latin1") : ""}`;
    if (maybe(0.2)) text = text.slice(0, int(text.length));
    return Buffer.from(text, "latin1");
  };
  const connectCase = () => {
    const host = maybe(0.2) ? `allowed.test:${hp}` : target();
    const head = Buffer.from(`CONNECT ${host} HTTP/1.1\r\n${headers()}\r\n`, "latin1");
    const sni = pick([
      "canary.test",
      "allowed.test",
      "other.test",
      "",
      "a".repeat(300),
      "allowed.test\x00canary",
    ]);
    const tail = pick([
      () => clientHello(sni),
      () => mutate(clientHello(sni)),
      () => bytes(int(200)),
      () => Buffer.from([0x16, 3, 1, 0xff, 0xff]),
      () => Buffer.alloc(0),
    ])();
    return Buffer.concat([head, tail]);
  };
  const socksCase = () => {
    const atyp = pick([1, 3, 4, 0, 9]);
    let addr: Buffer;
    if (atyp === 1) addr = Buffer.from([127, 0, 0, int(3)]);
    else if (atyp === 4) addr = Buffer.from([...new Array(15).fill(0), 1]);
    else if (atyp === 3) {
      const name = Buffer.from(
        pick(["canary.test", "localhost", "127.0.0.1", "0x7f.1", "allowed.test", "[::1]", "x.wild.test", ""]),
        "latin1",
      );
      addr = Buffer.concat([Buffer.from([name.length]), name]);
    } else addr = bytes(int(20));
    const port = maybe(0.9) ? cp : int(65536);
    const greet = maybe(0.9)
      ? Buffer.from([5, 1, 0])
      : Buffer.concat([Buffer.from([5, int(256)]), bytes(int(10))]);
    const req = Buffer.concat([
      Buffer.from([5, pick([1, 1, 1, 2, 3, 0]), pick([0, 0, 1]), atyp]),
      addr,
      u16(port),
    ]);
    let all = Buffer.concat([greet, req, maybe(0.3) ? clientHello("canary.test") : Buffer.alloc(0)]);
    if (maybe(0.25)) all = all.subarray(0, int(all.length));
    if (maybe(0.15)) all = mutate(all);
    return all;
  };
  const garbageCase = () =>
    maybe(0.5) ? bytes(1 + int(300)) : Buffer.concat([Buffer.from([5]), bytes(int(30))]);

  return () => pick([httpCase, httpCase, connectCase, connectCase, socksCase, socksCase, garbageCase])();
}

/** Sends one case, half-closes, and waits (bounded) for the proxy to hang up. */
function fire(port: number, data: Buffer, split: boolean): Promise<void> {
  return new Promise((resolve) => {
    const s = netConnect({ host: "127.0.0.1", port });
    const timer = setTimeout(() => s.destroy(), 1200);
    s.on("error", () => {});
    s.on("data", () => {});
    s.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
    s.on("connect", () => {
      if (split && data.length > 2) {
        // Fragmented delivery exercises every "need more bytes" path.
        const cut = 1 + Math.floor(data.length / 2);
        s.write(data.subarray(0, cut));
        setTimeout(() => s.end(data.subarray(cut)), 5);
      } else s.end(data);
    });
  });
}

test(`fuzz: ${CASES} hostile inputs (seed ${SEED}) never crash, never reach the canary, leave no sockets, bounded memory`, async (t) => {
  const port = (proxy.listeners[0] as { port: number }).port;
  const rand = mulberry32(SEED);
  const next = makeGenerator(rand, canary.port, origin.port);
  let done = 0;
  let rssAfterWarmup = 0;
  const worker = async () => {
    while (done < CASES) {
      done++;
      if (done === 300) rssAfterWarmup = process.memoryUsage().rss;
      await fire(port, next(), rand() < 0.3);
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  const elapsed = Date.now() - t0;

  assert.equal(canary.hits, 0, "the canary saw a connection: a denied target was reached");
  // Every socket is released once clients are gone (tunnels to the allowed origin end with their clients).
  const end = Date.now() + 3000;
  while (proxy.openSockets() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
  assert.equal(proxy.openSockets(), 0, "sockets left open after the fuzz run");
  const growth = (process.memoryUsage().rss - rssAfterWarmup) / 1024 / 1024;
  assert.ok(growth < 96, `RSS grew by ${growth.toFixed(1)} MiB`);
  // Allowed traffic during the run can only have gone to the allowed origin.
  for (const e of events) if (e.decision === "allow") assert.equal(e.port, origin.port, JSON.stringify(e));
  const denials = events.filter((e) => e.decision === "deny").length;
  assert.ok(denials > CASES / 4, `only ${denials} denials recorded`);
  // Still serving after all that.
  const ok = await curlVia(proxy.url!, `http://allowed.test:${origin.port}/after-fuzz`);
  assert.match(ok.body, /origin=http method=GET url=\/after-fuzz/);
  t.diagnostic(`cases=${CASES} elapsed=${elapsed}ms denials=${denials} rssGrowth=${growth.toFixed(1)}MiB`);
});

test("fuzz control: the same generator against a leaky proxy does reach the canary", async () => {
  const leaky = await startProxy({
    plan: compileEgressPlan(egressSchema.parse({ resolve: ["canary.test=127.0.0.1"] })),
    listen: [{ port: 0 }],
    lookup: testLookup(),
    limits: { headerTimeoutMs: 400, idleTimeoutMs: 1500, connectTimeoutMs: 500 },
    unsafeForTests: { allowAll: true, skipAddressGuard: true, skipSniCheck: true, skipHostCheck: true },
  });
  try {
    const before = canary.hits;
    const rand = mulberry32(SEED + 1);
    const next = makeGenerator(rand, canary.port, origin.port);
    const port = (leaky.listeners[0] as { port: number }).port;
    for (let i = 0; i < 200 && canary.hits === before; i += 20) {
      await Promise.all(Array.from({ length: 20 }, () => fire(port, next(), false)));
    }
    assert.ok(canary.hits > before, "a leaky proxy should have let some fuzz case reach the canary");
  } finally {
    await leaky.close();
  }
});
