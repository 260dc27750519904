import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  bridgeScript,
  planBoxNetwork,
  proxyEnvironment,
} from "../../../../src/walls/egress/network/network.js";
import {
  followLinks,
  MAX_RANGE,
  mappedAddress,
  planTransparent,
  procNetTcpAddress,
} from "../../../../src/walls/egress/network/transparent.js";
import { compileEgressPlan } from "../../../../src/walls/egress/rules/rules.js";
import { type EgressPolicyInput, egressSchema } from "../../../../src/walls/egress/schema.js";

const plan = (input: EgressPolicyInput) => compileEgressPlan(egressSchema.parse(input));

describe("planTransparent", () => {
  const t = planTransparent(
    plan({
      allow: [
        "api.example.com",
        "registry.example.org:8443",
        "*.cdn.example.com",
        "10.0.0.0/8",
        "docs.example.net/v2/",
        "ws.example.com:9000-9100",
        "api.example.com:8080",
      ],
    }),
    { hostname: "fourwall" },
  );

  test("only exact names get an address, each its own, in 127.77.0.0/16", () => {
    const mapped = t.hosts
      .split("\n")
      .filter((l) => l.startsWith("127.77."))
      .map((l) => l.split("\t"));
    assert.deepEqual(mapped, [
      ["127.77.0.1", "api.example.com"],
      ["127.77.0.2", "registry.example.org"],
      ["127.77.0.3", "ws.example.com"],
    ]);
    assert.match(t.hosts, /^127\.0\.0\.1\tlocalhost$/m);
    assert.match(t.hosts, /^127\.0\.1\.1\tfourwall$/m);
    assert.doesNotMatch(t.hosts, /cdn|docs\.example\.net|10\.0\.0/);
  });

  test("one forwarder per name and allowed port; ports of several rules on one name add up", () => {
    assert.deepEqual(
      t.forwards.map((f) => `${f.host}@${f.address}:${f.port}`),
      [
        "api.example.com@127.77.0.1:80",
        "api.example.com@127.77.0.1:443",
        "api.example.com@127.77.0.1:8080",
        "registry.example.org@127.77.0.2:8443",
      ],
    );
    assert.equal(t.lowPorts, true);
  });

  test("says what a hosts file cannot capture: wildcards, address rules, paths, wide port ranges", () => {
    const notes = t.notes.join("\n");
    assert.match(notes, /\*\.cdn\.example\.com: a hosts file cannot list every subdomain/);
    assert.match(notes, /10\.0\.0\.0\/8: an address rule cannot be captured/);
    assert.match(notes, /docs\.example\.net\/v2\/: a path rule needs a proxy-aware client/);
    assert.match(notes, new RegExp(`ports 9000-9100 are too many to capture \\(at most ${MAX_RANGE}`));
  });

  test("no low port, no namespace preparation", () => {
    assert.equal(planTransparent(plan({ allow: ["a.example.com:8443"] })).lowPorts, false);
  });

  test("addresses never end in .0 or .255 and run out loudly", () => {
    assert.equal(mappedAddress(0), "127.77.0.1");
    assert.equal(mappedAddress(253), "127.77.0.254");
    assert.equal(mappedAddress(254), "127.77.1.1");
    assert.throws(() => mappedAddress(256 * 254), RangeError);
  });

  test("bind targets follow symlinks the way bwrap will (e.g. resolv.conf into /run)", () => {
    const links: Record<string, string> = { "/etc/resolv.conf": "../run/systemd/resolve/stub-resolv.conf" };
    assert.equal(
      followLinks("/etc/resolv.conf", (p) => links[p]),
      "/run/systemd/resolve/stub-resolv.conf",
    );
    assert.equal(
      followLinks("/etc/hosts", (p) => links[p]),
      "/etc/hosts",
    );
    assert.equal(followLinks("/etc/hosts", undefined), "/etc/hosts");
  });

  test("/proc/net/tcp spelling of a local address", () => {
    assert.equal(procNetTcpAddress("127.0.0.1", 3128), "0100007F:0C38");
    assert.equal(procNetTcpAddress("127.77.0.1", 443), "01004D7F:01BB");
  });
});

describe("the box network plan", () => {
  test("transparent off: no hosts file, the bridge only", () => {
    const net = planBoxNetwork(plan({ allow: ["a.example.com"] }));
    assert.equal(net.transparent, undefined);
    const script = bridgeScript(net);
    assert.equal(script.match(/socat /g)?.length, 1);
  });

  test("transparent on: a forwarder per name and port, CONNECTing by name through the bridge, all awaited", () => {
    const net = planBoxNetwork(plan({ allow: ["a.example.com"], transparent: true }));
    const script = bridgeScript(net);
    assert.match(
      script,
      /socat TCP-LISTEN:443,bind=127\.77\.0\.1,fork,reuseaddr 'PROXY:127\.0\.0\.1:a\.example\.com:443,proxyport=3128'/,
    );
    assert.match(
      script,
      /socat TCP-LISTEN:80,bind=127\.77\.0\.1,fork,reuseaddr 'PROXY:127\.0\.0\.1:a\.example\.com:80,proxyport=3128'/,
    );
    assert.match(script, /for l in 0100007F:0C38 01004D7F:0050 01004D7F:01BB; do/);
    assert.match(script, /exec "\$@"$/);
  });

  test("behind squid, ALL_PROXY is the HTTP proxy (squid speaks no SOCKS)", () => {
    assert.equal(
      proxyEnvironment(planBoxNetwork(plan({ proxy: "squid" }))).ALL_PROXY,
      "http://127.0.0.1:3128",
    );
    assert.equal(proxyEnvironment(planBoxNetwork(plan({}))).ALL_PROXY, "socks5h://127.0.0.1:3128");
  });
});
