import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { type EgressEvent, type ProxyHandle, startProxy } from "../../src/walls/egress/proxy/proxy.js";
import type { AskRequest } from "../../src/walls/egress/proxy/types.js";
import { compileEgressPlan } from "../../src/walls/egress/rules/rules.js";
import { type EgressPolicyInput, egressSchema } from "../../src/walls/egress/schema.js";
import {
  type Certs,
  curlSocks,
  curlVia,
  makeCerts,
  type Origin,
  rawExchange,
  run,
  startHttpOrigin,
  startHttpsOrigin,
  testLookup,
} from "../helpers/origins.js";

// The proxy as clients and the box builder meet it: audit events, the unix-socket listener, keep-alive,
// the ask hook, protocol edges (origin-form, https:// absolute form, Upgrade, oversized headers, SOCKS
// commands), upstream failures, bulk transfers with backpressure, and close() ending live tunnels.

let certs: Certs;
let http: Origin;
let https: Origin;
let sockDir: string;
const started: ProxyHandle[] = [];

before(async () => {
  certs = await makeCerts();
  [http, https] = await Promise.all([startHttpOrigin(), startHttpsOrigin(certs)]);
  sockDir = mkdtempSync(join(tmpdir(), "fourwall-sock-"));
});

after(async () => {
  await Promise.all(started.map((p) => p.close()));
  await Promise.all([http?.close(), https?.close()]);
  certs?.cleanup();
  rmSync(sockDir, { recursive: true, force: true });
});

async function proxy(input: EgressPolicyInput, extra: Partial<Parameters<typeof startProxy>[0]> = {}) {
  const events: EgressEvent[] = [];
  const handle = await startProxy({
    plan: compileEgressPlan(
      egressSchema.parse({ resolve: ["allowed.test=127.0.0.1", "other.test=127.0.0.1"], ...input }),
    ),
    box: "clients",
    listen: [{ port: 0 }],
    onDecision: (e) => events.push(e),
    lookup: testLookup(),
    ...extra,
  });
  started.push(handle);
  const port = (handle.listeners.find((l) => "port" in l) as { port: number } | undefined)?.port ?? 0;
  return { handle, events, port, url: handle.url ?? "" };
}

const waitFor = async (check: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), "condition not met in time");
};

describe("audit events", () => {
  test("an allowed tunnel reports bytes, address, rule and SNI when it ends; a denial at once", async () => {
    const p = await proxy({ allow: [`allowed.test:${https.port}`] });
    const out = await curlVia(p.url, `https://allowed.test:${https.port}/ev`, ["--cacert", certs.cert]);
    assert.match(out.body, /origin=https/);
    await waitFor(() => p.events.length === 1);
    const e = p.events[0]!;
    assert.equal(e.decision, "allow");
    assert.equal(e.kind, "connect");
    assert.equal(e.box, "clients");
    assert.equal(e.host, "allowed.test");
    assert.equal(e.port, https.port);
    assert.equal(e.address, "127.0.0.1");
    assert.equal(e.sni, "allowed.test");
    assert.equal(e.reason, "rule");
    assert.equal(e.rule, `allowed.test:${https.port}`);
    assert.ok(e.bytesUp > 200 && e.bytesDown > 200, `bytes ${e.bytesUp}/${e.bytesDown}`);
    assert.ok(e.durationMs >= 0 && !Number.isNaN(Date.parse(e.time)));
    assert.equal(e.error, undefined);

    await curlVia(p.url, `http://other.test:${http.port}/x?y`);
    const d = p.events[1]!;
    assert.deepEqual(
      {
        decision: d.decision,
        reason: d.reason,
        kind: d.kind,
        host: d.host,
        method: d.method,
        path: d.path,
        bytesUp: d.bytesUp,
      },
      {
        decision: "deny",
        reason: "not-allowed",
        kind: "http",
        host: "other.test",
        method: "GET",
        path: "/x",
        bytesUp: 0,
      },
    );
  });

  test("a plain HTTP request reports its own bytes, even on a reused upstream connection", async () => {
    const p = await proxy({ allow: [`allowed.test:${http.port}`] });
    const r = await run("curl", [
      "-sS",
      "-x",
      p.url,
      `http://allowed.test:${http.port}/1`,
      `http://allowed.test:${http.port}/2`,
    ]);
    assert.match(r.stdout, /url=\/1[\s\S]*url=\/2/);
    await waitFor(() => p.events.length === 2);
    for (const e of p.events) {
      assert.equal(e.decision, "allow");
      assert.ok(e.bytesUp > 50 && e.bytesUp < 400, `up ${e.bytesUp}`);
      assert.ok(e.bytesDown > 100 && e.bytesDown < 600, `down ${e.bytesDown}`);
    }
  });

  test("a throwing onDecision does not take the proxy down", async () => {
    const p = await proxy(
      { allow: [`allowed.test:${http.port}`] },
      {
        onDecision: () => {
          throw new Error("sink broke");
        },
      },
    );
    const out = await curlVia(p.url, `http://allowed.test:${http.port}/`);
    assert.match(out.body, /origin=http/);
  });
});

