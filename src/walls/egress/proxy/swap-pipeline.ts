import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { pipeline, type Readable } from "node:stream";
import type { CompiledInputRule } from "../credentials/compile.js";
import { ByteCap, runInputHook, screenHead } from "../credentials/input-gate.js";
import { type RequestVerdict, StreamReplace, scrubHeaders } from "../credentials/swap.js";

// The bodies of a request the proxy sees whole (plain HTTP, a terminated tunnel) when credentials or
// the input gate apply: the request body through the sentinel swap, the response through the scrub
// (secret → sentinel) and the input gate. Shared by http.ts and terminate.ts.

export type SwapVerdict = Extract<RequestVerdict, { ok: true }>;

/** The request body toward the origin, and whether its length may change (then it goes chunked). */
export function requestBody(
  req: Readable,
  verdict: SwapVerdict | undefined,
): { body: Readable; resized: boolean } {
  if (!verdict || (verdict.body.replace.length === 0 && verdict.body.forbid.length === 0))
    return { body: req, resized: false };
  const swap = new StreamReplace([
    ...verdict.body.replace.map(([find, put]) => ({ find, put, name: "" })),
    ...verdict.body.forbid.map((f) => ({ find: f.needle, put: null, name: f.name })),
  ]);
  req.on("error", (e) => swap.destroy(e));
  return { body: req.pipe(swap), resized: verdict.body.replace.some(([a, b]) => a.length !== b.length) };
}

/** Drops content-length (node then sends chunked) when the body's length may change on the way. */
export function withoutLength(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const out = { ...headers };
  delete out["content-length"];
  return out;
}

function headerMap(raw: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    out[name] = out[name] === undefined ? raw[i + 1]! : `${out[name]}, ${raw[i + 1]}`;
  }
  return out;
}

export interface RelayInfo {
  host: string;
  method: string;
  url: string;
}

/**
 * Sends the origin's response to the box: header values and body scrubbed of the secrets bound
 * here (an origin that echoes the credential), then the input gate (content type, size, hook).
 * `blocked` answers the box in place of a response the gate refused. Resolves when the head is sent
 * or refused; `done` is called once the body has gone (error: it was cut off).
 */
export async function relayResponse(
  upRes: IncomingMessage,
  res: ServerResponse,
  headers: (raw: string[]) => OutgoingHttpHeaders,
  opts: {
    verdict: SwapVerdict | undefined;
    rule: CompiledInputRule | undefined;
    info: RelayInfo;
    blocked: (reason: string) => void;
    done: (error?: string) => void;
  },
): Promise<void> {
  const scrub = opts.verdict?.scrub ?? [];
  const raw = scrubHeaders(upRes.rawHeaders, scrub);
  let out = headers(raw);
  const map = headerMap(raw);
  const rule = opts.rule;
  if (rule) {
    const denial = screenHead(rule, {
      contentType: map["content-type"],
      contentLength: map["content-length"],
    });
    if (denial) {
      upRes.destroy();
      opts.blocked(denial);
      return;
    }
  }
  const body: Readable = upRes;
  const stages: NodeJS.ReadWriteStream[] = [];
  if (scrub.length > 0) {
    stages.push(new StreamReplace(scrub.map(([find, put]) => ({ find, put, name: "" }))));
    if (scrub.some(([a, b]) => a.length !== b.length)) out = withoutLength(out);
  }
  if (rule?.maxBytes !== undefined) stages.push(new ByteCap(rule.maxBytes));
  if (rule?.hook) {
    // The hook sees the whole body: buffer it (bounded), then judge, then send it as one piece.
    stages.push(new ByteCap(rule.hookMaxBytes));
    const chunks: Buffer[] = [];
    const whole = await new Promise<Buffer | string>((resolve) => {
      const tail =
        stages.length > 0 ? (pipeline([body, ...stages] as never, () => {}) as unknown as Readable) : body;
      tail.on("data", (c: Buffer) => chunks.push(c));
      tail.on("end", () => resolve(Buffer.concat(chunks)));
      tail.on("error", (e: Error) =>
        resolve(e.message === "input-too-large" ? "input-too-large" : "upstream-error"),
      );
    });
    if (typeof whole === "string") {
      upRes.destroy();
      if (whole === "upstream-error") {
        res.destroy();
        opts.done("upstream-error");
      } else opts.blocked(whole);
      return;
    }
    const verdict = await runInputHook(
      rule.hook,
      { ...opts.info, status: upRes.statusCode ?? 0, headers: map },
      whole,
    );
    if (verdict !== "allow") {
      opts.blocked(verdict);
      return;
    }
    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, {
      ...withoutLength(out),
      "content-length": whole.length,
    });
    res.end(whole);
    opts.done();
    return;
  }
  res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, out);
  if (stages.length === 0) {
    body.pipe(res);
    body.on("error", () => res.destroy());
    body.on("end", () => opts.done());
    return;
  }
  pipeline([body, ...stages, res] as never, (err: NodeJS.ErrnoException | null) => {
    if (err) {
      res.destroy();
      opts.done(err.message === "input-too-large" ? "input-too-large" : "upstream-error");
    } else opts.done();
  });
}
