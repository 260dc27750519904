import { carriesSentinel } from "../credentials/swap.js";
import type { NormalHost } from "../rules/hostname.js";
import { authorityMatches } from "./authority.js";

// Plain HTTP inside a tunnel (CONNECT or SOCKS to a port that is not TLS-only). A tunnel hides nothing
// here, so every request on it gets the check the absolute form gets: its Host (and an absolute-form
// target) must name the tunnel's own host and port. Keep-alive and pipelining put many requests on one
// connection, so this follows the client's byte stream request by request: a head is checked whole
// before any of it is passed on, then exactly its body (Content-Length, or chunked to the last chunk)
// is passed through unparsed, then the next head. Pure and incremental: bytes may arrive split
// anywhere. Anything it cannot follow exactly as an origin would (bare LF, obs-fold, two lengths,
// an unknown transfer coding, a protocol switch, Expect) is refused rather than guessed at: a guess
// that disagrees with the origin about where a request ends is where a second, unchecked one hides.

export type TunnelHttpDenial =
  | "host-mismatch"
  | "host-missing"
  | "not-http"
  | "bad-request"
  | "header-too-large"
  | "upgrade-not-supported"
  | "expect-not-supported"
  | "connect-in-tunnel"
  | "credential-exfiltration";

export interface InspectResult {
  /** Bytes that passed the checks, in order, to forward now. */
  forward: Buffer[];
  /** Set once a request fails: nothing from it on may be forwarded. */
  denied?: TunnelHttpDenial;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
const CHUNK_LINE = /^([0-9A-Fa-f]{1,15})(;[\t\x20-\x7e]*)?$/;
const MAX_LINE = 8192;

type State =
  | { at: "head" }
  | { at: "body"; left: number }
  | { at: "chunk-size" }
  | { at: "chunk-data"; left: number }
  | { at: "chunk-end" } // the CRLF after a chunk's data
  | { at: "trailers" }
  | { at: "denied" };

/** A control character other than horizontal tab. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

export class TunnelHttpInspector {
  private state: State = { at: "head" };
  private pending: Buffer = Buffer.alloc(0);
  /** Request heads passed so far (0: the denial, if any, is the tunnel's first request). */
  requests = 0;

  constructor(
    private readonly target: NormalHost,
    private readonly port: number,
    private readonly maxHeadBytes = 32 * 1024,
    /** The run's sentinels: none may leave through a tunnel the proxy does not open up (no credential is bound here). */
    private readonly sentinels: string[] = [],
  ) {}

