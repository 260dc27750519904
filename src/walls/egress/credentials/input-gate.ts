import { spawn } from "node:child_process";
import { Transform, type TransformCallback } from "node:stream";
import type { NormalHost } from "../rules/hostname.js";
import { type CompiledInputRule, patternCovers } from "./compile.js";

// The input gate: what flows into the box through the proxy (responses), where the proxy sees HTTP
// (plain HTTP, and TLS it terminates; a blind tunnel shows it nothing). Size caps and content types
// are judged on the head, then the body streams through a counter; a hook needs the whole body, so
// with a hook the body is buffered up to hookMaxBytes (larger: refused) before a byte goes on.

export type InputDenial = "input-content-type" | "input-too-large" | "input-hook" | "input-hook-failed";

/** The first rule that names the host ("*" names every host). */
export function inputRuleFor(rules: CompiledInputRule[], host: NormalHost): CompiledInputRule | undefined {
  return rules.find((r) => r.hosts === undefined || r.hosts.some((p) => patternCovers(p, host)));
}

function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}

/** Judges a response head: its content type against the allowlist, its declared length against the caps. */
export function screenHead(
  rule: CompiledInputRule,
  head: { contentType?: string; contentLength?: string },
): InputDenial | undefined {
  if (rule.contentTypes) {
    const type = mediaType(head.contentType);
    const ok = rule.contentTypes.some((t) =>
      t.endsWith("/*") ? type.startsWith(t.slice(0, -1)) && type.length > t.length - 1 : type === t,
    );
    if (!ok) return "input-content-type";
  }
  const length = head.contentLength !== undefined ? Number(head.contentLength) : undefined;
  if (length !== undefined && Number.isFinite(length)) {
    if (rule.maxBytes !== undefined && length > rule.maxBytes) return "input-too-large";
    if (rule.hook && length > rule.hookMaxBytes) return "input-too-large";
  }
  return undefined;
}

export class InputTooLarge extends Error {
  constructor() {
    super("input-too-large");
  }
}

/** Passes bytes on until `max` have gone by, then fails the stream (the box gets a cut-off response). */
export class ByteCap extends Transform {
  private seen = 0;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) done(new InputTooLarge());
    else done(null, chunk);
  }
}

/**
 * Runs the rule's hook on one whole response: the head in FOURWALL_INPUT_* variables, the body on
 * stdin. Exit 0 lets it in; anything else, a crash or 30 s without an answer blocks it.
 */
export function runInputHook(
  hook: string[],
  head: { host: string; method: string; url: string; status: number; headers: Record<string, string> },
  body: Buffer,
  timeoutMs = 30_000,
): Promise<"allow" | InputDenial> {
  return new Promise((resolve) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(hook[0]!, hook.slice(1), {
        stdio: ["pipe", "ignore", "inherit"],
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          FOURWALL_INPUT_HOST: head.host,
          FOURWALL_INPUT_METHOD: head.method,
          FOURWALL_INPUT_URL: head.url,
          FOURWALL_INPUT_STATUS: String(head.status),
          FOURWALL_INPUT_CONTENT_TYPE: head.headers["content-type"] ?? "",
          FOURWALL_INPUT_HEADERS: JSON.stringify(head.headers),
        },
      });
    } catch {
      resolve("input-hook-failed");
      return;
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", () => {
      clearTimeout(timer);
      resolve("input-hook-failed");
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve(code === 0 ? "allow" : code === null ? "input-hook-failed" : "input-hook");
    });
    child.stdin?.on("error", () => {}); // a hook that does not read its stdin
    child.stdin?.end(body);
  });
}
