import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TunnelHttpInspector } from "../../../../src/walls/egress/proxy/tunnel-http.js";
import { normaliseHost } from "../../../../src/walls/egress/rules/hostname.js";
import { decide } from "../../../../src/walls/egress/rules/match.js";
import { compileEgressPlan, parseRule, type RuleRequest } from "../../../../src/walls/egress/rules/rules.js";
import { egressSchema } from "../../../../src/walls/egress/schema.js";

// What a tunnel must carry (the rules' tunnelCheck) and the plain-HTTP follower for tunnels.

function host(text: string) {
  const h = normaliseHost(text);
  if ("error" in h) throw new Error(h.error);
  return h;
}

describe("tls:// and tcp:// rules", () => {
  test("parse into a protocol mark; other schemes, deny rules, paths and missing ports are errors", () => {
    assert.equal(parseRule("tls://db.test:8443").protocol, "tls");
    assert.deepEqual(parseRule("tcp://git.test:22,2222").ports, [
      [22, 22],
      [2222, 2222],
    ]);
    assert.equal(parseRule("tcp://git.test:22").source, "tcp://git.test:22");
    assert.equal(parseRule("git.test:22").protocol, undefined);
    assert.throws(() => parseRule("https://x.test"), /without a scheme/);
    assert.throws(() => parseRule("tcp://x.test:22", "deny"), /deny rule covers every protocol/);
    assert.throws(() => parseRule("tls://x.test:443/v2/"), /path/);
    assert.throws(() => parseRule("tcp://x.test"), /name the port/);
  });

  const plan = compileEgressPlan(
    egressSchema.parse({
      allow: [
        "web.test",
        "web.test:8080",
        "tls://web.test:8443",
        "tcp://git.test:22",
        "tcp://raw443.test:443",
      ],
    }),
  );
  const check = (kind: RuleRequest["kind"], h: string, port: number) => {
    const v = decide(plan, {
      kind,
      host: host(h),
      port,
      ...(kind === "http" ? { method: "GET", path: "/" } : {}),
    });
    return v.verdict === "allow" ? (v.tunnel ?? "http") : v.verdict === "deny" ? v.reason : v.verdict;
  };
  const table: Array<[RuleRequest["kind"], string, number, string]> = [
    ["connect", "web.test", 443, "tls"], // 443 is TLS only
    ["connect", "web.test", 80, "inspect"], // TLS or plain HTTP, each checked
    ["socks", "web.test", 8080, "inspect"],
    ["connect", "web.test", 8443, "tls"], // marked by the rule
    ["http", "web.test", 8443, "tls-required"], // plain HTTP to a port marked TLS
    ["http", "web.test", 8080, "http"],
    ["connect", "git.test", 22, "raw"], // the opt-out
    ["connect", "raw443.test", 443, "raw"],
    ["connect", "git.test", 443, "port-not-allowed"],
  ];
  for (const [kind, h, port, want] of table)
    test(`${kind} ${h}:${port} → ${want}`, () => assert.equal(check(kind, h, port), want));
});

