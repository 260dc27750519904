import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  FirewallError,
  iptablesSections,
  parseProxyAddress,
  renderIptables,
  renderNftables,
} from "../../../../src/walls/egress/network/firewall.js";

describe("parseProxyAddress", () => {
  test("IPv4 and bracketed IPv6 with a port", () => {
    assert.deepEqual(parseProxyAddress("172.17.0.1:3128"), { host: "172.17.0.1", port: 3128 });
    assert.deepEqual(parseProxyAddress("[fd00::1]:8080"), { host: "fd00::1", port: 8080 });
  });
  test("refuses names, missing ports, bad ports, unbracketed IPv6", () => {
    for (const bad of [
      "proxy.local:3128",
      "172.17.0.1",
      "172.17.0.1:0",
      "172.17.0.1:70000",
      "fd00::1:3128",
      "1.2.3:80",
      "",
    ])
      assert.throws(() => parseProxyAddress(bad), FirewallError, bad);
  });
});

describe("renderNftables", () => {
  const v4 = renderNftables({ host: "172.17.0.1", port: 3128 });
  const rules = (text: string, chain: string) => {
    const body = text.split(`chain ${chain} {`)[1]!.split("}")[0]!;
    return body
      .trim()
      .split("\n")
      .map((l) => l.trim());
  };

  test("one inet table (IPv4 and IPv6), replaced whole when loaded again", () => {
    assert.match(
      v4,
      /^table inet fourwall_egress\ndelete table inet fourwall_egress\ntable inet fourwall_egress \{$/m,
    );
    assert.equal(v4.match(/^table /gm)?.length, 2);
  });

  test("output: default drop, lo and the proxy only, then reject (TCP reset, ICMP for the rest)", () => {
    assert.deepEqual(rules(v4, "output"), [
      "type filter hook output priority filter; policy drop;",
      'oifname "lo" accept',
      "ip daddr 172.17.0.1 tcp dport 3128 accept",
      "meta l4proto tcp reject with tcp reset",
      "reject with icmpx type admin-prohibited",
    ]);
  });

  test("input and forward default drop; only replies and loopback come in", () => {
    assert.deepEqual(rules(v4, "input"), [
      "type filter hook input priority filter; policy drop;",
      'iifname "lo" accept',
      "ct state established,related accept",
    ]);
    assert.deepEqual(rules(v4, "forward"), ["type filter hook forward priority filter; policy drop;"]);
  });

  test("no UDP or DNS exception anywhere", () => {
    assert.doesNotMatch(v4, /udp|dport 53\b|domain/);
  });

  test("an IPv6 proxy is matched as ip6", () => {
    assert.match(
      renderNftables({ host: "fd00::1", port: 3128 }),
      /^ {4}ip6 daddr fd00::1 tcp dport 3128 accept$/m,
    );
  });
});

describe("renderIptables", () => {
  test("IPv4 and IPv6 sections, each default drop with rejects; the proxy only in its own family", () => {
    const { v4, v6 } = iptablesSections(renderIptables({ host: "172.17.0.1", port: 3128 }));
    for (const section of [v4, v6]) {
      assert.match(section, /^\*filter$/m);
      for (const chain of ["INPUT", "FORWARD", "OUTPUT"])
        assert.match(section, new RegExp(`^:${chain} DROP \\[0:0\\]$`, "m"));
      assert.match(section, /^-A OUTPUT -o lo -j ACCEPT$/m);
      assert.match(section, /^-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset$/m);
      assert.match(section, /COMMIT\n$/);
    }
    assert.match(v4, /^-A OUTPUT -d 172\.17\.0\.1\/32 -p tcp -m tcp --dport 3128 -j ACCEPT$/m);
    assert.match(v4, /--reject-with icmp-admin-prohibited$/m);
    assert.doesNotMatch(v6, /--dport 3128/);
    assert.match(v6, /--reject-with icmp6-adm-prohibited$/m);
  });

  test("an IPv6 proxy goes in the IPv6 section", () => {
    const { v4, v6 } = iptablesSections(renderIptables({ host: "fd00::1", port: 3128 }));
    assert.doesNotMatch(v4, /--dport/);
    assert.match(v6, /^-A OUTPUT -d fd00::1\/128 -p tcp -m tcp --dport 3128 -j ACCEPT$/m);
  });
});
