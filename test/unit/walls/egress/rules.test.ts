import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { z } from "zod";
import { hostText, normaliseHost } from "../../../../src/walls/egress/rules/hostname.js";
import { decide, pathMatches, vetAddress } from "../../../../src/walls/egress/rules/match.js";
import {
  compileEgressPlan,
  type EgressPlan,
  parseRule,
  RuleError,
  type RuleRequest,
} from "../../../../src/walls/egress/rules/rules.js";
import { type EgressPolicyInput, egressSchema } from "../../../../src/walls/egress/schema.js";

const plan = (input: EgressPolicyInput): EgressPlan => compileEgressPlan(egressSchema.parse(input));

function host(text: string) {
  const h = normaliseHost(text);
  if ("error" in h) throw new Error(h.error);
  return h;
}

describe("normaliseHost", () => {
  const cases: Array<[string, string]> = [
    ["example.com", "example.com"],
    ["EXAMPLE.Com", "example.com"],
    ["example.com.", "example.com"],
    ["bücher.de", "xn--bcher-kva.de"],
    ["BÜCHER.de", "xn--bcher-kva.de"],
    ["xn--bcher-kva.de", "xn--bcher-kva.de"],
    ["ｅｘａｍｐｌｅ.com", "example.com"], // fullwidth letters fold under IDNA
    ["example。com", "example.com"], // ideographic full stop is a dot
    ["0x7f.1", "127.0.0.1"],
    ["2130706433", "127.0.0.1"],
    ["017700000001", "127.0.0.1"],
    ["127.1", "127.0.0.1"],
    ["0x7f.0.0.0x1", "127.0.0.1"],
    ["0177.0.0.1", "127.0.0.1"],
    ["0xa9.0xfe.0xa9.0xfe", "169.254.169.254"],
    ["2852039166", "169.254.169.254"],
    ["127.0.0.1.", "127.0.0.1"],
    ["[::1]", "[::1]"],
    ["::1", "[::1]"],
    ["[0:0:0:0:0:0:0:1]", "[::1]"],
    ["[::FFFF:127.0.0.1]", "127.0.0.1"],
    ["[::ffff:7f00:1]", "127.0.0.1"],
    ["[fe80::1%eth0]", "[fe80::1]"],
    ["[fe80::1%25eth0]", "[fe80::1]"],
    ["[2001:DB8:0:0:1:0:0:1]", "[2001:db8::1:0:0:1]"],
    ["[2001:db8:0:0:0:0:2:1]", "[2001:db8::2:1]"],
    ["[2001:0:0:1:0:0:0:1]", "[2001:0:0:1::1]"],
    ["a_b.test", "a_b.test"],
  ];
  for (const [input, want] of cases) {
    test(`${input} -> ${want}`, () => assert.equal(hostText(host(input)), want));
  }
  const bad = [
    "",
    "a..b",
    ".a",
    "a b",
    "a/b",
    "a@b",
    "a?b",
    "a#b",
    "%31.2.3.4",
    "-a.test",
    "a-.test",
    "1.2.3.4.5",
    "4294967296",
    "[::1",
    "[nope]",
    "a\0b",
    `${"x".repeat(64)}.test`,
    "a.0x7f",
    "*.a.test",
    "a\\b",
  ];
  for (const input of bad) {
    test(`rejects ${JSON.stringify(input)}`, () => assert.ok("error" in normaliseHost(input)));
  }
});

