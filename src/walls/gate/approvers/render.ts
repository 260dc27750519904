import type { GateRequest } from "../types.js";

const MAX_LIST = 20;

/** The lines every approver shows: what, where, why. Plain text; the terminal adds colour. */
export function describeRequest(r: GateRequest): { title: string; lines: [string, string][] } {
  const title = `fourwall gate · box ${r.box} · ${r.kind} (via ${r.via})`;
  const lines: [string, string][] = [];
  if (r.kind === "exec") lines.push(["command", r.command ?? r.summary]);
  else if (r.kind === "net") lines.push(["request", r.summary]);
  else {
    lines.push(["changes", r.summary]);
    for (const c of (r.changes ?? []).slice(0, MAX_LIST)) {
      lines.push([
        "",
        `${c.op.padEnd(9)} ${c.path}${c.to ? ` → ${c.to}` : ""}${c.detail ? `  (${c.detail})` : ""}`,
      ]);
    }
    const more = (r.changes?.length ?? 0) - MAX_LIST;
    if (more > 0)
      lines.push([
        "",
        `… and ${more} more — see ${r.listFile ?? "the request's changes (--approver gets all of them as JSON)"}`,
      ]);
  }
  lines.push(["in", r.cwd]);
  for (const [i, why] of r.why.entries()) lines.push([i === 0 ? "why" : "", why]);
  return { title, lines };
}

/** Strips terminal control characters from text that came from the box (a command line can hold escapes). */
export function printable(text: string): string {
  let out = "";
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    const control = (c < 0x20 && c !== 0x09 && c !== 0x0a) || (c >= 0x7f && c <= 0x9f);
    out += control ? `\\x${c.toString(16).padStart(2, "0")}` : ch;
  }
  return out;
}
