import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { compileEgressPlan, type EgressPlan } from "../../../../src/walls/egress/rules/rules.js";
import { type EgressPolicyInput, egressSchema } from "../../../../src/walls/egress/schema.js";
import {
  dedupeDomains,
  pathRegex,
  renderSquidConfig,
  renderSquidHosts,
  SquidConfigError,
  withoutSubsets,
} from "../../../../src/walls/egress/squid/config.js";
import { parseSquidLogLine } from "../../../../src/walls/egress/squid/log.js";

const plan = (input: EgressPolicyInput): EgressPlan => compileEgressPlan(egressSchema.parse(input));
const render = (input: EgressPolicyInput, dir?: string) =>
  renderSquidConfig(plan(input), { listen: { host: "127.0.0.1", port: 40123 }, ...(dir ? { dir } : {}) });
const lines = (conf: string, prefix: string) => conf.split("\n").filter((l) => l.startsWith(prefix));
const lastIndex = (list: string[], pred: (l: string) => boolean) => list.map(pred).lastIndexOf(true);
/** The ACL's type and values, by exact name, or by name prefix (ACL names end in a serial number). */
function aclLine(conf: string, name: string): string[] {
  const line = lines(conf, `acl ${name}`).find((l) => new RegExp(`^acl ${name}\\d* `).test(l));
  assert.ok(line, `no acl ${name}`);
  return line.split(" ").slice(2);
}
const acl = (conf: string, name: string) => aclLine(conf, name).slice(1);