describe("listeners", () => {
  test("a unix socket listener serves HTTP and CONNECT and is removed on close", async () => {
    const path = join(sockDir, "egress.sock");
    const p = await proxy(
      { allow: [`allowed.test:${http.port},${https.port}`] },
      { listen: [{ path, mode: 0o666 }] },
    );
    assert.equal(statSync(path).mode & 0o777, 0o666);
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        {
          socketPath: path,
          path: `http://allowed.test:${http.port}/unix`,
          headers: { host: `allowed.test:${http.port}` },
        },
        (res) => {
          let b = "";
          res.on("data", (d) => {
            b += d;
          });
          res.on("end", () => resolve(b));
        },
      );
      req.on("error", reject);
      req.end();
    });
    assert.match(body, /origin=http method=GET url=\/unix/);
    const reply = await new Promise<string>((resolve) => {
      const s = netConnect(path, () => s.write(`CONNECT other.test:${https.port} HTTP/1.1\r\n\r\n`));
      let b = "";
      s.on("data", (d) => {
        b += d;
      });
      s.on("close", () => resolve(b));
    });
    assert.match(reply, /^HTTP\/1\.1 403 .*\r\nX-Fourwall-Denied: not-allowed/s);
    await p.handle.close();
    assert.throws(() => statSync(path));
  });

  test("refuses to listen on anything but loopback", async () => {
    await assert.rejects(
      startProxy({
        plan: compileEgressPlan(egressSchema.parse({})),
        listen: [{ host: "0.0.0.0" as "127.0.0.1", port: 0 }],
      }),
      /refusing to listen/,
    );
  });
});

describe("ask hook", () => {
  test("unknown hosts are held for the hook; yes lets one request through, no and timeout deny", async () => {
    const asked: AskRequest[] = [];
    const p = await proxy(
      {
        allow: [],
        unknown: "ask",
        resolve: ["allowed.test=127.0.0.1", "other.test=127.0.0.1", "slow.test=127.0.0.1"],
      },
      {
        ask: async (req) => {
          asked.push(req);
          if (req.host === "slow.test") return new Promise<boolean>(() => {});
          return req.host === "allowed.test";
        },
        limits: { askTimeoutMs: 200 },
      },
    );
    const yes = await curlVia(p.url, `http://allowed.test:${http.port}/asked`);
    assert.match(yes.body, /origin=http/);
    assert.deepEqual(asked[0], {
      box: "clients",
      kind: "http",
      host: "allowed.test",
      port: http.port,
      method: "GET",
      path: "/asked",
    });
    const no = await curlVia(p.url, `http://other.test:${http.port}/`);
    assert.equal(no.denied, "ask-denied");
    const slow = await curlVia(p.url, `http://slow.test:${http.port}/`);
    assert.equal(slow.denied, "ask-timeout");
    await waitFor(() => p.events.some((e) => e.decision === "allow"));
    assert.equal(p.events.find((e) => e.decision === "allow")?.reason, "ask");
  });

  test("without unknown: ask the hook is never consulted", async () => {
    let called = 0;
    const p = await proxy(
      { allow: [] },
      {
        ask: async () => {
          called++;
          return true;
        },
      },
    );
    const out = await curlVia(p.url, `http://allowed.test:${http.port}/`);
    assert.equal(out.denied, "not-allowed");
    assert.equal(called, 0);
  });

  test("the address guard still applies to an approved host", async () => {
    const p = await proxy({ allow: [], unknown: "ask" }, { ask: async () => true });
    const out = await curlVia(p.url, `http://localhost:${http.port}/`);
    assert.equal(out.denied, "address-loopback");
  });
});

