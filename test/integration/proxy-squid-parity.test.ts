import assert from "node:assert/strict";
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type EgressEvent, type ProxyHandle, startProxy } from "../../src/walls/egress/proxy/proxy.js";
import { compileEgressPlan } from "../../src/walls/egress/rules/rules.js";
import { egressSchema } from "../../src/walls/egress/schema.js";
import { findSquid, type SquidHandle, startSquid } from "../../src/walls/egress/squid/squid.js";
import {
  type Certs,
  curlVia,
  makeCerts,
  nodeConnectGet,
  type Origin,
  type Outcome,
  opensslVia,
  rawHttp,
  run,
  startHttpOrigin,
  startHttpsOrigin,
  testLookup,
} from "../helpers/origins.js";
import { tcpToUnix } from "../helpers/unix-relay.js";

// The squid backend and fourwall's own proxy, given the same policy, must refuse the same probes for
// the same reasons (squid's config is generated from the same EgressPlan). A third, deliberately
// leaky squid (its http_access lines replaced by "allow all") lets every probe through, which shows
// each refusal comes from the generated rules and not from the test. All traffic stays on loopback;
// every name is pinned (squid's hosts_file, the builtin's pins) or resolves through /etc/hosts.

let certs: Certs;
let http: Origin;
let http2: Origin;
let http6: Origin;
let https: Origin;
let dir: string;
let builtin: ProxyHandle;
let squid: SquidHandle;
const relays: Partial<Record<"squid" | "leaky", Awaited<ReturnType<typeof tcpToUnix>>>> = {};
let leaky: SquidHandle;
const events: Record<"builtin" | "squid", EgressEvent[]> = { builtin: [], squid: [] };

function policy() {
  const hp = http.port;
  const sp = https.port;
  return egressSchema.parse({
    allow: [
      `allowed.test:${hp},${sp}`,
      `*.wild.test:${hp},${sp}`,
      `localhost:${hp}`,
      `paths.test:${hp}/v2/`,
      `getonly.test:${hp},${sp}`,
      `[127.0.0.0/8]:${http2.port}`,
    ],
    deny: ["bad.wild.test"],
    resolve: [
      "allowed.test",
      "other.test",
      "wild.test",
      "a.wild.test",
      "bad.wild.test",
      "paths.test",
      "getonly.test",
    ].map((n) => `${n}=127.0.0.1`),
    methods: { "getonly.test": ["GET", "HEAD"] },
  });
}

before(async () => {
  certs = await makeCerts();
  [http, http2, http6, https] = await Promise.all([
    startHttpOrigin(),
    startHttpOrigin(),
    startHttpOrigin("::1"),
    startHttpsOrigin(certs),
  ]);
  dir = mkdtempSync(path.join(os.tmpdir(), "fwtest-parity-"));
  chmodSync(dir, 0o711); // squid runs as the proxy user when the tests run as root
  const ca = path.join(dir, "ca.pem");
  copyFileSync(certs.cert, ca);
  chmodSync(ca, 0o644);
  const plan = compileEgressPlan(policy());
  builtin = await startProxy({
    plan,
    box: "parity",
    listen: [{ port: 0 }],
    lookup: testLookup(),
    onDecision: (e) => events.builtin.push(e),
  });
  squid = await startSquid({
    plan,
    box: "parity",
    socketPath: path.join(dir, "squid.sock"),
    dir: path.join(dir, "squid"),
    onDecision: (e) => events.squid.push(e),
  });
  leaky = await startSquid({
    plan,
    box: "leaky",
    socketPath: path.join(dir, "leaky.sock"),
    dir: path.join(dir, "leaky"),
    // Every http_access line gone but "allow all"; it trusts the test CA, so https:// in absolute form gets through too.
    unsafeConfigForTests: (conf) =>
      conf
        .replace(/^(http_access|ssl_bump|on_unsupported_protocol) .*$/gm, "")
        .replace(
          /^reply_header_add .*$/m,
          `http_access allow all\nssl_bump splice all\non_unsupported_protocol tunnel all\ntls_outgoing_options cafile=${ca}`,
        ),
  });
  relays.squid = await tcpToUnix(path.join(dir, "squid.sock"));
  relays.leaky = await tcpToUnix(path.join(dir, "leaky.sock"));
});

