import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type AddressClass,
  classifyAddress,
  isPublicAddress,
  parseIP,
} from "../../../../src/walls/egress/rules/addresses.js";

// Pure classification only: these addresses are data, no packet is ever sent to them.
const TABLE: Array<[string, AddressClass]> = [
  // IPv4 public
  ["8.8.8.8", "public"],
  ["1.1.1.1", "public"],
  ["93.184.215.14", "public"],
  ["100.63.255.255", "public"], // just below CGNAT
  ["100.128.0.0", "public"], // just above CGNAT
  ["172.15.255.255", "public"],
  ["172.32.0.0", "public"],
  ["192.0.1.255", "public"],
  ["198.17.255.255", "public"],
  ["198.20.0.0", "public"],
  ["223.255.255.255", "public"],
  ["11.0.0.1", "public"],
  ["169.253.255.255", "public"],
  ["169.255.0.0", "public"],
  // unspecified / this network
  ["0.0.0.0", "unspecified"],
  ["0.1.2.3", "unspecified"],
  // loopback
  ["127.0.0.1", "loopback"],
  ["127.255.255.254", "loopback"],
  ["127.1.2.3", "loopback"],
  // RFC 1918
  ["10.0.0.1", "private"],
  ["10.255.255.255", "private"],
  ["172.16.0.1", "private"],
  ["172.31.255.255", "private"],
  ["192.168.0.1", "private"],
  ["192.168.255.255", "private"],
  // link-local, metadata
  ["169.254.0.1", "link-local"],
  ["169.254.169.253", "link-local"],
  ["169.254.169.254", "metadata"],
  ["169.254.170.2", "metadata"],
  ["169.254.170.23", "metadata"],
  ["100.100.100.200", "metadata"],
  ["168.63.129.16", "metadata"],
  // CGNAT
  ["100.64.0.0", "cgnat"],
  ["100.127.255.255", "cgnat"],
  ["100.100.100.201", "cgnat"],
  // special
  ["192.0.0.8", "reserved"],
  ["192.0.0.170", "reserved"],
  ["192.88.99.1", "reserved"],
  ["192.0.2.1", "documentation"],
  ["198.51.100.7", "documentation"],
  ["203.0.113.255", "documentation"],
  ["198.18.0.1", "benchmarking"],
  ["198.19.255.255", "benchmarking"],
  ["224.0.0.1", "multicast"],
  ["239.255.255.250", "multicast"],
  ["240.0.0.1", "reserved"],
  ["254.255.255.255", "reserved"],
  ["255.255.255.255", "broadcast"],
  // IPv6 basics
  ["::", "unspecified"],
  ["::1", "loopback"],
  ["0:0:0:0:0:0:0:1", "loopback"],
  ["2606:4700:4700::1111", "public"],
  ["2001:4860:4860::8888", "public"],
  ["2a00:1450:4001:80b::200e", "public"],
  ["fe80::1", "link-local"],
  ["fe80::1%eth0", "link-local"],
  ["febf:ffff::1", "link-local"],
  ["fec0::1", "reserved"],
  ["fc00::1", "unique-local"],
  ["fd12:3456:789a::1", "unique-local"],
  ["ff02::1", "multicast"],
  ["ff05::1:3", "multicast"],
  ["2001:db8::1", "documentation"],
  ["3fff::1", "documentation"],
  ["2001:2::1", "benchmarking"],
  ["2001::1", "reserved"], // Teredo
  ["2001:20::1", "reserved"], // ORCHIDv2
  ["100::1", "reserved"], // discard-only
  ["4000::1", "reserved"], // outside 2000::/3
  ["::2", "unspecified"], // IPv4-compatible ::0.0.0.2
  // IPv6 metadata
  ["fd00:ec2::254", "metadata"],
  ["fd00:ec2:0:0:0:0:0:254", "metadata"],
  ["fd00:ec2::23", "metadata"],
  ["fd20:ce::254", "metadata"],
  // IPv4-mapped and SIIT
  ["::ffff:127.0.0.1", "loopback"],
  ["::ffff:7f00:1", "loopback"],
  ["::FFFF:127.0.0.1", "loopback"],
  ["::ffff:10.1.2.3", "private"],
  ["::ffff:169.254.169.254", "metadata"],
  ["::ffff:a9fe:a9fe", "metadata"],
  ["::ffff:8.8.8.8", "public"],
  ["::ffff:0:127.0.0.1", "loopback"],
  ["::ffff:0:8.8.8.8", "public"],
  // NAT64
  ["64:ff9b::8.8.8.8", "public"],
  ["64:ff9b::127.0.0.1", "loopback"],
  ["64:ff9b::a9fe:a9fe", "metadata"],
  ["64:ff9b::192.168.1.1", "private"],
  ["64:ff9b:1::1", "reserved"],
  // 6to4
  ["2002:0808:0808::1", "public"],
  ["2002:7f00:0001::1", "loopback"],
  ["2002:a9fe:a9fe::", "metadata"],
  ["2002:0a00:0001::1", "private"],
  ["2002:c0a8:0101::", "private"],
  // IPv4-compatible (deprecated)
  ["::127.0.0.1", "loopback"],
  ["::8.8.8.8", "reserved"],
  ["::10.0.0.1", "private"],
  // garbage
  ["", "invalid"],
  ["localhost", "invalid"],
  ["256.1.1.1", "invalid"],
  ["1.2.3", "invalid"],
  ["0x7f.0.0.1", "invalid"],
  ["2130706433", "invalid"],
  ["::ffff:999.0.0.1", "invalid"],
  ["1:2:3:4:5:6:7:8:9", "invalid"],
  ["[::1", "invalid"],
  ["12345::1", "invalid"],
];

describe("classifyAddress", () => {
  for (const [ip, kind] of TABLE) {
    test(`${ip || "(empty)"} is ${kind}`, () => {
      assert.equal(classifyAddress(ip), kind);
      assert.equal(isPublicAddress(ip), kind === "public");
    });
  }

  test("brackets are accepted", () => {
    assert.equal(classifyAddress("[::1]"), "loopback");
    assert.equal(classifyAddress("[::ffff:169.254.169.254]"), "metadata");
  });

  test("every address in the whole 127/8 and 169.254/16 sample is non-public", () => {
    for (let i = 0; i < 256; i += 7) {
      assert.equal(isPublicAddress(`127.${i}.${255 - i}.1`), false);
      assert.equal(isPublicAddress(`169.254.${i}.${(i * 3) % 256}`), false);
      assert.equal(isPublicAddress(`::ffff:10.${i}.0.1`), false);
    }
  });
});

describe("parseIP", () => {
  test("expands :: and embedded IPv4", () => {
    assert.deepEqual(
      Array.from(parseIP("::ffff:1.2.3.4")!),
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4],
    );
    assert.deepEqual(Array.from(parseIP("1::")!), [0, 1, ...new Array(14).fill(0)]);
    assert.deepEqual(
      Array.from(parseIP("1:2:3:4:5:6:7:8")!),
      [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8],
    );
    assert.deepEqual(Array.from(parseIP("1::2:3.4.5.6")!), [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 4, 5, 6]);
    assert.deepEqual(Array.from(parseIP("10.0.0.1")!), [10, 0, 0, 1]);
  });
});
