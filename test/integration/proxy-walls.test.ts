import assert from "node:assert/strict";
import {
  type AddressInfo,
  createServer as createTcpServer,
  connect as netConnect,
  type Socket,
} from "node:net";
import { after, before, describe, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { type EgressEvent, type ProxyHandle, startProxy } from "../../src/walls/egress/proxy/proxy.js";
import { compileEgressPlan } from "../../src/walls/egress/rules/rules.js";
import { egressSchema } from "../../src/walls/egress/schema.js";
import {
  type Certs,
  curlSocks,
  curlVia,
  makeCerts,
  nodeConnectGet,
  type Origin,
  type Outcome,
  opensslVia,
  pythonVia,
  rawHttp,
  startHttpOrigin,
  startHttpsOrigin,
  testLookup,
} from "../helpers/origins.js";

// Every probe runs twice: against the real proxy, where it must be refused with the expected reason and
// no origin may see a request, and against a deliberately leaky proxy (same plan, rules and guards
// switched off), where the same probe must reach the origin. A probe that passes both ways can tell a
// hole from a wall. All traffic stays on 127.0.0.1; names are *.test pinned or resolved by a stub.

let certs: Certs;
let http: Origin; // the allowed plain-HTTP origin
let http2: Origin; // another port on the same host, never listed
let https: Origin;
let http6: Origin; // plain HTTP on ::1
let sink: Sink; // counts the bytes that reach it: shows whether a tunnel passed anything on
const proxies: Record<"strict" | "leaky", { handle: ProxyHandle; events: EgressEvent[] }> = {} as never;

function policy() {
  const hp = http.port;
  const sp = https.port;
  return egressSchema.parse({
    allow: [
      `allowed.test:${hp},${sp}`,
      `localhost:${hp},${sp}`,
      `rebind.test:${hp},${sp}`,
      `getonly.test:${hp},${sp}`,
      `both.test:${hp},${sp}`,
      `paths.test:${hp}/v2/`,
      `allowed6.test:${http6.port}`,
      `rebind6.test:${http6.port}`,
      `tls://tlsport.test:${hp}`,
      `allowed.test:${sink.port}`,
      `tcp://rawok.test:${sink.port}`,
    ],
    deny: ["both.test"],
    resolve: [
      "allowed.test=127.0.0.1",
      "other.test=127.0.0.1",
      "notlisted.test=127.0.0.1",
      "getonly.test=127.0.0.1",
      "both.test=127.0.0.1",
      "paths.test=127.0.0.1",
      "allowed6.test=::1",
      "tlsport.test=127.0.0.1",
      "rawok.test=127.0.0.1",
      "other6.test=[::1]",
    ],
    methods: { "getonly.test": ["GET", "HEAD"] },
  });
}

// rebind*.test are allowed by name but "DNS" answers with a loopback address: the guard must refuse them.
const lookup = testLookup({ "rebind.test": ["127.0.0.1"], "rebind6.test": ["::1"] });

before(async () => {
  sink = await startSink();
  certs = await makeCerts();
  [http, http2, https, http6] = await Promise.all([
    startHttpOrigin(),
    startHttpOrigin(),
    startHttpsOrigin(certs),
    startHttpOrigin("::1"),
  ]);
  const plan = compileEgressPlan(policy());
  for (const mode of ["strict", "leaky"] as const) {
    const events: EgressEvent[] = [];
    const handle = await startProxy({
      plan,
      box: `walls-${mode}`,
      listen: [{ port: 0 }],
      lookup,
      onDecision: (e) => events.push(e),
      ...(mode === "leaky"
        ? {
            unsafeForTests: {
              allowAll: true,
              skipAddressGuard: true,
              skipSniCheck: true,
              skipHostCheck: true,
            },
          }
        : {}),
    });
    proxies[mode] = { handle, events };
  }
});

after(async () => {
  await Promise.all([
    http6?.close(),
    proxies.strict?.handle.close(),
    proxies.leaky?.handle.close(),
    http?.close(),
    http2?.close(),
    https?.close(),
    sink?.close(),
  ]);
  certs?.cleanup();
});

interface Env {
  url: string;
  port: number;
  hp: number;
  hp6: number;
  hp2: number;
  sp: number;
}

interface Probe {
  name: string;
  reason: string;
  run(env: Env): Promise<Outcome>;
}

const PROBES: Probe[] = [
  {
    name: "unlisted host, plain HTTP (curl)",
    reason: "not-allowed",
    run: (e) => curlVia(e.url, `http://other.test:${e.hp}/`),
  },
  {
    name: "unlisted host, HTTPS via CONNECT (curl)",
    reason: "not-allowed",
    run: (e) => curlVia(e.url, `https://other.test:${e.sp}/`, ["--cacert", certs.cert]),
  },
  {
    name: "unlisted host, SOCKS5 (curl --socks5-hostname)",
    reason: "not-allowed",
    run: (e) => curlSocks(`127.0.0.1:${e.port}`, `https://other.test:${e.sp}/`, ["--cacert", certs.cert]),
  },
  {
    name: "unlisted host (python urllib)",
    reason: "not-allowed",
    run: (e) => pythonVia(e.url, `http://other.test:${e.hp}/`),
  },
  {
    name: "unlisted host over HTTPS (python urllib)",
    reason: "not-allowed",
    run: (e) => pythonVia(e.url, `https://other.test:${e.sp}/`, { ca: certs.cert }),
  },
  {
    name: "name pinned to 127.0.0.1 but not allowed by any rule",
    reason: "not-allowed",
    run: (e) => curlVia(e.url, `http://notlisted.test:${e.hp}/`),
  },
  {
    name: "listed host on an unlisted port",
    reason: "port-not-allowed",
    run: (e) => curlVia(e.url, `http://allowed.test:${e.hp2}/`),
  },
  {
    name: "listed host on an unlisted port via SOCKS5",
    reason: "port-not-allowed",
    run: (e) => curlSocks(`127.0.0.1:${e.port}`, `http://allowed.test:${e.hp2}/`),
  },
  {
    name: "allowed name resolving to loopback (localhost), HTTP",
    reason: "address-loopback",
    run: (e) => curlVia(e.url, `http://localhost:${e.hp}/`),
  },
  {
    name: "allowed name resolving to loopback (localhost), CONNECT",
    reason: "address-loopback",
    run: (e) => curlVia(e.url, `https://localhost:${e.sp}/`, ["-k"]),
  },
  {
    name: "allowed name resolving to loopback (localhost), SOCKS5",
    reason: "address-loopback",
    run: (e) => curlSocks(`127.0.0.1:${e.port}`, `http://localhost:${e.hp}/`),
  },
  {
    name: "DNS rebinding: allowed name answering 127.0.0.1",
    reason: "address-loopback",
    run: (e) => curlVia(e.url, `http://rebind.test:${e.hp}/`),
  },
  {
    name: "raw loopback IP, decimal form 2130706433",
    reason: "not-allowed",
    run: (e) =>
      rawHttp(
        e.port,
        `GET http://2130706433:${e.hp}/ HTTP/1.1\r\nHost: 2130706433:${e.hp}\r\nConnection: close\r\n\r\n`,
      ),
  },
  {
    name: "raw loopback IP, hex form 0x7f.1",
    reason: "not-allowed",
    run: (e) => rawHttp(e.port, `GET http://0x7f.1:${e.hp}/ HTTP/1.1\r\nConnection: close\r\n\r\n`),
  },
  {
    name: "raw loopback IP, IPv4-mapped IPv6 via CONNECT",
    reason: "not-allowed",
    run: (e) =>
      rawHttp(
        e.port,
        `CONNECT [::ffff:127.0.0.1]:${e.hp} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      ),
  },
  {
    name: "raw IPv6 loopback target",
    reason: "not-allowed",
    run: (e) => curlVia(e.url, `http://[::1]:${e.hp6}/`),
  },
  {
    name: "raw IPv6 loopback target via SOCKS5",
    reason: "not-allowed",
    run: (e) => curlSocks(`127.0.0.1:${e.port}`, `http://[::1]:${e.hp6}/`),
  },
  {
    name: "name pinned to ::1 but not allowed",
    reason: "not-allowed",
    run: (e) => curlVia(e.url, `http://other6.test:${e.hp6}/`),
  },
  {
    name: "DNS rebinding to IPv6 loopback: allowed name answering ::1",
    reason: "address-loopback",
    run: (e) => curlVia(e.url, `http://rebind6.test:${e.hp6}/`),
  },
  {
    name: "SNI names another host than the CONNECT target (curl --connect-to)",
    reason: "sni-mismatch",
    run: (e) =>
      curlVia(e.url, `https://other.test:${e.sp}/`, [
        "--cacert",
        certs.cert,
        "--connect-to",
        `other.test:${e.sp}:allowed.test:${e.sp}`,
      ]),
  },
  {
    name: "SNI names another host (node tls through http.request CONNECT)",
    reason: "sni-mismatch",
    run: (e) =>
      nodeConnectGet(e.port, `allowed.test:${e.sp}`, {
        ca: certs.certPem,
        servername: "other.test",
        hostHeader: "other.test",
      }),
  },
  {
    name: "no SNI at all for a named CONNECT target",
    reason: "sni-missing",
    run: (e) =>
      nodeConnectGet(e.port, `allowed.test:${e.sp}`, {
        ca: certs.certPem,
        servername: "",
        hostHeader: "other.test",
      }),
  },
  {
    name: "SNI mismatch through SOCKS5 (curl --connect-to)",
    reason: "sni-mismatch",
    run: (e) =>
      curlSocks(`127.0.0.1:${e.port}`, `https://other.test:${e.sp}/`, [
        "--cacert",
        certs.cert,
        "--connect-to",
        `other.test:${e.sp}:allowed.test:${e.sp}`,
      ]),
  },
  {
    name: "SNI names another host (openssl s_client -proxy)",
    reason: "sni-mismatch",
    run: (e) =>
      opensslVia(
        e.port,
        `allowed.test:${e.sp}`,
        "other.test",
        "GET /openssl HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
      ),
  },
  {
    name: "Host header disagrees with the request target",
    reason: "host-mismatch",
    run: (e) => curlVia(e.url, `http://allowed.test:${e.hp}/`, ["-H", "Host: other.test"]),
  },
  {
    name: "plain HTTP to a port a tls:// rule marks TLS only",
    reason: "tls-required",
    run: (e) => curlVia(e.url, `http://tlsport.test:${e.hp}/`),
  },
  {
    name: "two Host headers",
    reason: "host-mismatch",
    run: (e) =>
      rawHttp(
        e.port,
        `GET http://allowed.test:${e.hp}/ HTTP/1.1\r\nHost: allowed.test:${e.hp}\r\nHost: other.test\r\nConnection: close\r\n\r\n`,
      ),
  },
  {
    name: "POST to a GET/HEAD-only host",
    reason: "method-not-allowed",
    run: (e) => curlVia(e.url, `http://getonly.test:${e.hp}/`, ["-X", "POST", "-d", "x=1"]),
  },
  {
    name: "DELETE to a GET/HEAD-only host (python)",
    reason: "method-not-allowed",
    run: (e) => pythonVia(e.url, `http://getonly.test:${e.hp}/`, { method: "DELETE" }),
  },
  {
    name: "HTTPS tunnel to a GET/HEAD-only host",
    reason: "tunnel-not-inspectable",
    run: (e) => curlVia(e.url, `https://getonly.test:${e.sp}/`, ["-k"]),
  },
  {
    name: "path outside the allowed prefix",
    reason: "path-not-allowed",
    run: (e) => curlVia(e.url, `http://paths.test:${e.hp}/v3/`),
  },
  {
    name: "dot segments climbing out of the allowed prefix",
    reason: "path-not-allowed",
    run: (e) => curlVia(e.url, `http://paths.test:${e.hp}/v2/../admin`, ["--path-as-is"]),
  },
  {
    name: "encoded dot segments climbing out of the allowed prefix",
    reason: "path-not-allowed",
    run: (e) => curlVia(e.url, `http://paths.test:${e.hp}/v2/%2e%2e/admin`, ["--path-as-is"]),
  },
  {
    name: "deny wins over allow (HTTP)",
    reason: "deny-rule",
    run: (e) => curlVia(e.url, `http://both.test:${e.hp}/`),
  },
  {
    name: "deny wins over allow (CONNECT)",
    reason: "deny-rule",
    run: (e) => curlVia(e.url, `https://both.test:${e.sp}/`, ["-k"]),
  },
];

const CONTROLS: Array<{ name: string; run(env: Env): Promise<Outcome>; expect: RegExp }> = [
  {
    name: "allowed host, plain HTTP (curl)",
    run: (e) => curlVia(e.url, `http://allowed.test:${e.hp}/hello`),
    expect: /origin=http method=GET url=\/hello host=allowed\.test:\d+ proxyHeaders=none/,
  },
  {
    name: "allowed host, HTTPS via CONNECT (curl)",
    run: (e) => curlVia(e.url, `https://allowed.test:${e.sp}/x`, ["--cacert", certs.cert]),
    expect: /origin=https method=GET url=\/x host=allowed\.test:\d+ sni=allowed\.test/,
  },
  {
    name: "allowed host, SOCKS5 (curl)",
    run: (e) => curlSocks(`127.0.0.1:${e.port}`, `https://allowed.test:${e.sp}/s`, ["--cacert", certs.cert]),
    expect: /origin=https .*sni=allowed\.test/,
  },
  {
    name: "allowed host (python urllib, HTTPS)",
    run: (e) => pythonVia(e.url, `https://allowed.test:${e.sp}/py`, { ca: certs.cert }),
    expect: /origin=https method=GET url=\/py/,
  },
  {
    name: "allowed host (python urllib, HTTP)",
    run: (e) => pythonVia(e.url, `http://allowed.test:${e.hp}/py`),
    expect: /origin=http method=GET url=\/py/,
  },
  {
    name: "allowed host (node http.request CONNECT)",
    run: (e) =>
      nodeConnectGet(e.port, `allowed.test:${e.sp}`, {
        ca: certs.certPem,
        servername: "allowed.test",
        hostHeader: "allowed.test",
      }),
    expect: /origin=https .*sni=allowed\.test/,
  },
  {
    name: "allowed name pinned to ::1 (IPv6 origin)",
    run: (e) => curlVia(e.url, `http://allowed6.test:${e.hp6}/v6`),
    expect: /origin=http method=GET url=\/v6 host=allowed6\.test/,
  },
  {
    name: "allowed host (openssl s_client -proxy, matching SNI)",
    run: (e) =>
      opensslVia(
        e.port,
        `allowed.test:${e.sp}`,
        "allowed.test",
        "GET /openssl HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n",
      ),
    expect: /origin=https method=GET url=\/openssl .*sni=allowed\.test/,
  },
  {
    name: "GET to a GET/HEAD-only host",
    run: (e) => curlVia(e.url, `http://getonly.test:${e.hp}/`),
    expect: /origin=http method=GET/,
  },
  {
    name: "path inside the allowed prefix",
    run: (e) => curlVia(e.url, `http://paths.test:${e.hp}/v2/x`),
    expect: /origin=http method=GET url=\/v2\/x/,
  },
  {
    name: "Proxy-* and hop-by-hop headers are stripped",
    run: (e) =>
      curlVia(e.url, `http://allowed.test:${e.hp}/`, [
        "-H",
        "Proxy-Authorization: Basic eDp5",
        "-H",
        "Proxy-Foo: 1",
      ]),
    expect: /proxyHeaders=none/,
  },
];

const hits = () => http.hits + http2.hits + https.hits + http6.hits;

for (const mode of ["strict", "leaky"] as const) {
  describe(`${mode} proxy`, () => {
    const env = (): Env => {
      const handle = proxies[mode].handle;
      const port = (handle.listeners[0] as { port: number }).port;
      return { url: handle.url!, port, hp: http.port, hp6: http6.port, hp2: http2.port, sp: https.port };
    };
    for (const probe of PROBES) {
      test(`${probe.name}: ${mode === "strict" ? `refused (${probe.reason})` : "gets through (the probe can see a leak)"}`, async () => {
        const events = proxies[mode].events;
        const seen = events.length;
        const before = hits();
        const out = await probe.run(env());
        if (mode === "strict") {
          assert.equal(out.reached, false, `reached an origin: ${out.body}`);
          assert.equal(hits(), before, "an origin saw a request");
          const reasons = events
            .slice(seen)
            .filter((e) => e.decision === "deny")
            .map((e) => e.reason);
          assert.ok(
            reasons.includes(probe.reason),
            `expected a ${probe.reason} denial, events: ${JSON.stringify(events.slice(seen))}`,
          );
          if (out.denied !== undefined) assert.equal(out.denied, probe.reason);
        } else {
          assert.equal(
            out.reached,
            true,
            `leaky proxy did not pass the probe: exit ${out.exit} ${out.stderr.slice(-300)} ${out.body.slice(0, 300)}`,
          );
          assert.ok(hits() > before);
        }
      });
    }
    for (const control of CONTROLS) {
      test(`control: ${control.name} works`, async () => {
        const out = await control.run(env());
        assert.match(out.body, control.expect, `exit ${out.exit} ${out.stderr.slice(-300)}`);
      });
    }
  });
}

describe("denials are visible to the client", () => {
  test("HTTP 403 with a short body and X-Fourwall-Denied", async () => {
    const handle = proxies.strict.handle;
    const out = await rawHttp(
      (handle.listeners[0] as { port: number }).port,
      `GET http://other.test:${http.port}/ HTTP/1.1\r\nHost: other.test:${http.port}\r\n\r\n`,
    );
    assert.match(out.body, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(out.body, /\r\nX-Fourwall-Denied: not-allowed\r\n/i);
    // what was refused, why, and the flag that would allow it (rules/explain.ts)
    assert.match(
      out.body,
      /fourwall egress: GET to other\.test:(\d+) denied \(not-allowed\): no egress rule allows other\.test:\1\n {2}fix: -a other\.test:\1 \(policy: egress\.allow: \["other\.test:\1"\]\)\n$/,
    );
  });
  test("CONNECT 403 carries the reason header too", async () => {
    const out = await curlVia(proxies.strict.handle.url!, `https://other.test:${https.port}/`, [
      "--cacert",
      certs.cert,
    ]);
    assert.equal(out.denied, "not-allowed");
    assert.match(out.stderr, /CONNECT tunnel failed, response 403/);
  });
  test("SOCKS5 reply code 2 (not allowed by ruleset)", async () => {
    const out = await curlSocks(
      `127.0.0.1:${(proxies.strict.handle.listeners[0] as { port: number }).port}`,
      `http://other.test:${http.port}/`,
    );
    assert.match(out.stderr, /\(2\)/);
  });
});

// ---- tunnels: what rides inside an allowed CONNECT or SOCKS tunnel gets the same checks ----

interface Sink {
  port: number;
  /** Bytes received per connection, in order of connection. */
  received: Buffer[];
  close(): Promise<void>;
}

/** A TCP listener that keeps what each connection sends and answers nothing. */
async function startSink(): Promise<Sink> {
  const received: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createTcpServer((s) => {
    const i = received.push(Buffer.alloc(0)) - 1;
    sockets.add(s);
    s.on("data", (d: Buffer) => {
      received[i] = Buffer.concat([received[i]!, d]);
    });
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A real ClientHello from node's TLS stack for `servername`, as the bytes it sends. */
async function clientHello(servername: string): Promise<Buffer> {
  const got = new Promise<Buffer>((resolve) => {
    const server = createTcpServer((s) => {
      let buf = Buffer.alloc(0);
      s.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
          resolve(buf.subarray(0, 5 + buf.readUInt16BE(3)));
          s.destroy();
          server.close();
        }
      });
    });
    server.listen(0, "127.0.0.1", () => {
      const t = tlsConnect({ host: "127.0.0.1", port: (server.address() as AddressInfo).port, servername });
      t.on("error", () => {});
    });
  });
  return got;
}

/** The same handshake message cut into `parts` TLS records (the ClientHello across several records). */
function reframe(record: Buffer, parts: number): Buffer[] {
  const msg = record.subarray(5);
  const size = Math.ceil(msg.length / parts);
  const out: Buffer[] = [];
  for (let off = 0; off < msg.length; off += size) {
    const frag = msg.subarray(off, off + size);
    out.push(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, frag.length >> 8, frag.length & 0xff]), frag]));
  }
  return out;
}