describe("parseRule", () => {
  const ok: Array<[string, object]> = [
    [
      "example.com",
      {
        host: { kind: "name", name: "example.com", wildcard: false },
        ports: [
          [80, 80],
          [443, 443],
        ],
      },
    ],
    [
      "*.example.com",
      {
        host: { kind: "name", name: "example.com", wildcard: true },
        ports: [
          [80, 80],
          [443, 443],
        ],
      },
    ],
    ["Example.COM.", { host: { kind: "name", name: "example.com", wildcard: false } }],
    ["example.com:8443", { ports: [[8443, 8443]] }],
    ["example.com:8000-8100", { ports: [[8000, 8100]] }],
    [
      "example.com:80,8080",
      {
        ports: [
          [80, 80],
          [8080, 8080],
        ],
      },
    ],
    ["example.com:*", { ports: [[1, 65535]] }],
    [
      "example.com/v2/",
      {
        path: "/v2/",
        ports: [
          [80, 80],
          [443, 443],
        ],
      },
    ],
    ["example.com:8080/v2", { path: "/v2", ports: [[8080, 8080]] }],
    ["example.com/a/../b/", { path: "/b/" }],
    ["example.com//x/", { path: "//x/" }],
    ["example.com/%2e%2e/x", { path: "/x" }],
    ["10.0.0.0/8", { host: { kind: "cidr", family: 4, network: "10.0.0.0", prefix: 8 } }],
    ["127.0.0.1", { host: { kind: "cidr", family: 4, network: "127.0.0.1", prefix: 32 } }],
    [
      "127.0.0.1:8080",
      { host: { kind: "cidr", family: 4, network: "127.0.0.1", prefix: 32 }, ports: [[8080, 8080]] },
    ],
    [
      "[10.0.0.0/8]:8080",
      { host: { kind: "cidr", family: 4, network: "10.0.0.0", prefix: 8 }, ports: [[8080, 8080]] },
    ],
    ["[::1]:8080", { host: { kind: "cidr", family: 6, network: "::1", prefix: 128 }, ports: [[8080, 8080]] }],
    ["[::1]", { host: { kind: "cidr", family: 6, network: "::1", prefix: 128 } }],
    ["::1", { host: { kind: "cidr", family: 6, network: "::1", prefix: 128 } }],
    ["fd00::/8", { host: { kind: "cidr", family: 6, network: "fd00::", prefix: 8 } }],
    [
      "[fd00::/8]:443",
      { host: { kind: "cidr", family: 6, network: "fd00::", prefix: 8 }, ports: [[443, 443]] },
    ],
    ["::ffff:10.0.0.0/104", { host: { kind: "cidr", family: 4, network: "10.0.0.0", prefix: 8 } }],
    ["0.0.0.0/0", { host: { kind: "cidr", family: 4, network: "0.0.0.0", prefix: 0 } }],
    ["bücher.de", { host: { kind: "name", name: "xn--bcher-kva.de", wildcard: false } }],
    ["*.allowed.test", { host: { kind: "name", name: "allowed.test", wildcard: true } }],
    ["*.example.co.uk", { host: { kind: "name", name: "example.co.uk", wildcard: true } }],
  ];
  for (const [text, want] of ok) {
    test(`parses ${text}`, () => {
      const rule = parseRule(text) as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(want)) assert.deepEqual(rule[k], v, k);
      assert.equal(rule.source, text);
    });
  }

  const errors: Array<[string, RegExp]> = [
    ["*.com", /public suffix/],
    ["*.co.uk", /public suffix/],
    ["*.github.io", /public suffix/],
    ["*.test", /public suffix/],
    ["*", /no catch-all/],
    ["*example.com", /wildcard/],
    ["a.*.example.com", /wildcard/],
    ["https://example.com", /scheme/],
    ["example.com:0", /1-65535/],
    ["example.com:65536", /1-65535/],
    ["example.com:90-80", /1-65535/],
    ["example.com:http", /not a port/],
    ["example.com:", /empty port/],
    ["10.0.0.1/8", /host bits.*10\.0\.0\.0\/8/],
    ["10.0.0.0/33", /too long/],
    ["10.0.0.0:80/8", /brackets/],
    ["2130706433", /full dotted form/],
    ["10.1/16", /full dotted form|not a valid/],
    ["*.10.0.0.1", /wildcard cannot apply/],
    ["[example.com]:80", /only IP addresses/],
    ["[::1", /unclosed/],
    [" example.com", /spaces/],
    ["exa mple.com", /host/],
    ["example.com/a?b", /path prefix/],
    ["fd00::1/8", /host bits/],
    ["a..b", /not a valid host/],
    ["10.1.0.0/16:5432", /CIDR with a port in brackets/],
  ];
  for (const [text, why] of errors) {
    test(`rejects ${JSON.stringify(text)}`, () => {
      assert.throws(
        () => parseRule(text),
        (e: unknown) => e instanceof RuleError && e.message.includes(`"${text}"`) && why.test(e.message),
      );
    });
  }

  test("a deny wildcard on a public suffix is fine (it only takes away)", () => {
    assert.equal(parseRule("*.com", "deny").host.kind, "name");
  });
  test("deny rules without a port cover every port", () => {
    assert.deepEqual(parseRule("example.com", "deny").ports, [[1, 65535]]);
  });
});