  push(chunk: Buffer): InspectResult {
    const forward: Buffer[] = [];
    if (this.state.at === "denied") return { forward, denied: "bad-request" };
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (buf.length > 0) {
      const state: State = this.state;
      if (state.at === "body" || state.at === "chunk-data") {
        const n = Math.min(state.left, buf.length);
        forward.push(buf.subarray(0, n));
        buf = buf.subarray(n);
        state.left -= n;
        if (state.left === 0) this.state = state.at === "body" ? { at: "head" } : { at: "chunk-end" };
        continue;
      }
      if (state.at === "chunk-end") {
        if (buf.length < 2) break;
        if (buf[0] !== 0x0d || buf[1] !== 0x0a) return this.deny(forward, "bad-request");
        forward.push(buf.subarray(0, 2));
        buf = buf.subarray(2);
        this.state = { at: "chunk-size" };
        continue;
      }
      if (state.at === "chunk-size") {
        const end = buf.indexOf("\r\n");
        if (end < 0) {
          if (buf.length > MAX_LINE || buf.includes(0x0a)) return this.deny(forward, "bad-request");
          break;
        }
        const m = CHUNK_LINE.exec(buf.toString("latin1", 0, end));
        if (!m) return this.deny(forward, "bad-request");
        const size = Number.parseInt(m[1]!, 16);
        forward.push(buf.subarray(0, end + 2));
        buf = buf.subarray(end + 2);
        this.state = size === 0 ? { at: "trailers" } : { at: "chunk-data", left: size };
        continue;
      }
      if (state.at === "trailers") {
        // Header lines up to an empty line; each is checked like a header so none can hide a CR or LF.
        const end = buf.indexOf("\r\n");
        if (end < 0) {
          if (buf.length > MAX_LINE || buf.includes(0x0a)) return this.deny(forward, "bad-request");
          break;
        }
        const line = buf.toString("latin1", 0, end);
        if (line !== "" && !this.headerLine(line)) return this.deny(forward, "bad-request");
        forward.push(buf.subarray(0, end + 2));
        buf = buf.subarray(end + 2);
        if (line === "") this.state = { at: "head" };
        continue;
      }
      if (state.at === "denied") break;
      // state "head". Empty lines before a request line are allowed (RFC 9112 §2.2); only as CRLF.
      if (buf[0] === 0x0d) {
        if (buf.length < 2) break;
        if (buf[1] !== 0x0a) return this.deny(forward, "bad-request");
        forward.push(buf.subarray(0, 2));
        buf = buf.subarray(2);
        continue;
      }
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buf.length > this.maxHeadBytes) return this.deny(forward, "header-too-large");
        // Fail fast on what cannot become a request line (an SSH banner, a binary protocol).
        const sp = buf.indexOf(0x20);
        const method = buf.toString("latin1", 0, sp < 0 ? Math.min(buf.length, 32) : sp);
        if (
          (sp < 0 && buf.length > 32) ||
          (method.length > 0 && ![...method].every((c) => TOKEN_CHAR.test(c)))
        )
          return this.deny(forward, this.requests === 0 ? "not-http" : "bad-request");
        break;
      }
      const denial = this.checkHead(buf.toString("latin1", 0, end));
      if (typeof denial === "string") return this.deny(forward, denial);
      forward.push(buf.subarray(0, end + 4));
      buf = buf.subarray(end + 4);
      this.requests++;
      this.state = denial;
    }
    this.pending = buf.length > 0 ? Buffer.from(buf) : Buffer.alloc(0);
    return { forward };
  }

  private deny(forward: Buffer[], reason: TunnelHttpDenial): InspectResult {
    this.state = { at: "denied" };
    this.pending = Buffer.alloc(0);
    return { forward, denied: reason };
  }

  private headerLine(line: string): { name: string; value: string } | undefined {
    const colon = line.indexOf(":");
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1);
    if (!TOKEN.test(name) || hasControl(value)) return undefined;
    return { name: name.toLowerCase(), value: value.trim() };
  }

  /** Checks one request head (without its final CRLFCRLF); returns the state for its body, or why not. */
  private checkHead(head: string): TunnelHttpDenial | State {
    // A CR or LF that is not part of a CRLF would split lines differently at the origin.
    if (/\r(?!\n)|(?<!\r)\n/.test(head)) return "bad-request";
    const lines = head.split("\r\n");
    const m = REQUEST_LINE.exec(lines[0]!);
    if (!m) return this.requests === 0 && !lines[0]!.includes(" HTTP/") ? "not-http" : "bad-request";
    if (carriesSentinel(head, this.sentinels)) return "credential-exfiltration";
    const method = m[1]!;
    const requestTarget = m[2]!;
    const http10 = m[3] === "0";
    if (method === "CONNECT") return "connect-in-tunnel";
    const headers = new Map<string, string[]>();
    for (const line of lines.slice(1)) {
      // obs-fold (a line starting with SP/HTAB) and "Name :" both fail the header pattern.
      const h = this.headerLine(line);
      if (!h) return "bad-request";
      headers.set(h.name, [...(headers.get(h.name) ?? []), h.value]);
    }
    // The request target: origin-form, "*" for OPTIONS, or absolute-form naming this very tunnel.
    if (!requestTarget.startsWith("/")) {
      if (requestTarget === "*") {
        if (method !== "OPTIONS") return "bad-request";
      } else {
        const abs = /^http:\/\/([^/?#]*)/i.exec(requestTarget);
        if (!abs) return "bad-request";
        if (!authorityMatches(abs[1]!, this.target, this.port)) return "host-mismatch";
      }
    }
    const host = headers.get("host");
    if (!host) return "host-missing";
    if (host.length > 1 || !authorityMatches(host[0]!, this.target, this.port)) return "host-mismatch";
    // After a protocol switch the bytes are no longer HTTP requests; they could not be followed.
    const connection = (headers.get("connection") ?? []).join(",").toLowerCase();
    if (headers.has("upgrade") || /(^|,)\s*upgrade\s*(,|$)/.test(connection)) return "upgrade-not-supported";
    // With Expect the client may skip the body it announced, and origins differ on what comes next.
    if (headers.has("expect")) return "expect-not-supported";
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    if (te) {
      if (cl || http10 || te.length > 1 || te[0]!.toLowerCase() !== "chunked") return "bad-request";
      return { at: "chunk-size" };
    }
    if (cl) {
      const values = cl.flatMap((v) => v.split(",").map((x) => x.trim()));
      if (!values.every((v) => /^\d{1,15}$/.test(v)) || new Set(values.map(Number)).size !== 1)
        return "bad-request";
      const length = Number(values[0]);
      return length > 0 ? { at: "body", left: length } : { at: "head" };
    }
    return { at: "head" };
  }
}