/**
 * Opens a tunnel through the proxy (CONNECT, or SOCKS5 with a name), then sends each step: bytes to
 * write, each step after the answer to the one before it when `waitFor` says so. Returns everything the
 * client read after the tunnel opened.
 */
async function tunnel(
  proxyPort: number,
  how: "connect" | "socks",
  target: string,
  steps: Array<{ send: Buffer | string; waitFor?: RegExp; pauseMs?: number }>,
): Promise<string> {
  const s = netConnect({ host: "127.0.0.1", port: proxyPort });
  s.on("error", () => {});
  let text = "";
  let opened = false;
  const waiters: Array<() => void> = [];
  s.on("data", (d: Buffer) => {
    text += d.toString("latin1");
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<void>((r) => s.on("close", () => r()));
  const until = (want: RegExp | ((t: string) => boolean), ms = 3000) =>
    new Promise<boolean>((resolve) => {
      const ok = () => (typeof want === "function" ? want(text) : want.test(text));
      const check = () => {
        if (ok()) resolve(true);
        else waiters.push(check);
      };
      setTimeout(() => resolve(false), ms);
      void closed.then(() => resolve(ok()));
      check();
    });
  await new Promise<void>((r) => s.once("connect", () => r()));
  const [name, port] = [
    target.slice(0, target.lastIndexOf(":")),
    Number(target.slice(target.lastIndexOf(":") + 1)),
  ];
  if (how === "connect") {
    s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    opened = await until(/^HTTP\/1\.1 200[^\r]*\r\n\r\n/);
  } else {
    s.write(Buffer.from([5, 1, 0]));
    s.write(
      Buffer.concat([
        Buffer.from([5, 1, 0, 3, name.length]),
        Buffer.from(name),
        Buffer.from([port >> 8, port & 0xff]),
      ]),
    );
    // method reply 05 00, then the request reply 05 00 (succeeded) and 8 more bytes
    opened = await until((t) => t.length >= 12 && t.charCodeAt(1) === 0 && t.charCodeAt(3) === 0);
  }
  const mark = how === "socks" ? 12 : text.length;
  if (opened) {
    for (const step of steps) {
      if (s.destroyed) break;
      s.write(step.send);
      if (step.pauseMs) await new Promise((r) => setTimeout(r, step.pauseMs));
      if (step.waitFor) await until(step.waitFor);
    }
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1500))]);
  }
  s.destroy();
  return opened ? text.slice(mark) : `tunnel not opened: ${text}`;
}

