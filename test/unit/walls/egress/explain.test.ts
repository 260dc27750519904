/**
 * What a refusal says (the proxy's 403/502 bodies and the exit summary): the host, the port, the
 * resolved address, and a fix that really works — each suggested rule is compiled and checked
 * against the same matcher the proxy uses. DNS failures read "unreachable", never "blocked".
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  noProxyFor,
  planBoxNetwork,
  proxyEnvironment,
} from "../../../../src/walls/egress/network/network.js";
import {
  fix,
  isUnreachable,
  refusalText,
  ruleFor,
  summaryRow,
} from "../../../../src/walls/egress/rules/explain.js";
import { normaliseHost } from "../../../../src/walls/egress/rules/hostname.js";
import { decide, vetAddress } from "../../../../src/walls/egress/rules/match.js";
import { compileEgressPlan, type EgressPlan } from "../../../../src/walls/egress/rules/rules.js";
import { type EgressPolicyInput, egressSchema } from "../../../../src/walls/egress/schema.js";

const plan = (input: EgressPolicyInput): EgressPlan => compileEgressPlan(egressSchema.parse(input));

/** The `-a RULE` a fix suggests. */
const suggested = (text: string | undefined) => /-a (\S+)/.exec(text ?? "")?.[1];

function allows(rules: string[], host: string, port: number): boolean {
  const h = normaliseHost(host);
  if ("error" in h) throw new Error(h.error);
  return decide(plan({ allow: rules }), { kind: "connect", host: h, port }).verdict === "allow";
}

describe("refusal messages", () => {
  test("an unlisted host: host, port and the -a flag (the default ports left out) that allows it", () => {
    const r = { host: "api.example.com", port: 443, reason: "not-allowed" };
    const text = refusalText("CONNECT", r);
    assert.match(
      text,
      /CONNECT to api\.example\.com:443 denied \(not-allowed\): no egress rule allows api\.example\.com:443/,
    );
    assert.match(text, /fix: -a api\.example\.com \(policy: egress\.allow: \["api\.example\.com"\]\)/);
    assert.equal(summaryRow(r), "api.example.com:443 (not-allowed): -a api.example.com");
    for (const [host, port] of [
      ["api.example.com", 443],
      ["api.example.com", 8443],
      ["::1", 8080],
      ["127.0.0.1", 9000],
    ] as const) {
      const rule = suggested(fix({ host, port, reason: "not-allowed" }));
      assert.ok(rule && allows([rule], host, port), `${rule} allows ${host}:${port}`);
    }
    assert.equal(ruleFor("::1", 8080), "[::1]:8080");
  });

  test("a port the host's rule does not cover: -a HOST:PORT", () => {
    const r = { host: "api.example.com", port: 8443, reason: "port-not-allowed" };
    assert.match(refusalText("CONNECT", r), /api\.example\.com is allowed, but not on port 8443/);
    assert.ok(allows(["api.example.com", suggested(fix(r))!], "api.example.com", 8443));
  });

  test("a name that resolves into a reserved range: the address, and --resolve or a CIDR that lets it through", () => {
    const r = { host: "docs.example", port: 443, reason: "address-documentation", address: "192.0.2.7" };
    const text = refusalText("CONNECT", r);
    assert.match(
      text,
      /docs\.example resolved to 192\.0\.2\.7, a documentation address, which the address guard refuses/,
    );
    assert.match(text, /--resolve docs\.example=192\.0\.2\.7 \(policy: egress\.resolve\)/);
    const cidr = suggested(fix(r))!;
    assert.equal(cidr, "192.0.2.7/32");
    assert.ok(vetAddress(plan({ allow: ["docs.example", cidr] }), "192.0.2.7", 443, false).ok);
    const on8080 = suggested(fix({ ...r, port: 8080 }))!;
    assert.ok(vetAddress(plan({ allow: ["docs.example:8080", on8080] }), "192.0.2.7", 8080, false).ok);
  });

  test("DNS failure upstream is unreachable, not blocked", () => {
    for (const reason of ["resolve-failed", "resolve-timeout"]) {
      const text = refusalText("GET", { host: "nothere.invalid", port: 80, reason });
      assert.match(text, /GET to nothere\.invalid:80 failed/);
      assert.match(text, /unreachable, not blocked/);
      assert.doesNotMatch(text, /denied|blocked \(/);
      assert.ok(isUnreachable(reason));
    }
    assert.ok(!isUnreachable("not-allowed"));
  });

  test("a deny rule names the rule; a non-TLS tunnel names the tcp:// opt-out", () => {
    assert.match(
      refusalText("CONNECT", { host: "x.example", port: 443, reason: "deny-rule", rule: "*.example" }),
      /the policy denies x\.example:443 \(rule \*\.example\)\n {2}fix: remove or narrow the deny rule \*\.example/,
    );
    assert.match(
      refusalText("CONNECT", { host: "git.example", port: 22, reason: "tunnel-not-inspectable" }),
      /fix: for another protocol on that port: -a tcp:\/\/git\.example:22/,
    );
  });
  test("squid's port used without the box's credential: another local process, and no rule to add", () => {
    const r = { host: "127.0.0.1", port: 8080, reason: "proxy-auth" };
    assert.match(refusalText("GET", r), /without the box's proxy credential: another local process/);
    assert.equal(summaryRow(r), "127.0.0.1:8080 (proxy-auth)");
  });
});

describe("the box's NO_PROXY", () => {
  test("lists the box's loopback names, minus those an allow rule names (they mean the host's)", () => {
    assert.deepEqual(noProxyFor(plan({ allow: ["example.com"] }).allow), ["localhost", "127.0.0.1", "::1"]);
    assert.deepEqual(noProxyFor(plan({ allow: ["127.0.0.1:8080"] }).allow), ["localhost", "::1"]);
    assert.deepEqual(noProxyFor(plan({ allow: ["localhost:3000", "[::1]:80"] }).allow), ["127.0.0.1"]);
    const env = proxyEnvironment(planBoxNetwork(plan({ allow: ["127.0.0.1:8080"] })));
    assert.equal(env.NO_PROXY, "localhost,::1");
    assert.equal(env.no_proxy, "localhost,::1");
    assert.doesNotMatch(env.JAVA_TOOL_OPTIONS!, /127\.0\.0\.1\|/);
  });
});