describe("pathMatches", () => {
  const cases: Array<[string, string, boolean]> = [
    ["/v2/", "/v2/", true],
    ["/v2/", "/v2/x", true],
    ["/v2/", "/v2", false],
    ["/v2", "/v2", true],
    ["/v2", "/v2/x", true],
    ["/v2", "/v20", false],
    ["/", "/anything", true],
  ];
  for (const [prefix, path, want] of cases)
    test(`${prefix} ~ ${path} = ${want}`, () => assert.equal(pathMatches(prefix, path), want));
});

describe("decide", () => {
  const p = plan({
    allow: [
      "allowed.test",
      "*.wild.test",
      "ports.test:8080",
      "range.test:9000-9010",
      "api.test/v2/",
      "api.test/public",
      "10.0.0.0/8",
      "[::1]:8080",
      "mixed.test",
      "mixed.test/only/",
      "get.test",
      "post.test",
      "bücher.de",
    ],
    deny: ["bad.wild.test", "allowed.test:8443", "10.9.0.0/16", "mixed.test/admin/", "*.deep.wild.test"],
    methods: { "get.test": ["GET", "HEAD"], "*.wild.test": ["GET", "HEAD", "CONNECT"] },
  });
  const r = (kind: RuleRequest["kind"], h: string, port: number, method?: string, path?: string): string => {
    const req: RuleRequest = { kind, host: host(h), port };
    if (method) req.method = method;
    if (path) req.path = path;
    const v = decide(p, req);
    return v.verdict === "deny" ? v.reason : v.verdict;
  };
  const table: Array<[string, string]> = [
    [r("connect", "allowed.test", 443), "allow"],
    [r("http", "allowed.test", 80, "GET", "/"), "allow"],
    [r("connect", "ALLOWED.test.", 443), "allow"],
    [r("connect", "allowed.test", 8080), "port-not-allowed"],
    [r("connect", "allowed.test", 8443), "deny-rule"],
    [r("connect", "sub.allowed.test", 443), "unknown"],
    [r("connect", "other.test", 443), "unknown"],
    [r("connect", "allowed.test.evil.test", 443), "unknown"],
    [r("connect", "evilallowed.test", 443), "unknown"],
    [r("connect", "a.wild.test", 443), "allow"],
    [r("connect", "a.b.c.wild.test", 443), "allow"],
    [r("connect", "wild.test", 443), "unknown"],
    [r("connect", "bad.wild.test", 443), "deny-rule"],
    [r("http", "bad.wild.test", 80, "GET", "/"), "deny-rule"],
    [r("connect", "x.deep.wild.test", 443), "deny-rule"],
    [r("connect", "deep.wild.test", 443), "allow"],
    [r("http", "a.wild.test", 80, "POST", "/"), "method-not-allowed"],
    [r("http", "a.wild.test", 80, "HEAD", "/"), "allow"],
    [r("connect", "ports.test", 8080), "allow"],
    [r("connect", "ports.test", 443), "port-not-allowed"],
    [r("connect", "range.test", 9005), "allow"],
    [r("connect", "range.test", 9011), "port-not-allowed"],
    [r("http", "api.test", 80, "GET", "/v2/x"), "allow"],
    [r("http", "api.test", 80, "GET", "/v2"), "path-not-allowed"],
    [r("http", "api.test", 80, "GET", "/v3/"), "path-not-allowed"],
    [r("http", "api.test", 80, "GET", "/public"), "allow"],
    [r("http", "api.test", 80, "GET", "/public/x"), "allow"],
    [r("http", "api.test", 80, "GET", "/publicity"), "path-not-allowed"],
    [r("connect", "api.test", 443), "tunnel-not-inspectable"],
    [r("socks", "api.test", 443), "tunnel-not-inspectable"],
    [r("http", "mixed.test", 80, "GET", "/x"), "allow"],
    [r("http", "mixed.test", 80, "GET", "/admin/x"), "deny-rule"],
    [r("connect", "mixed.test", 443), "tunnel-not-inspectable"],
    [r("http", "get.test", 80, "GET", "/"), "allow"],
    [r("http", "get.test", 80, "POST", "/"), "method-not-allowed"],
    [r("http", "get.test", 80, "DELETE", "/"), "method-not-allowed"],
    [r("connect", "get.test", 443), "tunnel-not-inspectable"],
    [r("http", "post.test", 80, "POST", "/"), "allow"],
    [r("connect", "10.1.2.3", 443), "allow"],
    [r("connect", "0x0a.1.2.3", 443), "allow"],
    [r("connect", "[::ffff:10.1.2.3]", 443), "allow"],
    [r("connect", "10.9.1.1", 443), "deny-rule"],
    [r("connect", "[::ffff:10.9.1.1]", 443), "deny-rule"],
    [r("connect", "10.1.2.3", 22), "port-not-allowed"],
    [r("connect", "11.0.0.1", 443), "unknown"],
    [r("connect", "[::1]", 8080), "allow"],
    [r("connect", "[0:0::1]", 8080), "allow"],
    [r("connect", "[::1]", 443), "port-not-allowed"],
    [r("connect", "127.0.0.1", 8080), "unknown"],
    [r("connect", "xn--bcher-kva.de", 443), "allow"],
    [r("connect", "BÜCHER.de", 443), "allow"],
    [r("connect", "allowed.test", 0), "bad-target"],
    [r("connect", "allowed.test", 70000), "bad-target"],
  ];
  table.forEach(([got, want], i) => {
    test(`case ${i}: ${want}`, () => assert.equal(got, want));
  });

  test("deny wins over an allow rule for the same host", () => {
    const q = plan({ allow: ["both.test"], deny: ["both.test"] });
    assert.deepEqual(decide(q, { kind: "connect", host: host("both.test"), port: 443 }), {
      verdict: "deny",
      reason: "deny-rule",
      rule: "both.test",
    });
  });
  test("the * method limit applies to every host, and CONNECT must be listed for tunnels", () => {
    const q = plan({ allow: ["a.test", "b.test"], methods: { "*": ["GET", "HEAD"] } });
    assert.equal(
      decide(q, { kind: "http", host: host("b.test"), port: 80, method: "PUT", path: "/" }).verdict,
      "deny",
    );
    assert.equal(
      decide(q, { kind: "http", host: host("b.test"), port: 80, method: "GET", path: "/" }).verdict,
      "allow",
    );
    assert.equal(decide(q, { kind: "connect", host: host("a.test"), port: 443 }).verdict, "deny");
    const open = plan({ allow: ["a.test"], methods: { "*": ["GET", "CONNECT"] } });
    assert.equal(decide(open, { kind: "connect", host: host("a.test"), port: 443 }).verdict, "allow");
  });
});