const get = (host: string, path = "/", extra = "") => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;

interface TunnelProbe {
  name: string;
  reason: string;
  run(port: number): Promise<{ text: string; leaked: boolean }>;
}

const FRONTED = /host=secret-vhost\.test/;
const TUNNEL_PROBES: TunnelProbe[] = [
  {
    name: "CONNECT to an allowed HTTP port, first request names another vhost (domain fronting)",
    reason: "host-mismatch",
    run: async (p) => {
      const text = await tunnel(p, "connect", `allowed.test:${http.port}`, [
        { send: get("secret-vhost.test") },
      ]);
      return { text, leaked: FRONTED.test(text) };
    },
  },
  {
    name: "keep-alive: the second request on the tunnel names another vhost",
    reason: "host-mismatch",
    run: async (p) => {
      const text = await tunnel(p, "connect", `allowed.test:${http.port}`, [
        { send: get(`allowed.test:${http.port}`, "/first"), waitFor: /origin=http[^\n]*\n/ },
        { send: get("secret-vhost.test", "/second") },
      ]);
      return { text, leaked: FRONTED.test(text) };
    },
  },
  {
    name: "pipelining: a good and a fronted request in one write",
    reason: "host-mismatch",
    run: async (p) => {
      const both = get(`allowed.test:${http.port}`, "/first") + get("secret-vhost.test", "/second");
      const text = await tunnel(p, "connect", `allowed.test:${http.port}`, [{ send: both }]);
      return { text, leaked: FRONTED.test(text) };
    },
  },
  {
    name: "a fronted request hidden as the body of a POST is not one, the one after it is checked",
    reason: "host-mismatch",
    run: async (p) => {
      const inner = get("secret-vhost.test", "/in-body");
      const post = `POST /first HTTP/1.1\r\nHost: allowed.test:${http.port}\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`;
      const text = await tunnel(p, "connect", `allowed.test:${http.port}`, [
        { send: post + get("secret-vhost.test", "/after") },
      ]);
      return { text, leaked: FRONTED.test(text) };
    },
  },
  {
    name: "SOCKS5 tunnel, request names another vhost",
    reason: "host-mismatch",
    run: async (p) => {
      const text = await tunnel(p, "socks", `allowed.test:${http.port}`, [
        { send: get("secret-vhost.test") },
      ]);
      return { text, leaked: FRONTED.test(text) };
    },
  },
  {
    name: "curl -p (CONNECT for plain HTTP) with -H 'Host: secret-vhost.test'",
    reason: "host-mismatch",
    run: async (p) => {
      const o = await curlVia(`http://127.0.0.1:${p}`, `http://allowed.test:${http.port}/`, [
        "-p",
        "-H",
        "Host: secret-vhost.test",
      ]);
      return { text: o.body + o.stderr, leaked: FRONTED.test(o.body) };
    },
  },
  {
    name: "a port a tls:// rule marks TLS only, tunnel starts with plain HTTP",
    reason: "tunnel-not-tls",
    run: async (p) => {
      const text = await tunnel(p, "connect", `tlsport.test:${http.port}`, [
        { send: get(`tlsport.test:${http.port}`) },
      ]);
      return { text, leaked: /origin=http/.test(text) };
    },
  },
  {
    name: "ClientHello naming another host, cut into 3 records and sent in 9 TCP segments",
    reason: "sni-mismatch",
    run: async (p) => {
      const before = sink.received.length;
      const records = reframe(await clientHello("secret-vhost.test"), 3);
      const bytes = Buffer.concat(records);
      const cut = Math.ceil(bytes.length / 9);
      const steps = Array.from({ length: 9 }, (_, i) => ({
        send: bytes.subarray(i * cut, (i + 1) * cut),
        pauseMs: 15,
      }));
      const text = await tunnel(p, "connect", `allowed.test:${sink.port}`, steps);
      const got = sink.received.slice(before).reduce((n, b) => n + b.length, 0);
      return { text: `${text} (sink got ${got} bytes)`, leaked: got > 0 };
    },
  },
  {
    name: "a non-HTTP, non-TLS protocol (an SSH banner) to a port without tcp://",
    reason: "not-http",
    run: async (p) => {
      const before = sink.received.length;
      const text = await tunnel(p, "connect", `allowed.test:${sink.port}`, [
        { send: "SSH-2.0-OpenSSH_9.2\r\n" },
      ]);
      const got = sink.received.slice(before).reduce((n, b) => n + b.length, 0);
      return { text: `${text} (sink got ${got} bytes)`, leaked: got > 0 };
    },
  },
];

