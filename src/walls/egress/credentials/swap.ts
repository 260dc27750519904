import { Transform, type TransformCallback } from "node:stream";
import type { NormalHost } from "../rules/hostname.js";
import { normalisePath } from "../rules/rules.js";
import { type CompiledCredential, inScope } from "./compile.js";
import { basicPairs, scrubPairs, uniqueLongestFirst } from "./scrub.js";

// Pure matching and replacing for the swap: which sentinels a request carries, whether each may go
// to this host in this scope, and the rewritten request line and headers. The body goes through
// StreamReplace, which finds a sentinel even when it is split across chunks.

/** One credential as the proxy holds it at run time. */
export interface LiveCredential {
  entry: CompiledCredential;
  sentinel: string;
  secret: string;
  /** Tests only (weak-box.ts scrub-raw): the response scrub looks for the raw secret alone. */
  rawScrubOnly?: boolean;
}

export type RequestVerdict =
  | {
      ok: true;
      /** Credentials swapped in the request line or headers. */
      swapped: string[];
      /** Carried but out of scope, passed on unswapped (outOfScope: pass). */
      passed: string[];
      target: string;
      rawHeaders: string[];
      /** Body replacements (sentinel → secret) and sentinels that must not appear in the body. */
      body: { replace: Array<[string, string]>; forbid: Array<{ needle: string; name: string }> };
      /** Secret → sentinel in the response, in every form scrub.ts covers (the box never reads the secret back). */
      scrub: Array<[string, string]>;
    }
  | { ok: false; reason: "credential-exfiltration" | "credential-out-of-scope"; name: string };

const BASIC = /^(\s*basic\s+)([A-Za-z0-9+/=_-]+)(\s*)$/i;

/** The texts a sentinel may hide in: the value itself, and a Basic credential's decoded user:password. */
function views(value: string): string[] {
  const m = BASIC.exec(value);
  return m ? [value, Buffer.from(m[2]!, "base64").toString("latin1")] : [value];
}

function replaceAll(text: string, pairs: Array<[string, string]>): string {
  let out = text;
  for (const [from, to] of pairs) if (out.includes(from)) out = out.split(from).join(to);
  return out;
}

/** Swaps inside a header value, Basic credentials decoded and re-encoded. */
function swapValue(value: string, pairs: Array<[string, string]>): string {
  const m = BASIC.exec(value);
  if (m) {
    const decoded = Buffer.from(m[2]!, "base64").toString("latin1");
    const swapped = replaceAll(decoded, pairs);
    if (swapped !== decoded) return `${m[1]}${Buffer.from(swapped, "latin1").toString("base64")}${m[3]}`;
  }
  return replaceAll(value, pairs);
}

/**
 * Judges one request (plain HTTP or inside a terminated tunnel) to `host`: a sentinel bound elsewhere
 * refuses it, one bound here but out of scope refuses it or passes unswapped (the entry's choice),
 * one in scope is replaced by its secret in the request target and every header value.
 */
export function judgeRequest(
  live: LiveCredential[],
  req: { host: NormalHost; method: string; target: string; pathname: string; rawHeaders: string[] },
  bound: (entry: CompiledCredential) => boolean,
): RequestVerdict {
  const pathname = normalisePath(req.pathname);
  const texts = [req.target, ...req.rawHeaders.filter((_, i) => i % 2 === 1).flatMap(views)];
  const swap: Array<[string, string]> = [];
  const swapped: string[] = [];
  const passed: string[] = [];
  const body: Extract<RequestVerdict, { ok: true }>["body"] = { replace: [], forbid: [] };
  const scrub: Array<[string, string]> = [];
  // Entries for one box variable share its sentinel (plan.ts): it may go where any of them is bound.
  const boundHere = new Set(live.filter((c) => bound(c.entry)).map((c) => c.sentinel));
  for (const c of live) {
    const here = bound(c.entry);
    const carried = texts.some((t) => t.includes(c.sentinel));
    const scoped = here && inScope(c.entry, req.method, pathname);
    if (!here && boundHere.has(c.sentinel)) continue;
    if (!here) {
      if (carried) return { ok: false, reason: "credential-exfiltration", name: c.entry.name };
      body.forbid.push({ needle: c.sentinel, name: c.entry.name });
      continue;
    }
    scrub.push(
      ...(c.rawScrubOnly ? [[c.secret, c.sentinel] as [string, string]] : scrubPairs(c.secret, c.sentinel)),
    );
    if (!scoped) {
      if (carried && c.entry.outOfScope === "refuse")
        return { ok: false, reason: "credential-out-of-scope", name: c.entry.name };
      if (carried) passed.push(c.entry.name);
      continue;
    }
    if (carried) {
      swap.push([c.sentinel, c.secret]);
      swapped.push(c.entry.name);
    }
    if (c.entry.body) body.replace.push([c.sentinel, c.secret]);
  }
  const rawHeaders =
    swap.length === 0 ? req.rawHeaders : req.rawHeaders.map((v, i) => (i % 2 === 1 ? swapValue(v, swap) : v));
  // the Basic tokens the proxy re-encoded, exactly, before the generic forms (unless weakened)
  const exact = live.some((c) => c.rawScrubOnly) ? [] : basicPairs(req.rawHeaders, rawHeaders);
  return {
    ok: true,
    swapped,
    passed,
    target: replaceAll(req.target, swap),
    rawHeaders,
    body,
    scrub: [...exact, ...uniqueLongestFirst(scrub)],
  };
}