describe("vetAddress", () => {
  const p = plan({
    allow: ["pinned.test", "10.1.0.0/16", "[fd00::/8]:8443"],
    deny: ["203.0.113.0/24"],
    resolve: ["pinned.test=10.9.9.9"],
  });
  const cases: Array<[string, number, boolean, string]> = [
    ["93.184.215.14", 443, false, "public"],
    ["127.0.0.1", 443, false, "address-loopback"],
    ["::1", 443, false, "address-loopback"],
    ["::ffff:127.0.0.1", 443, false, "address-loopback"],
    ["169.254.169.254", 80, false, "address-metadata"],
    ["fd00:ec2::254", 80, false, "address-metadata"],
    ["10.2.0.1", 443, false, "address-private"],
    ["100.64.1.1", 443, false, "address-cgnat"],
    ["10.1.2.3", 443, false, "cidr"],
    ["10.1.2.3", 22, false, "address-private"],
    ["fd00::5", 8443, false, "cidr"],
    ["fd00::5", 443, false, "address-unique-local"],
    ["10.9.9.9", 443, true, "pin"],
    ["127.0.0.1", 443, true, "pin"],
    ["203.0.113.5", 443, true, "deny-rule"],
    ["not-an-ip", 443, false, "address-invalid"],
  ];
  for (const [address, port, pinned, want] of cases) {
    test(`${address}:${port}${pinned ? " (pinned)" : ""} -> ${want}`, () => {
      const v = vetAddress(p, address, port, pinned);
      assert.equal(v.ok ? v.via : v.reason, want);
    });
  }
});

