import { createTwoFilesPatch } from "diff";
import { visible } from "./render.js";

/**
 * A unified diff of one change, bounded: the box chose both the content and its size, so a diff
 * is made only of text files up to MAX_INPUT bytes, by an edit search capped at MAX_EDITS (no
 * timer: the same input always gives the same answer), and cut at MAX_LINES lines or MAX_BYTES,
 * with a line saying how much was cut. The text stays raw (for --approver's JSON); `diffLines`
 * escapes it for a human.
 */
export const DIFF_LIMITS = { maxInput: 256 * 1024, maxEdits: 4000, maxLines: 400, maxBytes: 32 * 1024 };

export interface DiffResult {
  diff?: string;
  /** Why there is none: binary, too large, … */
  note?: string;
}

/** Text, as far as a diff is concerned: valid UTF-8 without a NUL byte. */
export function asText(data: Buffer): string | undefined {
  if (data.includes(0)) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    return undefined;
  }
}

/** One side of a diff: its bytes (the first maxInput of them) and its full size; undefined = absent. */
export interface DiffSide {
  data: Buffer;
  size: number;
}

export function boundedDiff(
  name: string,
  before: DiffSide | undefined,
  after: DiffSide | undefined,
  limits = DIFF_LIMITS,
): DiffResult {
  for (const side of [before, after])
    if (side && side.size > limits.maxInput)
      return { note: `too large to diff (${side.size} bytes; the limit is ${limits.maxInput})` };
  const a = before ? asText(before.data) : "";
  const b = after ? asText(after.data) : "";
  if (a === undefined || b === undefined) return { note: "binary: no diff (see the sizes and hashes)" };
  const patch = createTwoFilesPatch(
    before ? `a/${name}` : "/dev/null",
    after ? `b/${name}` : "/dev/null",
    a,
    b,
    undefined,
    undefined,
    { context: 3, maxEditLength: limits.maxEdits },
  );
  if (patch === undefined)
    return { note: `too many differences to diff (more than ${limits.maxEdits} edits)` };
  return { diff: cutDiff(patch, limits) };
}

/** The first maxLines lines / maxBytes of a diff, then one line counting what was left out. */
export function cutDiff(patch: string, limits = DIFF_LIMITS): string {
  // createTwoFilesPatch starts with an "=====" line: the a/ b/ headers say the same
  const lines = patch.split("\n").filter((l, i) => !(i === 0 && /^=+$/.test(l)));
  if (lines.at(-1) === "") lines.pop();
  const kept: string[] = [];
  let bytes = 0;
  for (const line of lines) {
    if (kept.length >= limits.maxLines || bytes + line.length + 1 > limits.maxBytes) break;
    kept.push(line);
    bytes += line.length + 1;
  }
  const more = lines.length - kept.length;
  return `${kept.join("\n")}${more > 0 ? `\n… ${more} more diff line(s) not shown` : ""}\n`;
}

/**
 * The diff as a human sees it: one display line per diff line, each through `visible` (controls,
 * ESC, bidi and zero-width characters escaped; long lines cut with a count), so a diff cannot
 * draw on the terminal, fake a line, or hide one.
 */
export function diffLines(diff: string, width = 300): string[] {
  const lines = diff.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.map((l) => visible(l, width));
}
