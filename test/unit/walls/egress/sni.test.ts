import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readClientHello } from "../../../../src/walls/egress/proxy/sni.js";

// Builds ClientHellos byte by byte so every length field can be made to lie.

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);

function sniExtension(names: string[]): Buffer {
  const entries = Buffer.concat(
    names.map((n) => Buffer.concat([Buffer.from([0]), u16(n.length), Buffer.from(n, "latin1")])),
  );
  const body = Buffer.concat([u16(entries.length), entries]);
  return Buffer.concat([u16(0), u16(body.length), body]);
}

function extension(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data]);
}

function hello(extensions: Buffer[] | null): Buffer {
  const parts = [
    u16(0x0303),
    Buffer.alloc(32, 7),
    Buffer.from([32]),
    Buffer.alloc(32, 1),
    u16(4),
    Buffer.from([0x13, 0x01, 0x13, 0x02]),
    Buffer.from([1, 0]),
  ];
  if (extensions) {
    const ext = Buffer.concat(extensions);
    parts.push(u16(ext.length), ext);
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([1]), u24(body.length), body]);
}

function records(msg: Buffer, split = 16384): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < msg.length; i += split) {
    const frag = msg.subarray(i, i + split);
    out.push(Buffer.from([0x16, 0x03, 0x01]), u16(frag.length), frag);
  }
  return Buffer.concat(out);
}

describe("readClientHello", () => {
  const plain = records(
    hello([
      extension(10, Buffer.from([0, 2, 0, 29])),
      sniExtension(["allowed.test"]),
      extension(43, Buffer.from([2, 3, 4])),
    ]),
  );

  test("finds the SNI", () =>
    assert.deepEqual(readClientHello(plain), { state: "hello", sni: "allowed.test" }));
  test("keeps the SNI as sent (the caller normalises)", () =>
    assert.deepEqual(readClientHello(records(hello([sniExtension(["Allowed.Test."])]))), {
      state: "hello",
      sni: "Allowed.Test.",
    }));
  test("no extensions: a hello without SNI", () =>
    assert.deepEqual(readClientHello(records(hello(null))), { state: "hello" }));
  test("extensions but no SNI", () =>
    assert.deepEqual(readClientHello(records(hello([extension(10, Buffer.from([0, 0]))]))), {
      state: "hello",
    }));
  test("a hello split over many records", () =>
    assert.deepEqual(readClientHello(records(hello([sniExtension(["allowed.test"])]), 7)), {
      state: "hello",
      sni: "allowed.test",
    }));
  test("every proper prefix asks for more", () => {
    for (let n = 1; n < plain.length; n++)
      assert.equal(readClientHello(plain.subarray(0, n)).state, "more", `prefix ${n}`);
  });
  test("a big hello (padding to 20 KiB) across records", () => {
    const big = records(hello([sniExtension(["allowed.test"]), extension(21, Buffer.alloc(20000))]));
    assert.deepEqual(readClientHello(big), { state: "hello", sni: "allowed.test" });
  });
  test("not TLS", () => {
    assert.equal(readClientHello(Buffer.from("GET / HTTP/1.1\r\n")).state, "not-tls");
    assert.equal(readClientHello(Buffer.from("SSH-2.0-x\r\n")).state, "not-tls");
    assert.equal(readClientHello(Buffer.alloc(0)).state, "more");
  });
  const bad: Array<[string, Buffer]> = [
    [
      "two server_name extensions",
      records(hello([sniExtension(["allowed.test"]), sniExtension(["other.test"])])),
    ],
    ["two host names", records(hello([sniExtension(["allowed.test", "other.test"])]))],
    ["a host name with a space", records(hello([sniExtension(["a b"])]))],
    ["an empty host name", records(hello([sniExtension([""])]))],
    ["not a ClientHello", records(Buffer.concat([Buffer.from([2]), u24(4), Buffer.alloc(4)]))],
    [
      "a non-handshake record after the first",
      Buffer.concat([
        records(hello([sniExtension(["a.test"])]), 10).subarray(0, 15),
        Buffer.from([0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5]),
      ]),
    ],
    ["a zero-length record", Buffer.from([0x16, 3, 1, 0, 0])],
    ["an absurd record length", Buffer.from([0x16, 3, 1, 0xff, 0xff, 1])],
    ["an odd record version", Buffer.from([0x16, 9, 9, 0, 4, 1, 0, 0, 0])],
    ["a handshake claiming 16 MiB", Buffer.from([0x16, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff])],
    ["a truncated body", records(Buffer.concat([Buffer.from([1]), u24(3), Buffer.from([3, 3, 0])]))],
  ];
  for (const [name, buf] of bad) test(`bad: ${name}`, () => assert.equal(readClientHello(buf).state, "bad"));

  test("lying extension lengths are bad, never a crash", () => {
    const msg = hello([sniExtension(["allowed.test"])]);
    for (let i = 4; i < msg.length; i++) {
      for (const v of [0, 0xff]) {
        const copy = Buffer.from(msg);
        copy[i] = v;
        const r = readClientHello(records(copy));
        assert.ok(["bad", "hello", "more"].includes(r.state));
      }
    }
  });
});