describe("compileEgressPlan", () => {
  test("defaults: deny unknown, builtin proxy, not transparent, 80/443", () => {
    const p = plan({ allow: ["a.test"] });
    assert.equal(p.unknown, "deny");
    assert.equal(p.proxy, "builtin");
    assert.equal(p.transparent, false);
    assert.deepEqual(p.allow[0]!.ports, [
      [80, 80],
      [443, 443],
    ]);
  });
  test("the plan is plain JSON and survives a round trip", () => {
    const p = plan({
      allow: ["a.test", "*.b.test:8443/x/", "10.0.0.0/8"],
      deny: ["c.test"],
      resolve: ["a.test=127.0.0.1", "A.TEST.=::1"],
      methods: { "a.test": ["GET"] },
      unknown: "ask",
    });
    const copy = JSON.parse(JSON.stringify(p)) as EgressPlan;
    assert.deepEqual(copy, p);
    assert.deepEqual(copy.pins, { "a.test": ["127.0.0.1", "::1"] });
    assert.equal(
      decide(copy, { kind: "http", host: host("x.b.test"), port: 8443, method: "GET", path: "/x/y" }).verdict,
      "allow",
    );
  });
  test("bad resolve entries and method keys name themselves", () => {
    assert.throws(() => plan({ resolve: ["a.test=nope"] }), /"a\.test=nope".*not an IP/);
    assert.throws(() => plan({ resolve: ["10.0.0.1=10.0.0.2"] }), /host name/);
    assert.throws(() => plan({ methods: { "a.test:8080": ["GET"] } }), /without port or path/);
    assert.throws(() => plan({ allow: ["ok.test", "*.co.uk"] }), /"\*\.co\.uk"/);
  });
});

describe("egressSchema", () => {
  test("fills every default and rejects unknown keys", () => {
    assert.deepEqual(egressSchema.parse({}), {
      allow: [],
      deny: [],
      resolve: [],
      methods: {},
      unknown: "deny",
      transparent: false,
      proxy: "builtin",
    });
    assert.throws(() => egressSchema.parse({ allowed: [] }));
    assert.throws(() => egressSchema.parse({ unknown: "allow" }));
    assert.throws(() => egressSchema.parse({ methods: { "a.test": ["get"] } }));
  });
  test("every field carries a description in the JSON Schema", () => {
    const schema = z.toJSONSchema(egressSchema, { io: "input" }) as {
      properties: Record<string, { description?: string }>;
    };
    for (const [key, prop] of Object.entries(schema.properties))
      assert.ok(prop.description, `${key} has no description`);
  });
});
