import path from "node:path";
import type { HostView } from "./host-view.js";

/**
 * Globs in the policy's path lists (`filesystem.hide`, `filesystem.readOnly`), expanded at plan time
 * against the host: `*` (any run of characters within one name), `?` (one character), `[abc]`,
 * `[a-z]`, `[!abc]` (one character of a set), and `\` to take the next character literally. A
 * leading `*`/`?`/`[` does not match a leading dot, as in shells. `**` is refused by the caller.
 *
 * Only the policy's own words are ever a pattern: the directory a pattern is relative to (the
 * workdir, HOME) is data, whatever characters its name holds (a workdir named `proj?` or `a[b`
 * matches only itself). Matching is done here, by hand: no path becomes a RegExp or a shell glob.
 */

/** One character class or literal of a pattern segment. */
type Token =
  | { kind: "char"; ch: string }
  | { kind: "any" } // ?
  | { kind: "star" } // *
  | { kind: "set"; negated: boolean; items: ({ from: string; to: string } | string)[] };

/** At most this many host paths per policy entry (and per step of the walk): a pattern is a few paths, not a scan. */
export const GLOB_MAX_MATCHES = 1000;

export class GlobError extends Error {}

/** The tokens of one path segment (no "/" in it). */
function tokenize(segment: string): Token[] {
  const chars = [...segment];
  const tokens: Token[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === "\\") {
      // a trailing backslash stands for itself
      tokens.push({ kind: "char", ch: i + 1 < chars.length ? chars[++i]! : "\\" });
    } else if (ch === "*") {
      tokens.push({ kind: "star" });
    } else if (ch === "?") {
      tokens.push({ kind: "any" });
    } else if (ch === "[") {
      const set = bracket(chars, i);
      if (set) {
        tokens.push(set.token);
        i = set.end;
      } else tokens.push({ kind: "char", ch }); // no closing "]": a literal "[", as in shells
    } else tokens.push({ kind: "char", ch });
  }
  return tokens;
}

/** A bracket expression starting at chars[start] ("["), or undefined when it is not closed. */
function bracket(chars: string[], start: number): { token: Token; end: number } | undefined {
  let i = start + 1;
  const negated = chars[i] === "!" || chars[i] === "^";
  if (negated) i++;
  const items: ({ from: string; to: string } | string)[] = [];
  let first = true;
  for (; i < chars.length; i++) {
    let ch = chars[i]!;
    if (ch === "]" && !first) return { token: { kind: "set", negated, items }, end: i };
    first = false;
    if (ch === "\\" && i + 1 < chars.length) ch = chars[++i]!;
    if (chars[i + 1] === "-" && i + 2 < chars.length && chars[i + 2] !== "]") {
      let to = chars[i + 2]!;
      i += 2;
      if (to === "\\" && i + 1 < chars.length) to = chars[++i]!;
      items.push({ from: ch, to });
    } else items.push(ch);
  }
  return undefined;
}

const isMagic = (tokens: Token[]) => tokens.some((t) => t.kind !== "char");

/** True when a segment of `pattern` is a glob (rather than a name, with its escapes). */
export const hasGlob = (pattern: string): boolean => pattern.split("/").some((s) => isMagic(tokenize(s)));

/** A segment without magic as the literal name it stands for (escapes removed). */
const literal = (tokens: Token[]) => tokens.map((t) => (t.kind === "char" ? t.ch : "")).join("");

function matchSet(t: Extract<Token, { kind: "set" }>, ch: string): boolean {
  const inSet = t.items.some((item) =>
    typeof item === "string" ? item === ch : item.from <= ch && ch <= item.to,
  );
  return inSet !== t.negated;
}

/** Does `name` (one path segment) match the tokens? Iterative, with backtracking on the last star. */
export function matchSegment(tokens: Token[], name: string): boolean {
  const chars = [...name];
  if (chars[0] === "." && tokens[0]?.kind !== "char") return false; // dot-files only by an explicit "."
  let t = 0;
  let c = 0;
  let starT = -1;
  let starC = 0;
  while (c < chars.length) {
    const token = tokens[t];
    if (token?.kind === "star") {
      starT = t++;
      starC = c;
    } else if (
      token &&
      ((token.kind === "char" && token.ch === chars[c]) ||
        token.kind === "any" ||
        (token.kind === "set" && matchSet(token, chars[c]!)))
    ) {
      t++;
      c++;
    } else if (starT >= 0) {
      t = starT + 1;
      c = ++starC;
    } else return false;
  }
  while (tokens[t]?.kind === "star") t++;
  return t === tokens.length;
}

/** Unescapes a path with no glob in it (for lists where globs are not supported). */
export function literalPath(pattern: string): string {
  return pattern
    .split("/")
    .map((s) => literal(tokenize(s)))
    .join("/");
}

/**
 * The host paths that `pattern` (relative, its segments may be globs) matches below `base` (an
 * absolute directory, taken literally). A pattern without a glob comes back as the one path it
 * names, whether or not it exists; a glob yields only what exists now. Throws GlobError past
 * GLOB_MAX_MATCHES.
 */
export function expandGlob(base: string, pattern: string, host: HostView): string[] {
  const segments = pattern.split("/").filter(Boolean);
  let found = [base];
  let magic = false;
  for (const segment of segments) {
    const tokens = tokenize(segment);
    const next: string[] = [];
    for (const dir of found) {
      if (!isMagic(tokens)) {
        next.push(path.join(dir, literal(tokens)));
        continue;
      }
      magic = true;
      for (const name of host.readdir(dir)) if (matchSegment(tokens, name)) next.push(path.join(dir, name));
      if (next.length > GLOB_MAX_MATCHES)
        throw new GlobError(
          `${JSON.stringify(pattern)} matches more than ${GLOB_MAX_MATCHES} paths: name them more narrowly`,
        );
    }
    found = next;
  }
  return magic ? found.filter((p) => host.kind(p) !== "missing") : found;
}

/**
 * What is wrong with a policy path, for the schema (so `fourwall policy check` names its location):
 * `**` and `..` everywhere, another user's `~name`, and a glob where globs are not expanded.
 */
export function policyPathProblem(p: string, globs: boolean): string | undefined {
  if (p.includes("**")) return `"**" is not supported in ${JSON.stringify(p)}`;
  if (p.split("/").includes("..")) return `".." is not allowed in ${JSON.stringify(p)}`;
  if (p.startsWith("~") && p !== "~" && !p.startsWith("~/"))
    return `only the current user's home (~/) is supported: ${JSON.stringify(p)}`;
  if (!globs && hasGlob(p))
    return `globs are not supported here: ${JSON.stringify(p)} (name each path, or escape * ? [ with \\)`;
  return undefined;
}
