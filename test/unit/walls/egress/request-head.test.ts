import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { requestHeadEnd, withProxyAuthorization } from "../../../../src/walls/egress/squid/request-head.js";

const b = (s: string) => Buffer.from(s, "latin1");

describe("squid forwarder's request head", () => {
  test("finds the end of a head (CRLF or bare LF), not before it is complete", () => {
    assert.equal(requestHeadEnd(b("GET http://a/ HTTP/1.1\r\nHost: a\r\n")), -1);
    const head = "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n";
    assert.equal(requestHeadEnd(b(`${head}body`)), head.length);
    assert.equal(requestHeadEnd(b("GET / HTTP/1.0\nHost: a\n\nx")), "GET / HTTP/1.0\nHost: a\n\n".length);
    // leading empty lines are not the end of the head
    const connect = "\r\n\r\nCONNECT a:443 HTTP/1.1\r\n\r\n";
    assert.equal(requestHeadEnd(b(connect)), connect.length);
  });

  test("puts its credential after the request line and drops the box's own (folded lines too)", () => {
    const head = b(
      "\r\nCONNECT a:443 HTTP/1.1\r\nproxy-authorization : Basic Ym94\r\n  folded\r\nHost: a:443\r\nPROXY-Authorization: x\r\n\r\n",
    );
    assert.equal(
      withProxyAuthorization(head, "Basic c2VjcmV0").toString("latin1"),
      "CONNECT a:443 HTTP/1.1\r\nProxy-Authorization: Basic c2VjcmV0\r\nHost: a:443\r\n\r\n",
    );
  });

  test("keeps every other header byte for byte", () => {
    const head = "GET http://a/ HTTP/1.1\r\nHost: a\r\nX-Proxy-Authorization: keep\r\nAccept: */*\r\n\r\n";
    assert.equal(
      withProxyAuthorization(b(head), "Basic eA==").toString("latin1"),
      "GET http://a/ HTTP/1.1\r\nProxy-Authorization: Basic eA==\r\nHost: a\r\nX-Proxy-Authorization: keep\r\nAccept: */*\r\n\r\n",
    );
  });
});
