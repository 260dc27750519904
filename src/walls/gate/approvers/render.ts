import type { GateRequest } from "../types.js";

/** Items of a change-set listed one per line at most; the rest are counted on a line of their own. */
const MAX_LIST = 20;
/** A value the box chose is cut after this many characters (after escaping), with a visible marker. */
const MAX_VALUE = 300;

/**
 * Characters that would let text from the box lie about what it says on a screen: controls (C0,
 * DEL, C1: escape sequences, newlines, carriage returns), format characters (bidi overrides and
 * isolates U+202A–202E, U+2066–2069, marks U+200E/F, U+061C; zero-width U+200B–200D, U+2060–2064,
 * U+FEFF; soft hyphen; tags), line and paragraph separators, spaces other than U+0020, private-use,
 * unassigned and lone surrogate code points, and the invisible fillers and selectors that
 * are letters or marks to Unicode (Hangul fillers, U+034F, variation selectors).
 */
const HIDDEN =
  /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cn}\p{Cs}\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\u115f\u1160\u3164\uffa0]/u;
/** Invisible marks (combining, so kept out of the class above): U+034F, the variation selectors. */
const invisibleMark = (c: number) =>
  c === 0x34f ||
  (c >= 0x180b && c <= 0x180f) ||
  (c >= 0xfe00 && c <= 0xfe0f) ||
  (c >= 0xe0100 && c <= 0xe01ef);

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e", "\\": "\\\\" };

/**
 * The one escaping of everything the box chose (file names, hosts, commands, paths) before a human
 * reads it — the terminal prompt, the inbox page, the approver command's `display`: every
 * character above as a visible escape (`\n`, `\e`, `\x07`, `\u{202E}`), a backslash doubled (so an
 * escape cannot be faked by the text itself), and a long value cut with the count of what is cut.
 */
export function visible(text: string, max = MAX_VALUE): string {
  let out = "";
  let shown = 0;
  const chars = [...text];
  for (const [i, ch] of chars.entries()) {
    const c = ch.codePointAt(0)!;
    const piece =
      NAMED[ch] ??
      (HIDDEN.test(ch) || invisibleMark(c)
        ? c <= 0xff
          ? `\\x${c.toString(16).padStart(2, "0")}`
          : `\\u{${c.toString(16).toUpperCase()}}`
        : ch);
    if (shown + piece.length > max) return `${out}…[+${chars.length - i} more characters]`;
    out += piece;
    shown += piece.length;
  }
  return out;
}

/** What a human reads about one request: a title and labelled lines, each value escaped. */
export interface RequestDisplay {
  title: string;
  lines: [string, string][];
}

/**
 * The lines every approver shows: what, where, why — every value from the box through `visible`.
 * `maxItems` lists fewer changes (a small terminal); the rest are always counted, never dropped.
 */
export function describeRequest(r: GateRequest, maxItems = MAX_LIST): RequestDisplay {
  const title = `fourwall gate · box ${visible(r.box)} · ${r.kind} (via ${visible(r.via)})`;
  const lines: [string, string][] = [];
  if (r.kind === "exec") lines.push(["command", visible(r.command ?? r.summary)]);
  else if (r.kind === "net") lines.push(["request", visible(r.summary)]);
  else {
    const changes = r.changes ?? [];
    lines.push(["changes", `${visible(r.summary)} · ${changes.length} in all`]);
    const shown = changes.length > maxItems ? Math.max(0, maxItems - 1) : changes.length;
    for (const c of changes.slice(0, shown)) {
      lines.push([
        "",
        `${c.op.padEnd(9)} ${visible(c.path)}${c.to ? ` → ${visible(c.to)}` : ""}${c.detail ? `  (${visible(c.detail)})` : ""}`,
      ]);
    }
    if (changes.length > shown)
      lines.push([
        "",
        `… and ${changes.length - shown} more — see ${r.listFile ? visible(r.listFile) : "the audit log (--approver gets all of them as JSON)"}`,
      ]);
  }
  lines.push(["in", visible(r.cwd)]);
  for (const [i, why] of r.why.entries()) lines.push([i === 0 ? "why" : "", visible(why)]);
  return { title, lines };
}