/** Secret → sentinel in response header values (an origin that echoes the credential). */
export function scrubHeaders(rawHeaders: string[], scrub: Array<[string, string]>): string[] {
  if (scrub.length === 0) return rawHeaders;
  return rawHeaders.map((v, i) => (i % 2 === 1 ? swapValue(v, scrub) : v));
}

export class SentinelInBody extends Error {
  constructor(readonly credential: string) {
    super(`a sentinel (credential ${credential}) in a body to a host it is not bound to`);
  }
}

/**
 * Streaming replace: every needle is replaced (or, with replacement null, makes the stream fail with
 * SentinelInBody before any byte of it is passed on). It holds back the last (longest needle - 1)
 * bytes of each chunk, so a needle split across chunks is still found; the rest flows on at once.
 * Needles found at the same place: the first listed wins (list longer forms first).
 */
export class StreamReplace extends Transform {
  private readonly needles: Array<{ find: Buffer; put: Buffer | null; name: string }>;
  private readonly keep: number;
  private carry = Buffer.alloc(0);
  /** Needles replaced so far. */
  replaced = 0;

  constructor(pairs: Array<{ find: string; put: string | null; name: string }>) {
    super();
    this.needles = pairs
      .filter((p) => p.find.length > 0)
      .map((p) => ({
        find: Buffer.from(p.find),
        put: p.put === null ? null : Buffer.from(p.put),
        name: p.name,
      }));
    this.keep = Math.max(0, ...this.needles.map((n) => n.find.length - 1));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    const err = this.scan(buf, false);
    done(err);
  }

  override _flush(done: TransformCallback): void {
    const err = this.scan(this.carry, true);
    done(err);
  }

  private scan(buf: Buffer, last: boolean): Error | undefined {
    let at = 0;
    // a hit is taken only where every needle starting there is whole in buf: else a shorter needle
    // could win over a longer one (listed first) that the next chunk completes
    const limit = last ? buf.length : buf.length - this.keep;
    for (;;) {
      let best = -1;
      let hit: (typeof this.needles)[number] | undefined;
      for (const n of this.needles) {
        const i = buf.indexOf(n.find, at);
        if (i >= 0 && (best < 0 || i < best)) {
          best = i;
          hit = n;
        }
      }
      if (!hit || best >= limit) break;
      if (hit.put === null) {
        this.carry = Buffer.alloc(0);
        return new SentinelInBody(hit.name);
      }
      if (best > at) this.push(buf.subarray(at, best));
      this.push(hit.put);
      this.replaced++;
      at = best + hit.find.length;
    }
    const hold = last ? 0 : Math.min(this.keep, buf.length - at);
    const end = buf.length - hold;
    if (end > at) this.push(buf.subarray(at, end));
    this.carry = hold > 0 ? Buffer.from(buf.subarray(end)) : Buffer.alloc(0);
    return undefined;
  }
}

/** Whether a request head (or any text) carries one of `sentinels`, also inside a Basic credential. */
export function carriesSentinel(text: string, sentinels: string[]): boolean {
  if (sentinels.length === 0) return false;
  const texts = [text];
  for (const m of text.matchAll(/basic\s+([A-Za-z0-9+/=_-]{4,})/gi))
    texts.push(Buffer.from(m[1]!, "base64").toString("latin1"));
  return texts.some((t) => sentinels.some((s) => t.includes(s)));
}