describe("renderSquidConfig", () => {
  const full: EgressPolicyInput = {
    allow: [
      "api.example.com",
      "*.cdn.example.com",
      "example.org:8443",
      "paths.example.net/v2/",
      "[10.1.0.0/16]:5432",
    ],
    deny: ["bad.cdn.example.com", "192.168.0.0/16"],
    resolve: ["api.example.com=127.0.0.1"],
    methods: { "api.example.com": ["GET", "HEAD"] },
  };

  test("one listener, on the address given", () => {
    const conf = render(full);
    assert.deepEqual(lines(conf, "http_port"), [
      "http_port 127.0.0.1:40123 ssl-bump tls-cert=/etc/squid/fourwall/bump.pem tls-key=/etc/squid/fourwall/bump.key generate-host-certificates=off",
    ]);
    assert.deepEqual(lines(conf, "icp_port"), ["icp_port 0"]);
    assert.deepEqual(lines(conf, "htcp_port"), ["htcp_port 0"]);
  });

  test("every dstdomain ACL uses -n (no reverse lookup of raw IPs)", () => {
    const conf = render(full);
    const domainAcls = lines(conf, "acl ").filter((l) => / dstdomain /.test(l));
    assert.ok(domainAcls.length > 3);
    for (const l of domainAcls) assert.match(l, / dstdomain -n /);
  });

  test("deny first: one allow line, for what a rule took and every check passed, then a final deny", () => {
    const conf = render(full);
    const access = lines(conf, "http_access");
    assert.deepEqual(
      access.filter((l) => l.startsWith("http_access allow")),
      ["http_access allow fw_ruled"],
    );
    assert.deepEqual(access.slice(-2), ["http_access allow fw_ruled", "http_access deny fw_r_not_allowed"]);
    // each allow rule is judged by a line that never matches and only marks the transaction
    const marks = access.filter((l) => l.endsWith(" fw_mark_rule fw_never"));
    assert.equal(marks.length, 5, "one mark per allow rule");
    assert.ok(
      lastIndex(access, (l) => l.endsWith("fw_r_deny_rule")) < access.indexOf("http_access allow fw_ruled"),
    );
    // every other deny line names its reason
    for (const l of access)
      if (l.startsWith("http_access deny") && !l.endsWith(" fw_never")) assert.match(l, / fw_r_[a-z_]+$/);
    // the builtin's order: deny rules, not on the list, port/path, methods, then the address guard
    const order = [
      "fw_r_deny_rule",
      "fw_r_not_allowed",
      "fw_r_port_not_allowed",
      "fw_r_method_not_allowed",
      "fw_r_address_loopback",
    ];
    const at = order.map((r) => access.findIndex((l) => l.endsWith(r)));
    assert.deepEqual(
      [...at].sort((x, y) => x - y),
      at,
      `${order} out of order: ${at}`,
    );
  });

  test("names are judged before anything resolves: the not-allowed line comes before any dst ACL of the guard", () => {
    const conf = render(full);
    const access = lines(conf, "http_access");
    const notAllowed = access.findIndex((l) => l.includes("!fw_allowed_names"));
    const guard = access.findIndex((l) => l.includes("fw_int_"));
    assert.ok(notAllowed >= 0 && guard > notAllowed);
    // dst ACLs before the not-allowed line only ever apply to IP literals (no DNS for unlisted names)
    for (const l of access.slice(0, notAllowed)) {
      for (const name of l.split(" ").slice(2)) {
        const bare = name.replace(/^!/, "");
        if (
          bare.startsWith("fw_r_") ||
          bare.startsWith("fw_connect") ||
          bare.startsWith("fw_http") ||
          bare === "fw_iplit"
        )
          continue;
        const kind = aclLine(conf, bare)[0];
        if (kind === "dst") assert.match(l, / fw_iplit /, `${l} resolves a name`);
      }
    }
  });

  test("a wildcard allows subdomains only, not the name itself (as in the builtin proxy)", () => {
    const conf = render({ allow: ["*.cdn.example.com"] });
    assert.deepEqual(acl(conf, "fw_allowed_names"), ["-n", ".cdn.example.com"]);
    assert.deepEqual(acl(conf, "fw_wild_apex"), ["-n", "cdn.example.com"]);
    const mark = lines(conf, "http_access deny").find((l) => l.endsWith("fw_mark_rule fw_never"))!;
    assert.match(mark, /^http_access deny fw_a\d+ !fw_a_apex\d+ fw_aport\d+ fw_mark_rule fw_never$/);
  });

  test("the apex of a wildcard is not refused when another rule allows it", () => {
    const conf = render({ allow: ["*.example.com", "example.com"] });
    assert.equal(lines(conf, "acl fw_wild_apex").length, 0);
  });

  test("never lists a name and a wildcard covering it in one ACL (squid refuses to start)", () => {
    assert.deepEqual(dedupeDomains(["a.test", ".a.test", "b.a.test", ".c.a.test", "x.test"]), [
      ".a.test",
      "x.test",
    ]);
    const conf = render({ allow: ["a.test", "*.a.test", "*.b.a.test", "b.a.test"] });
    assert.deepEqual(acl(conf, "fw_allowed_names"), ["-n", ".a.test"]);
  });

  test("ports, CIDRs, paths and methods", () => {
    const conf = render(full);
    assert.ok(lines(conf, "acl fw_aport").some((l) => l.endsWith(" port 8443")));
    assert.ok(lines(conf, "acl fw_aport").some((l) => l.endsWith(" port 80 443")));
    assert.ok(
      lines(conf, "acl fw_dport").every((l) => l.endsWith(" port 1-65535")),
      "a deny rule without a port covers every port",
    );
    assert.deepEqual(acl(conf, "fw_allowed_cidrs"), ["10.1.0.0/16"]);
    const marks = lines(conf, "http_access deny").filter((l) => l.endsWith("fw_mark_rule fw_never"));
    assert.ok(marks.some((l) => /^http_access deny fw_iplit fw_a\d+ fw_aport\d+ fw_mark_rule/.test(l)));
    const pathMark = marks.find((l) => l.includes("fw_apath"))!;
    assert.match(
      pathMark,
      /!fw_connect fw_apath\d+ fw_mark_rule fw_never$/,
      "a path rule never matches a tunnel",
    );
    assert.ok(lines(conf, "acl fw_apath").some((l) => l.endsWith("urlpath_regex ^/v2/")));
    assert.ok(
      lines(conf, "http_access deny").some((l) =>
        /fw_connect fw_m\d+ !fw_methods\d+ fw_r_tunnel_not_inspectable$/.test(l),
      ),
    );
    assert.ok(
      lines(conf, "http_access deny").some((l) => l.includes("fw_r_path_not_normal")),
      "dot segments refused when paths matter",
    );
  });

  test("path prefixes keep the builtin's segment boundary", () => {
    const re = (p: string) => new RegExp(pathRegex(p));
    assert.ok(re("/v2").test("/v2") && re("/v2").test("/v2/x") && re("/v2").test("/v2?q"));
    assert.ok(!re("/v2").test("/v20"));
    assert.ok(re("/v2/").test("/v2/x") && !re("/v2/").test("/v2"));
    assert.ok(!re("/a.b").test("/aXb"), "regex characters in the prefix are literal");
  });

  test("the address guard: every internal class refused unless pinned or inside an allowed CIDR", () => {
    const conf = render(full);
    const guard = lines(conf, "http_access deny").filter((l) => l.includes("fw_int_"));
    for (const kind of [
      "loopback",
      "private",
      "link_local",
      "metadata",
      "cgnat",
      "unique_local",
      "multicast",
    ]) {
      const line = guard.find((l) => l.includes(`fw_int_${kind}`));
      assert.ok(line, kind);
      assert.match(line, /!fw_pinned\d+ !fw_exempt fw_r_address_/);
    }
    const metadataAcl = lines(conf, "acl fw_int_metadata")[0]!;
    assert.match(metadataAcl, / 169\.254\.169\.254\/32 /);
    assert.match(metadataAcl, / fd00:ec2::254\/128/);
    // metadata is judged before the wider link-local range, so the denial names it
    assert.ok(
      guard.findIndex((l) => l.includes("fw_int_metadata")) <
        guard.findIndex((l) => l.includes("fw_int_link_local")),
    );
    assert.deepEqual(acl(conf, "fw_pinned"), ["-n", "api.example.com"]);
    // an address in an allowed CIDR is exempt only on that rule's ports
    assert.ok(
      lines(conf, "http_access deny").some((l) =>
        /^http_access deny fw_exempt_range\d+ fw_exempt_port\d+ fw_mark_exempt fw_never$/.test(l),
      ),
    );
  });

  test("no range of an ACL sits inside another (squid would drop the wider one)", () => {
    assert.deepEqual(withoutSubsets(["2001::/32", "2001::/23", "10.0.0.0/8", "10.1.0.0/16", "::1/128"]), [
      "2001::/23",
      "10.0.0.0/8",
      "::1/128",
    ]);
    const conf = render(full);
    for (const line of lines(conf, "acl ").filter((l) => l.includes(" dst "))) {
      const values = line.split(" ").slice(3);
      assert.deepEqual(withoutSubsets(values), values, line);
      assert.ok(
        !values.includes("::/3"),
        "::/3 would cover every IPv4 address (squid maps them to ::ffff:0:0/96)",
      );
    }
  });

  test("refuses what squid cannot do: unknown: ask", () => {
    assert.throws(() => render({ unknown: "ask" }), SquidConfigError);
  });

  test("the per-box form keeps every file in its own directory; the paste-elsewhere form names none", () => {
    const perBox = render(full, "/run/x/squid");
    for (const key of ["pid_filename", "cache_log", "error_directory", "hosts_file", "coredump_dir"])
      assert.match(lines(perBox, key)[0]!, / \/run\/x\/squid/);
    assert.match(lines(perBox, "access_log")[0]!, /^access_log stdio:\/run\/x\/squid\/access\.log fourwall$/);
    const paste = render(full);
    assert.equal(lines(paste, "pid_filename").length, 0);
    assert.equal(lines(paste, "access_log").length, 0);
    assert.match(paste, /# {3}127\.0\.0\.1 api\.example\.com/, "pins become a hosts_file hint");
  });

  test("no line ends in a backslash (squid would join it with the next)", () => {
    for (const l of render(full).split("\n")) assert.ok(!l.endsWith("\\"), l);
  });

  test("the denial reason reaches the client as X-Fourwall-Denied", () => {
    assert.match(render(full), /^reply_header_add X-Fourwall-Denied "%note\{fw_reason\}" fw_denied$/m);
  });

  test("with auth: every request needs the proxy credential, checked before any rule; one request per connection", () => {
    const conf = renderSquidConfig(plan(full), {
      listen: { host: "127.0.0.1", port: 40123 },
      dir: "/run/x",
      auth: { helper: "/usr/lib/squid/basic_ncsa_auth", passwordFile: "/run/x/passwd" },
    });
    assert.match(conf, /^auth_param basic program \/usr\/lib\/squid\/basic_ncsa_auth \/run\/x\/passwd$/m);
    assert.match(conf, /^client_persistent_connections off$/m);
    assert.equal(lines(conf, "http_access")[0], "http_access deny !fw_auth");
    assert.deepEqual(acl(conf, "fw_auth"), ["REQUIRED"]);
    // without it (the paste-elsewhere form, k8s) none of this
    assert.doesNotMatch(render(full), /auth_param|fw_auth|client_persistent/);
  });
});

describe("renderSquidHosts", () => {
  test("pins first; the host's entries for pinned names are dropped", () => {
    const p = plan({ resolve: ["api.example.com=127.0.0.1", "v6.example.com=::1"] });
    const out = renderSquidHosts(p, "127.0.0.1 localhost\n10.0.0.5 api.example.com other # comment\n");
    assert.deepEqual(out.trim().split("\n"), [
      "127.0.0.1 api.example.com",
      "::1 v6.example.com",
      "127.0.0.1 localhost",
      "10.0.0.5 other",
    ]);
  });
});

describe("parseSquidLogLine", () => {
  test("an allowed tunnel", () => {
    const e = parseSquidLogLine(
      "1795720046.700 TCP_TUNNEL 200 CONNECT allowed.test 443 127.0.0.1 208 4000 12 - - -",
      "b1",
    );
    assert.deepEqual(e, {
      time: new Date(1795720046700).toISOString(),
      box: "b1",
      kind: "connect",
      host: "allowed.test",
      port: 443,
      decision: "allow",
      reason: "rule",
      bytesUp: 208,
      bytesDown: 4000,
      durationMs: 12,
      address: "127.0.0.1",
    });
  });

  test("a denial carries fourwall's reason, the method and the path", () => {
    const e = parseSquidLogLine(
      "1795720046.7 TCP_DENIED 403 GET other.test 80 - 134 402 0 not-allowed ERR_ACCESS_DENIED /a b",
      "b1",
    )!;
    assert.equal(e.decision, "deny");
    assert.equal(e.reason, "not-allowed");
    assert.equal(e.method, "GET");
    assert.equal(e.path, "/a b");
    assert.equal(e.address, undefined);
  });

  test("a request without the proxy credential (not through the box's socket) is a proxy-auth denial", () => {
    const e = parseSquidLogLine(
      "1795720046.7 TCP_DENIED 407 GET 127.0.0.1 8080 - 134 402 0 - ERR_CACHE_ACCESS_DENIED /",
      "b1",
    )!;
    assert.equal(e.decision, "deny");
    assert.equal(e.reason, "proxy-auth");
  });

  test("an allowed request that failed upstream keeps decision allow and names the error", () => {
    const e = parseSquidLogLine(
      "1.0 TCP_MISS 503 GET allowed.test 81 127.0.0.1 100 300 1 - ERR_CONNECT_FAIL /",
      "b",
    )!;
    assert.equal(e.decision, "allow");
    assert.equal(e.error, "connect-failed");
  });

  test("a peeked tunnel's first line (the splice decision, no bytes) is not an event; its refusal is", () => {
    assert.equal(parseSquidLogLine("1.0 NONE_NONE 200 CONNECT a.test 443 - 0 0 1 - - -", "b"), undefined);
    const e = parseSquidLogLine("1.0 NONE_NONE 200 CONNECT a.test 443 - 0 0 1 sni-mismatch - -", "b")!;
    assert.equal(e.decision, "deny");
    assert.equal(e.reason, "sni-mismatch");
  });

  test("tunnels: peek, splice on the SNI the same rule allows, terminate the rest; tcp:// spliced unlooked-at", () => {
    const conf = render({ allow: ["a.test", "*.w.test:8443", "tcp://git.test:22", "[10.0.0.0/8]:9000"] });
    const bump = lines(conf, "ssl_bump");
    assert.match(bump[0]!, /^ssl_bump splice fw_raw\d+ fw_rawport\d+$/, "tcp:// first, before any peek");
    assert.equal(bump[1], "ssl_bump peek fw_step1");
    assert.equal(bump.at(-1), "ssl_bump terminate fw_r_sni_mismatch");
    assert.ok(bump.includes("ssl_bump terminate fw_nosni fw_r_sni_missing"));
    assert.ok(bump.includes("ssl_bump splice fw_iplit fw_nosni"), "an IP target only without SNI");
    const wild = bump.find((l) => / fw_sni\d+ !fw_sni_apex\d+$/.test(l));
    assert.ok(wild, "a wildcard's SNI excludes its apex, like its CONNECT name");
    assert.match(conf, /^acl fw_sni\d+ ssl::server_name --client-requested a\.test$/m);
    assert.match(
      lines(conf, "http_port")[0]!,
      / ssl-bump tls-cert=\S+ tls-key=\S+ generate-host-certificates=off$/,
    );
    assert.deepEqual(lines(conf, "on_unsupported_protocol"), [
      "on_unsupported_protocol respond !fw_denied fw_r_tunnel_not_tls",
      "on_unsupported_protocol respond all",
    ]);
  });

  test("a request squid could not parse is a denial", () => {
    const e = parseSquidLogLine("1.0 NONE_NONE 400 NONE - 0 - 20 300 0 - ERR_INVALID_REQ -", "b")!;
    assert.equal(e.decision, "deny");
    assert.equal(e.reason, "bad-request");
  });

  test("foreign or cut lines are ignored", () => {
    assert.equal(parseSquidLogLine("garbage", "b"), undefined);
    assert.equal(parseSquidLogLine("", "b"), undefined);
    assert.equal(parseSquidLogLine("x TCP_MISS 200 GET a 80 - 1 2 3 - - /", "b"), undefined);
  });
});