for (const mode of ["strict", "leaky"] as const) {
  describe(`${mode} proxy: inside tunnels`, () => {
    const port = () => (proxies[mode].handle.listeners[0] as { port: number }).port;
    for (const probe of TUNNEL_PROBES) {
      test(`${probe.name}: ${mode === "strict" ? `refused (${probe.reason})` : "gets through (the probe can see a leak)"}`, async () => {
        const events = proxies[mode].events;
        const seen = events.length;
        const out = await probe.run(port());
        if (mode === "strict") {
          assert.equal(out.leaked, false, `leaked: ${out.text}`);
          await new Promise((r) => setTimeout(r, 50));
          const reasons = events.slice(seen).map((e) => e.reason);
          assert.ok(
            reasons.includes(probe.reason),
            `expected ${probe.reason}, events: ${JSON.stringify(events.slice(seen))}`,
          );
          // A refused plain-HTTP request is answered with the reason, in place of its response.
          if (/vhost/.test(probe.name) && !/curl/.test(probe.name))
            assert.match(out.text, new RegExp(`X-Fourwall-Denied: ${probe.reason}`));
        } else assert.equal(out.leaked, true, `the leaky proxy did not pass it: ${out.text}`);
      });
    }
  });
}

describe("inside tunnels: what must still work", () => {
  const port = () => (proxies.strict.handle.listeners[0] as { port: number }).port;
  test("keep-alive and pipelined requests naming the tunnel's host all reach the origin", async () => {
    const h = `allowed.test:${http.port}`;
    const text = await tunnel(port(), "connect", h, [
      { send: get(h, "/a"), waitFor: /url=\/a/ },
      { send: get(h, "/b") + get(h, "/c", "Connection: close\r\n") },
    ]);
    for (const u of ["a", "b", "c"]) assert.match(text, new RegExp(`url=/${u} host=allowed\\.test`));
  });
  test("a ClientHello naming the target, cut into records and segments, passes byte for byte", async () => {
    const before = sink.received.length;
    const bytes = Buffer.concat(reframe(await clientHello("allowed.test"), 4));
    const cut = Math.ceil(bytes.length / 5);
    await tunnel(
      port(),
      "connect",
      `allowed.test:${sink.port}`,
      Array.from({ length: 5 }, (_, i) => ({ send: bytes.subarray(i * cut, (i + 1) * cut), pauseMs: 10 })),
    );
    assert.deepEqual(sink.received[before], bytes);
  });
  test("a tcp:// rule lets another protocol through its port unchecked (the opt-out)", async () => {
    const before = sink.received.length;
    await tunnel(port(), "connect", `rawok.test:${sink.port}`, [
      { send: "SSH-2.0-OpenSSH_9.2\r\n", pauseMs: 100 },
    ]);
    assert.equal(sink.received[before]?.toString(), "SSH-2.0-OpenSSH_9.2\r\n");
  });
  test("curl -p to an allowed plain-HTTP port works", async () => {
    const o = await curlVia(`http://127.0.0.1:${port()}`, `http://allowed.test:${http.port}/p`, ["-p"]);
    assert.match(o.body, /origin=http method=GET url=\/p host=allowed\.test/);
  });
});