describe("protocol edges", () => {
  test("origin-form, https:// absolute form, Upgrade, oversized headers, garbage", async () => {
    const p = await proxy({ allow: [`allowed.test:${http.port}`] }, { limits: { maxHeaderBytes: 4096 } });
    const origin = await rawExchange(p.port, "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
    assert.match(origin, /^HTTP\/1\.1 400 .*X-Fourwall-Denied: not-proxy-request/s);
    const tls = await rawExchange(
      p.port,
      `GET https://allowed.test:${http.port}/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n`,
    );
    assert.match(tls, /^HTTP\/1\.1 403 .*X-Fourwall-Denied: scheme-not-supported/s);
    const up = await rawExchange(
      p.port,
      `GET http://allowed.test:${http.port}/ HTTP/1.1\r\nHost: allowed.test:${http.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
    );
    assert.match(up, /^HTTP\/1\.1 403 .*X-Fourwall-Denied: upgrade-not-supported/s);
    const big = await rawExchange(
      p.port,
      `GET http://allowed.test:${http.port}/ HTTP/1.1\r\nX-Big: ${"a".repeat(8000)}\r\n\r\n`,
    );
    assert.match(big, /^HTTP\/1\.1 431 /);
    const junk = await rawExchange(p.port, "\x16\x03\x01\x00\x05hello\r\n\r\n");
    assert.match(junk, /^HTTP\/1\.1 400 /);
    const badTarget = await rawExchange(p.port, "CONNECT allowed.test HTTP/1.1\r\n\r\n");
    assert.match(badTarget, /^HTTP\/1\.1 400 .*X-Fourwall-Denied: bad-target/s);
  });

  test("SOCKS5: no acceptable auth method, BIND and UDP ASSOCIATE are refused with their codes", async () => {
    const p = await proxy({ allow: [`allowed.test:${http.port}`] });
    const auth = Buffer.from(await rawExchange(p.port, Buffer.from([5, 1, 2]), 1000), "latin1");
    assert.deepEqual([...auth], [5, 0xff]);
    const bind = Buffer.from(
      await rawExchange(p.port, Buffer.from([5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80]), 1000),
      "latin1",
    );
    assert.deepEqual([...bind.subarray(0, 4)], [5, 0, 5, 7]);
    const udp = Buffer.from(
      await rawExchange(p.port, Buffer.from([5, 1, 0, 5, 3, 0, 1, 127, 0, 0, 1, 0, 80]), 1000),
      "latin1",
    );
    assert.deepEqual([...udp.subarray(0, 4)], [5, 0, 5, 7]);
    const ip = Buffer.from(
      await rawExchange(
        p.port,
        Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, http.port >> 8, http.port & 255]),
        1000,
      ),
      "latin1",
    );
    assert.deepEqual([...ip.subarray(0, 4)], [5, 0, 5, 2], "raw 127.0.0.1 is not allowed by rule");
  });

  test("allowed host with nothing listening: 502 with X-Fourwall-Error and an allow event carrying the error", async () => {
    // Find a loopback port with no listener by opening and closing one.
    const { createServer } = await import("node:net");
    const free = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const p = await proxy({ allow: [`allowed.test:${free}`] });
    const out = await curlVia(p.url, `http://allowed.test:${free}/`);
    assert.match(out.stderr, /< HTTP\/1\.1 502/);
    assert.match(out.stderr, /X-Fourwall-Error: connect-refused/i);
    const c = await curlVia(p.url, `https://allowed.test:${free}/`, ["-k"]);
    assert.match(c.stderr, /X-Fourwall-Error: connect-refused/i);
    await waitFor(() => p.events.length === 2);
    assert.ok(p.events.every((e) => e.decision === "allow" && e.error === "connect-refused"));
  });

  test("slow headers are cut off by the header timeout, silent connections too", async () => {
    const p = await proxy({ allow: [`allowed.test:${http.port}`] }, { limits: { headerTimeoutMs: 300 } });
    const t0 = Date.now();
    const closedAfter = await new Promise<number>((resolve) => {
      const s = netConnect(p.port, "127.0.0.1");
      s.on("error", () => {});
      const text = `GET http://allowed.test:${http.port}/ HTTP/1.1\r\nX-Slow: ${"a".repeat(200)}`;
      let i = 0;
      const drip = setInterval(() => {
        if (!s.destroyed && i < text.length) s.write(text[i++]!);
      }, 20);
      s.on("close", () => {
        clearInterval(drip);
        resolve(Date.now() - t0);
      });
    });
    assert.ok(closedAfter < 2500, `slow client kept for ${closedAfter} ms`);
    const silent = Date.now();
    await new Promise<void>((resolve) => {
      const s = netConnect(p.port, "127.0.0.1");
      s.on("error", () => {});
      s.on("close", () => resolve());
    });
    assert.ok(Date.now() - silent < 1500);
    assert.ok(p.events.some((e) => e.reason === "header-timeout"));
  });

  test("an ask that takes longer than the header timeout still completes a CONNECT and a SOCKS request", async () => {
    const p = await proxy(
      { allow: [], unknown: "ask" },
      {
        ask: () => new Promise<boolean>((r) => setTimeout(() => r(true), 500)),
        limits: { headerTimeoutMs: 200 },
      },
    );
    const c = await curlVia(p.url, `https://allowed.test:${https.port}/slow-ask`, ["--cacert", certs.cert]);
    assert.match(c.body, /origin=https .*url=\/slow-ask/);
    const s = await curlSocks(`127.0.0.1:${p.port}`, `https://allowed.test:${https.port}/slow-ask`, [
      "--cacert",
      certs.cert,
    ]);
    assert.match(s.body, /origin=https/);
  });

  test("a name that does not resolve is refused with resolve-failed", async () => {
    const p = await proxy({ allow: ["nothing-here.invalid"] }, { lookup: async () => [] });
    const out = await curlVia(p.url, "http://nothing-here.invalid/");
    assert.equal(out.denied, "resolve-failed");
  });
});

