// Reads the server name out of the first bytes a client sends into a tunnel, without terminating TLS.
// A ClientHello may span several TLS records and TCP reads, so the caller feeds the bytes seen so far
// and gets "more" until a whole handshake message is there. Bounded: a hello larger than 64 KiB is "bad".

export type HelloResult =
  | { state: "more" }
  | { state: "not-tls" }
  | { state: "bad"; why: string }
  | { state: "hello"; sni?: string };

const MAX_HELLO = 64 * 1024;
const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;

/** Collects the handshake-layer bytes carried by the leading run of handshake records. */
function handshakeBytes(buf: Buffer): { bytes: Buffer; complete: boolean } | { bad: string } {
  const parts: Buffer[] = [];
  let have = 0;
  let need = -1; // total handshake message length once its 4-byte header is known
  let off = 0;
  while (off + 5 <= buf.length) {
    if (buf[off] !== RECORD_HANDSHAKE) return { bad: "non-handshake record inside the ClientHello" };
    if (buf[off + 1] !== 0x03) return { bad: "unknown record version" };
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16384 + 2048) return { bad: "bad record length" };
    const fragment = buf.subarray(off + 5, Math.min(off + 5 + len, buf.length));
    parts.push(fragment);
    have += fragment.length;
    if (need < 0 && have >= 4) {
      const head = Buffer.concat(parts).subarray(0, 4);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return { bad: "first handshake message is not a ClientHello" };
      need = 4 + head.readUIntBE(1, 3);
      if (need > MAX_HELLO) return { bad: "ClientHello too large" };
    }
    if (need >= 0 && have >= need) return { bytes: Buffer.concat(parts).subarray(0, need), complete: true };
    if (fragment.length < len) break; // record still arriving
    off += 5 + len;
  }
  if (buf.length > MAX_HELLO + 1024) return { bad: "ClientHello too large" };
  return { bytes: Buffer.alloc(0), complete: false };
}

function parseHello(msg: Buffer): HelloResult {
  const bad = (why: string): HelloResult => ({ state: "bad", why });
  let p = 4 + 2 + 32; // handshake header, client_version, random
  if (p + 1 > msg.length) return bad("truncated ClientHello");
  p += 1 + msg[p]!; // session_id
  if (p + 2 > msg.length) return bad("truncated cipher suites");
  p += 2 + msg.readUInt16BE(p);
  if (p + 1 > msg.length) return bad("truncated compression methods");
  p += 1 + msg[p]!;
  if (p === msg.length) return { state: "hello" }; // no extensions at all
  if (p + 2 > msg.length) return bad("truncated extensions");
  const end = p + 2 + msg.readUInt16BE(p);
  if (end !== msg.length) return bad("extension block length does not match the message");
  p += 2;
  let sni: string | undefined;
  let seen = false;
  while (p < end) {
    if (p + 4 > end) return bad("truncated extension header");
    const type = msg.readUInt16BE(p);
    const len = msg.readUInt16BE(p + 2);
    p += 4;
    if (p + len > end) return bad("extension overruns the message");
    if (type === EXT_SERVER_NAME) {
      // Two server_name extensions would let a server and this proxy read different names.
      if (seen) return bad("duplicate server_name extension");
      seen = true;
      if (len < 2 || msg.readUInt16BE(p) !== len - 2) return bad("bad server_name list length");
      let q = p + 2;
      while (q < p + len) {
        if (q + 3 > p + len) return bad("truncated server_name entry");
        const nameType = msg[q]!;
        const nameLen = msg.readUInt16BE(q + 1);
        q += 3;
        if (q + nameLen > p + len) return bad("server_name entry overruns the extension");
        if (nameType === 0) {
          if (sni !== undefined) return bad("more than one host_name");
          const name = msg.toString("latin1", q, q + nameLen);
          if (nameLen === 0 || !/^[\x21-\x7e]+$/.test(name)) return bad("host_name is not printable ASCII");
          sni = name;
        }
        q += nameLen;
      }
    }
    p += len;
  }
  return sni === undefined ? { state: "hello" } : { state: "hello", sni };
}

/** Inspects the bytes a client has sent so far into a tunnel. */
export function readClientHello(buf: Buffer): HelloResult {
  if (buf.length === 0) return { state: "more" };
  if (buf[0] !== RECORD_HANDSHAKE) return { state: "not-tls" };
  const hs = handshakeBytes(buf);
  if ("bad" in hs) return { state: "bad", why: hs.bad };
  if (!hs.complete) return { state: "more" };
  return parseHello(hs.bytes);
}