after(async () => {
  await Promise.all([relays.squid?.close(), relays.leaky?.close()]);
  await Promise.all([builtin?.close(), squid?.close(), leaky?.close()]);
  await Promise.all([http?.close(), http2?.close(), http6?.close(), https?.close()]);
  certs?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Probe {
  name: string;
  /** The reason both proxies give; `squid` when squid's differs (said why in the name). */
  reason: string;
  squid?: string;
  run(url: string, port: number): Promise<Outcome>;
  /** How the leaky squid shows the hole, when it cannot simply reach the origin. */
  leak?: (o: Outcome) => boolean;
}

const PROBES: Probe[] = [
  {
    name: "unlisted host, plain HTTP",
    reason: "not-allowed",
    run: (u) => curlVia(u, `http://other.test:${http.port}/`),
  },
  {
    name: "unlisted host, CONNECT",
    reason: "not-allowed",
    run: (u) => curlVia(u, `https://other.test:${https.port}/`, ["--cacert", certs.cert]),
  },
  {
    name: "listed host, unlisted port",
    reason: "port-not-allowed",
    run: (u) => curlVia(u, `http://allowed.test:${http2.port}/`),
  },
  {
    name: "the apex of a wildcard rule",
    reason: "not-allowed",
    run: (u) => curlVia(u, `http://wild.test:${http.port}/`),
  },
  {
    name: "a deny rule inside a wildcard",
    reason: "deny-rule",
    run: (u) => curlVia(u, `http://bad.wild.test:${http.port}/`),
  },
  {
    name: "an allowed name resolving to loopback",
    reason: "address-loopback",
    run: (u) => curlVia(u, `http://localhost:${http.port}/`),
  },
  {
    name: "a raw IP inside a CIDR rule, on a port the rule does not name",
    reason: "port-not-allowed",
    run: (u) => curlVia(u, `http://127.0.0.1:${http.port}/`),
  },
  {
    name: "a raw IPv6 address no rule names",
    reason: "not-allowed",
    run: (u) => curlVia(u, `http://[::1]:${http6.port}/`),
  },
  {
    name: "a path outside the allowed prefix",
    reason: "path-not-allowed",
    run: (u) => curlVia(u, `http://paths.test:${http.port}/v3/`),
  },
  {
    name: "dot segments out of the allowed prefix (builtin: resolved, then outside; squid: refused as such)",
    reason: "path-not-allowed",
    squid: "path-not-normal",
    run: (u) => curlVia(u, `http://paths.test:${http.port}/v2/../admin`, ["--path-as-is"]),
  },
  {
    name: "a tunnel to a host allowed only by path",
    reason: "tunnel-not-inspectable",
    run: (u) => curlVia(u, `http://paths.test:${http.port}/v2/`, ["-p"]),
  },
  {
    name: "a method the host's limit does not list",
    reason: "method-not-allowed",
    run: (u) => curlVia(u, `http://getonly.test:${http.port}/`, ["-X", "POST"]),
  },
  {
    name: "a tunnel to a method-limited host",
    reason: "tunnel-not-inspectable",
    // -k: the test certificate does not name getonly.test, and the leaky squid's tunnel must get through
    run: (u) => curlVia(u, `https://getonly.test:${https.port}/`, ["-k"]),
  },
  {
    name: "https:// in absolute form (the proxy would have to speak TLS)",
    reason: "scheme-not-supported",
    run: (_u, port) =>
      rawHttp(
        port,
        `GET https://allowed.test:${https.port}/ HTTP/1.1\r\nHost: allowed.test:${https.port}\r\nConnection: close\r\n\r\n`,
      ),
    // Debian's squid (GnuTLS) opens the TLS connection to the origin itself, then fails to read it.
    leak: (o) => o.reached || /ERR_READ_ERROR/.test(o.body),
  },
];

const ALLOWED = [
  { name: "an allowed host", run: (u: string) => curlVia(u, `http://allowed.test:${http.port}/ok`) },
  { name: "a subdomain of a wildcard", run: (u: string) => curlVia(u, `http://a.wild.test:${http.port}/ok`) },
  { name: "an allowed path", run: (u: string) => curlVia(u, `http://paths.test:${http.port}/v2/ok`) },
  {
    name: "a raw IP inside an allowed CIDR",
    run: (u: string) => curlVia(u, `http://127.0.0.1:${http2.port}/ok`),
  },
  {
    name: "GET on a method-limited host",
    run: (u: string) => curlVia(u, `http://getonly.test:${http.port}/ok`),
  },
  {
    name: "HTTPS through CONNECT",
    run: (u: string) => curlVia(u, `https://allowed.test:${https.port}/ok`, ["--cacert", certs.cert]),
  },
];

// squid's own port wants the per-run proxy credential: both squids are reached through their box-side
// sockets (the forwarder adds it), like a box reaches them.
const target = () => ({
  builtin: { url: builtin.url!, port: Number(new URL(builtin.url!).port) },
  squid: { url: `http://127.0.0.1:${relays.squid!.port}`, port: relays.squid!.port },
  leaky: { url: `http://127.0.0.1:${relays.leaky!.port}`, port: relays.leaky!.port },
});

describe("squid and the builtin proxy refuse the same probes for the same reasons", () => {
  test("squid -k parse accepts the generated config without a warning", async () => {
    const r = await run(findSquid() ?? "squid", ["-k", "parse", "-f", path.join(dir, "squid", "squid.conf")]);
    assert.equal(r.code, 0, r.stderr);
    const complaints = r.stderr
      .split("\n")
      .filter((l) => /WARNING|ERROR|FATAL/.test(l) && !/HTTP requires the use of Via/.test(l));
    assert.deepEqual(complaints, []);
  });
  for (const probe of PROBES) {
    test(probe.name, async () => {
      const t = target();
      const from = events.squid.length;
      const [b, s, l] = await Promise.all([
        probe.run(t.builtin.url, t.builtin.port),
        probe.run(t.squid.url, t.squid.port),
        probe.run(t.leaky.url, t.leaky.port),
      ]);
      assert.equal(b.reached, false, `builtin let it through: ${b.body}`);
      assert.equal(b.denied, probe.reason, `builtin: ${b.stderr}${b.body}`);
      assert.equal(s.reached, false, `squid let it through: ${s.body}`);
      if (s.denied === undefined && /CONNECT/.test(s.stderr)) {
        // On an ssl-bump port squid 5 answers a refused CONNECT with 200, then serves its 403 inside
        // TLS under its throwaway certificate ("force bump action on error"); the client sees a
        // certificate error (or, speaking plain HTTP in it, an empty reply), the audit log the reason.
        assert.match(s.stderr, /certificate|SSL|Empty reply/i, s.stderr);
        await new Promise((r) => setTimeout(r, 450));
        const reasons = events.squid.slice(from).map((e) => e.reason);
        assert.ok(reasons.includes(probe.squid ?? probe.reason), `squid's reasons: ${reasons}`);
      } else assert.equal(s.denied, probe.squid ?? probe.reason, `squid: ${s.stderr}${s.body}`);
      assert.ok(
        (probe.leak ?? ((o: Outcome) => o.reached))(l),
        `the leaky squid did not let it through, so this probe proves nothing: ${l.stderr}${l.body}`,
      );
    });
  }
  for (const ok of ALLOWED) {
    test(`both let through ${ok.name}`, async () => {
      const t = target();
      const [b, s] = await Promise.all([ok.run(t.builtin.url), ok.run(t.squid.url)]);
      assert.equal(b.reached, true, b.stderr);
      assert.equal(s.reached, true, s.stderr);
      assert.match(s.body, /url=\/(v2\/)?ok/);
    });
  }
  test("squid's decisions reach the audit stream like the builtin's", async () => {
    await new Promise((r) => setTimeout(r, 400)); // squid's log is read every 200 ms
    const denied = events.squid.filter((e) => e.decision === "deny").map((e) => e.reason);
    for (const probe of PROBES)
      assert.ok(denied.includes(probe.squid ?? probe.reason), `${probe.reason} missing from ${denied}`);
    assert.ok(
      events.squid.some((e) => e.decision === "allow" && e.kind === "connect" && e.host === "allowed.test"),
    );
    assert.ok(events.squid.every((e) => e.box === "parity"));
  });
});

// Inside allowed tunnels. Squid (squid-openssl) peeks at the ClientHello like the builtin proxy and
// refuses the same SNI tricks; it cannot follow plain HTTP inside a tunnel request by request, so it
// refuses any (tunnel-not-tls) where the builtin checks each Host: stricter, and said so below.
interface TunnelProbe {
  name: string;
  reason: string;
  squid?: string;
  run(url: string, port: number): Promise<Outcome>;
}

const TUNNEL_PROBES: TunnelProbe[] = [
  {
    name: "a ClientHello naming another host than the CONNECT target (openssl s_client)",
    reason: "sni-mismatch",
    run: (_u, port) =>
      opensslVia(
        port,
        `allowed.test:${https.port}`,
        "other.test",
        "GET /sni HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
      ),
  },
  {
    name: "a ClientHello naming another host (curl --connect-to)",
    reason: "sni-mismatch",
    run: (u) =>
      curlVia(u, `https://other.test:${https.port}/`, [
        "--cacert",
        certs.cert,
        "--connect-to",
        `other.test:${https.port}:allowed.test:${https.port}`,
      ]),
  },
  {
    name: "a ClientHello without SNI to a named target (node tls)",
    reason: "sni-missing",
    run: (_u, port) =>
      nodeConnectGet(port, `allowed.test:${https.port}`, {
        ca: certs.certPem,
        servername: "",
        hostHeader: "other.test",
      }),
  },
  {
    name: "plain HTTP inside a CONNECT tunnel naming another vhost (squid: refused as not TLS)",
    reason: "host-mismatch",
    squid: "tunnel-not-tls",
    run: (u) => curlVia(u, `http://allowed.test:${http.port}/`, ["-p", "-H", "Host: secret-vhost.test"]),
  },
];

describe("inside tunnels: squid and the builtin proxy refuse the same tricks", () => {
  const reasons = async (backend: "builtin" | "squid", from: number) => {
    if (backend === "squid") await new Promise((r) => setTimeout(r, 450)); // squid's log is read every 200 ms
    return events[backend]
      .slice(from)
      .filter((e) => e.decision === "deny")
      .map((e) => e.reason);
  };
  for (const probe of TUNNEL_PROBES) {
    test(probe.name, async () => {
      const t = target();
      const from = { builtin: events.builtin.length, squid: events.squid.length };
      const [b, s, l] = await Promise.all([
        probe.run(t.builtin.url, t.builtin.port),
        probe.run(t.squid.url, t.squid.port),
        probe.run(t.leaky.url, t.leaky.port),
      ]);
      assert.equal(b.reached, false, `builtin let it through: ${b.body}`);
      assert.equal(s.reached, false, `squid let it through: ${s.body}`);
      assert.ok((await reasons("builtin", from.builtin)).includes(probe.reason), "builtin's reason");
      const squidReasons = await reasons("squid", from.squid);
      assert.ok(squidReasons.includes(probe.squid ?? probe.reason), `squid's reasons: ${squidReasons}`);
      assert.equal(l.reached, true, `the leaky squid did not let it through: ${l.stderr}${l.body}`);
    });
  }
  test("a ClientHello naming the target passes both (openssl s_client)", async () => {
    const t = target();
    const req = "GET /ok HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n";
    const [b, s] = await Promise.all([
      opensslVia(t.builtin.port, `allowed.test:${https.port}`, "allowed.test", req),
      opensslVia(t.squid.port, `allowed.test:${https.port}`, "allowed.test", req),
    ]);
    assert.match(b.body, /origin=https .*sni=allowed\.test/);
    assert.match(s.body, /origin=https .*sni=allowed\.test/);
  });
  test("squid cannot check Host inside a tunnel, so it refuses plain HTTP there even when it names the target (the builtin checks and passes it)", async () => {
    const t = target();
    const url = `http://allowed.test:${http.port}/in-tunnel`;
    const [b, s] = await Promise.all([
      curlVia(t.builtin.url, url, ["-p"]),
      curlVia(t.squid.url, url, ["-p"]),
    ]);
    assert.match(b.body, /origin=http method=GET url=\/in-tunnel host=allowed\.test/);
    assert.equal(s.reached, false, s.body);
  });
});