describe("bulk and lifecycle", () => {
  test("large uploads and downloads pass intact (backpressure, no buffering blow-up)", async () => {
    const { createServer } = await import("node:http");
    const size = 32 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 97);
    const big = createServer((req, res) => {
      let n = 0;
      req.on("data", (d: Buffer) => {
        n += d.length;
      });
      req.on("end", () => {
        if (req.method === "POST") return res.end(`got ${n}`);
        res.writeHead(200, { "content-length": size });
        let sent = 0;
        const pump = () => {
          while (sent < size) {
            sent += chunk.length;
            if (!res.write(chunk)) return res.once("drain", pump);
          }
          res.end();
        };
        pump();
      });
    });
    await new Promise<void>((r) => big.listen(0, "127.0.0.1", () => r()));
    const bp = (big.address() as { port: number }).port;
    try {
      const p = await proxy({ allow: [`allowed.test:${bp}`] });
      const down = await run("curl", [
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        "-x",
        p.url,
        `http://allowed.test:${bp}/`,
      ]);
      assert.equal(down.stdout, String(size));
      const tunnel = await run("curl", [
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        "-p",
        "-x",
        p.url,
        `http://allowed.test:${bp}/`,
      ]);
      assert.equal(tunnel.stdout, String(size));
      const up = await run("sh", [
        "-c",
        `head -c 8388608 /dev/zero | curl -sS -x ${p.url} --data-binary @- http://allowed.test:${bp}/`,
      ]);
      assert.equal(up.stdout, "got 8388608");
      await waitFor(() => p.events.length === 3);
      assert.ok(p.events[1]!.bytesDown > size, "tunnel byte count");
    } finally {
      big.closeAllConnections();
      big.close();
    }
  });

  test("an idle tunnel is closed after the idle limit and reported with idle-timeout", async () => {
    const p = await proxy({ allow: [`allowed.test:${https.port}`] }, { limits: { idleTimeoutMs: 200 } });
    const s = netConnect(p.port, "127.0.0.1");
    s.on("error", () => {});
    s.write(`CONNECT allowed.test:${https.port} HTTP/1.1\r\n\r\n`);
    await new Promise((r) => s.once("data", r));
    const t0 = Date.now();
    await new Promise((r) => s.once("close", r));
    const waited = Date.now() - t0;
    assert.ok(waited >= 150 && waited < 1500, `closed after ${waited} ms`);
    await waitFor(() => p.events.length === 1);
    assert.equal(p.events[0]!.error, "idle-timeout");
  });

  test("a tunnel that keeps moving bytes outlives the idle limit", async () => {
    const p = await proxy({ allow: [`allowed.test:${https.port}`] }, { limits: { idleTimeoutMs: 200 } });
    const out = await nodeConnectGetSlow(p.port, `allowed.test:${https.port}`);
    assert.match(out, /origin=https/);
  });

  test("close() ends open tunnels and stops listening", async () => {
    const p = await proxy({ allow: [`allowed.test:${https.port}`] });
    const s = netConnect(p.port, "127.0.0.1");
    s.on("error", () => {});
    s.write(`CONNECT allowed.test:${https.port} HTTP/1.1\r\n\r\n`);
    await new Promise((r) => s.once("data", r));
    assert.ok(p.handle.openSockets() >= 2);
    const closed = new Promise((r) => s.once("close", r));
    await p.handle.close();
    await closed;
    assert.equal(p.handle.openSockets(), 0);
    const again = await run("curl", [
      "-sS",
      "--max-time",
      "2",
      "-x",
      p.url,
      `http://allowed.test:${http.port}/`,
    ]);
    assert.notEqual(again.code, 0);
  });
});

/** A TLS request through CONNECT whose headers trickle in over ~600 ms (longer than a 200 ms idle limit). */
function nodeConnectGetSlow(proxyPort: number, target: string): Promise<string> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: "127.0.0.1", port: proxyPort, method: "CONNECT", path: target });
    req.on("error", () => resolve(""));
    req.on("connect", (_res, socket) => {
      const tls = tlsConnect({ socket, servername: "allowed.test", ca: certs.certPem });
      let body = "";
      tls.on("data", (d: Buffer) => {
        body += d.toString();
      });
      tls.on("error", () => resolve(body));
      tls.on("end", () => resolve(body));
      tls.on("secureConnect", () => {
        const lines = [
          "GET /slow HTTP/1.1",
          "Host: allowed.test",
          "X-A: 1",
          "X-B: 2",
          "X-C: 3",
          "Connection: close",
          "",
          "",
        ];
        let i = 0;
        const drip = setInterval(() => {
          tls.write(`${lines[i++]}\r\n`);
          if (i === lines.length) clearInterval(drip);
        }, 90);
      });
    });
    req.end();
  });
}
