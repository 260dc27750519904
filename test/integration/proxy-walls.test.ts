import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
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
      "other6.test=[::1]",
    ],
    methods: { "getonly.test": ["GET", "HEAD"] },
  });
}

// rebind*.test are allowed by name but "DNS" answers with a loopback address: the guard must refuse them.
const lookup = testLookup({ "rebind.test": ["127.0.0.1"], "rebind6.test": ["::1"] });

before(async () => {
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
    assert.match(out.body, /fourwall egress: GET to other\.test:\d+ denied \(not-allowed\)\n$/);
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