describe("TunnelHttpInspector", () => {
  const target = host("allowed.test");
  const feed = (chunks: Array<string | Buffer>, port = 80) => {
    const ins = new TunnelHttpInspector(target, port);
    let out = "";
    let denied: string | undefined;
    for (const c of chunks) {
      const r = ins.push(Buffer.isBuffer(c) ? c : Buffer.from(c, "latin1"));
      out += Buffer.concat(r.forward).toString("latin1");
      if (r.denied) {
        denied = r.denied;
        break;
      }
    }
    return { out, denied, requests: ins.requests };
  };
  const GET = (h: string, path = "/") => `GET ${path} HTTP/1.1\r\nHost: ${h}\r\n\r\n`;

  test("a matching request passes whole, byte for byte", () => {
    const r = feed([GET("allowed.test")]);
    assert.equal(r.out, GET("allowed.test"));
    assert.equal(r.denied, undefined);
  });

  test("a mismatched Host is refused before any of its head is passed on", () => {
    const r = feed([GET("secret-vhost.test")]);
    assert.equal(r.out, "");
    assert.equal(r.denied, "host-mismatch");
  });

  test("every request of a keep-alive connection is checked, not only the first", () => {
    const r = feed([GET("allowed.test"), GET("secret-vhost.test")]);
    assert.equal(r.out, GET("allowed.test"));
    assert.equal(r.denied, "host-mismatch");
    assert.equal(r.requests, 1);
  });

  test("pipelined requests in one chunk: the good ones pass, the bad one stops the stream", () => {
    const r = feed([
      GET("allowed.test") + GET("allowed.test", "/2") + GET("secret-vhost.test") + GET("allowed.test"),
    ]);
    assert.equal(r.out, GET("allowed.test") + GET("allowed.test", "/2"));
    assert.equal(r.denied, "host-mismatch");
  });

  test("a head split into single bytes is judged the same", () => {
    const bad = [...(GET("allowed.test") + GET("secret-vhost.test"))];
    const r = feed(bad);
    assert.equal(r.out, GET("allowed.test"));
    assert.equal(r.denied, "host-mismatch");
  });

  test("a body is passed through unparsed (Content-Length), then the next head is checked", () => {
    const body = `GET / HTTP/1.1\r\nHost: secret-vhost.test\r\n\r\n`; // looks like a request, is a body
    const post = `POST /up HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const r = feed([post.slice(0, 50), post.slice(50), GET("secret-vhost.test")]);
    assert.equal(r.out, post);
    assert.equal(r.denied, "host-mismatch");
  });

  test("chunked bodies are followed to the last chunk and trailers", () => {
    const post =
      "POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "5;ext=1\r\nhello\r\n11\r\nGET / HTTP/1.1\r\nH\r\n0\r\nX-Trailer: 1\r\n\r\n";
    const r = feed([...post.match(/.{1,7}/gs)!, GET("secret-vhost.test")]);
    assert.equal(r.out, post);
    assert.equal(r.denied, "host-mismatch");
  });

  test("a Host with the tunnel's port, an absolute-form target naming the tunnel, and OPTIONS * pass", () => {
    assert.equal(feed([GET("allowed.test:8080")], 8080).denied, undefined);
    assert.equal(feed([GET("ALLOWED.test.")]).denied, undefined);
    assert.equal(feed([GET("allowed.test", "http://allowed.test/x")]).denied, undefined);
    assert.equal(feed(["OPTIONS * HTTP/1.1\r\nHost: allowed.test\r\n\r\n"]).denied, undefined);
    assert.equal(feed([`\r\n${GET("allowed.test")}`]).denied, undefined);
  });

  const refused: Array<[string, string, string]> = [
    ["another port in Host", GET("allowed.test:8080"), "host-mismatch"],
    ["no port in Host on a tunnel to 8080 (that means 80)", GET("allowed.test"), "host-mismatch"],
    [
      "two Host headers",
      "GET / HTTP/1.1\r\nHost: allowed.test\r\nHost: secret.test\r\n\r\n",
      "host-mismatch",
    ],
    ["no Host", "GET / HTTP/1.0\r\n\r\n", "host-missing"],
    [
      "an absolute-form target naming another host",
      GET("allowed.test", "http://secret.test/"),
      "host-mismatch",
    ],
    ["an https absolute-form target", GET("allowed.test", "https://allowed.test/"), "bad-request"],
    [
      "CONNECT inside the tunnel",
      "CONNECT secret.test:443 HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
      "connect-in-tunnel",
    ],
    ["a bare LF line ending", "GET / HTTP/1.1\nHost: allowed.test\r\n\r\n", "bad-request"],
    ["obs-fold", "GET / HTTP/1.1\r\nHost: allowed.test\r\nX: a\r\n b\r\n\r\n", "bad-request"],
    [
      "a space before the colon",
      "GET / HTTP/1.1\r\nHost : secret.test\r\nHost: allowed.test\r\n\r\n",
      "bad-request",
    ],
    [
      "Content-Length and Transfer-Encoding",
      "POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "bad-request",
    ],
    [
      "two different lengths",
      "POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\n",
      "bad-request",
    ],
    [
      "an unknown transfer coding",
      "POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "bad-request",
    ],
    [
      "a protocol switch",
      "GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
      "upgrade-not-supported",
    ],
    [
      "Expect",
      "POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
      "expect-not-supported",
    ],
    ["HTTP/2 prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "bad-request"],
    ["an SSH banner", "SSH-2.0-OpenSSH_9.2\r\n", "not-http"],
    ["binary bytes", "\x00\x01\x02\x03", "not-http"],
  ];
  for (const [name, bytes, reason] of refused)
    test(`refuses ${name}`, () => {
      const r = feed([bytes], name.includes("8080") ? 8080 : 80);
      assert.equal(r.denied, reason);
      assert.equal(r.out, "");
    });

  test("a bad chunk size stops the stream at that chunk", () => {
    const head = "POST / HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    const r = feed([`${head}zz\r\n`]);
    assert.equal(r.out, head);
    assert.equal(r.denied, "bad-request");
  });

  test("a head larger than the limit is refused", () => {
    const ins = new TunnelHttpInspector(target, 80, 1024);
    const r = ins.push(Buffer.from(`GET / HTTP/1.1\r\nX: ${"a".repeat(2000)}`));
    assert.equal(r.denied, "header-too-large");
  });
});
