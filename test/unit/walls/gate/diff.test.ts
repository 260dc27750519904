/**
 * The diffs shown for a change-set (issue 12, "review people can use"): bounded (the box chose the
 * content and its size) and escaped (the box chose every byte of every line).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  asText,
  boundedDiff,
  cutDiff,
  DIFF_LIMITS,
  diffLines,
} from "../../../../src/walls/gate/approvers/diff.js";

const side = (text: string | Buffer) => {
  const data = Buffer.isBuffer(text) ? text : Buffer.from(text);
  return { data, size: data.length };
};

describe("boundedDiff", () => {
  it("a unified diff of a text file, with a/ and b/ headers", () => {
    const d = boundedDiff("src/a.ts", side("one\ntwo\nthree\n"), side("one\n2\nthree\n"));
    assert.equal(d.note, undefined);
    assert.match(d.diff!, /^--- a\/src\/a\.ts/m);
    assert.match(d.diff!, /^\+\+\+ b\/src\/a\.ts/m);
    assert.match(d.diff!, /^-two$/m);
    assert.match(d.diff!, /^\+2$/m);
  });
  it("a new or deleted file diffs against /dev/null", () => {
    assert.match(boundedDiff("x", undefined, side("hi\n")).diff!, /^--- \/dev\/null/m);
    assert.match(boundedDiff("x", side("hi\n"), undefined).diff!, /^\+\+\+ \/dev\/null/m);
  });
  it("binary content (a NUL, or not UTF-8) gets a note, no diff", () => {
    assert.equal(boundedDiff("b", side("a\0b"), side("a")).diff, undefined);
    assert.match(boundedDiff("b", side("a"), side(Buffer.from([0xff, 0xfe]))).note!, /binary/);
    assert.equal(asText(Buffer.from([0xc3, 0x28])), undefined);
  });
  it("a side larger than the limit is not read into a diff", () => {
    const d = boundedDiff("big", { data: Buffer.from("x"), size: DIFF_LIMITS.maxInput + 1 }, side("y"));
    assert.equal(d.diff, undefined);
    assert.match(d.note!, /too large to diff \(262145 bytes/);
  });
  it("an edit search past its cap gives a note (no timer: the same input, the same answer)", () => {
    const a = Array.from({ length: 300 }, (_, i) => `a${i}`).join("\n");
    const b = Array.from({ length: 300 }, (_, i) => `b${i}`).join("\n");
    const limits = { ...DIFF_LIMITS, maxEdits: 10 };
    assert.match(boundedDiff("f", side(a), side(b), limits).note!, /more than 10 edits/);
  });
  it("a long diff is cut, and what is cut is counted", () => {
    const b = Array.from({ length: 1000 }, (_, i) => `line ${i}`).join("\n");
    const d = boundedDiff("f", side(""), side(b));
    const lines = d.diff!.trimEnd().split("\n");
    assert.ok(lines.length <= DIFF_LIMITS.maxLines + 1);
    assert.match(lines.at(-1)!, /^… \d+ more diff line\(s\) not shown$/);
    const total = cutDiff(`${"+x\n".repeat(10)}`, { ...DIFF_LIMITS, maxLines: 4 });
    assert.match(total, /… 6 more diff line\(s\) not shown/);
  });
  it("a diff is cut by bytes too (a few huge lines)", () => {
    const d = cutDiff(`${`+${"x".repeat(10_000)}\n`.repeat(10)}`);
    assert.ok(d.length < DIFF_LIMITS.maxBytes + 100);
    assert.match(d, /more diff line\(s\) not shown/);
  });
});

describe("diffLines: what a human reads", () => {
  it("escapes what the box put in its lines: ESC, CR, bidi overrides, zero-width", () => {
    const diff = boundedDiff(
      "evil\x1b[2J.txt",
      side("ok\n"),
      side("ok\n\x1b]0;pwned\x07fake\r+ harmless\nabc\u202Eevil\u200B\n"),
    ).diff!;
    const shown = diffLines(diff).join("\n");
    const hidden = [...shown].filter(
      (c) => (c < " " && c !== "\n") || c === "\x7f" || c === "\u202E" || c === "\u200B",
    );
    assert.deepEqual(hidden, []);
    assert.match(shown, /\\e\]0;pwned\\x07fake\\r\+ harmless/);
    assert.match(shown, /\\u\{202E\}evil\\u\{200B\}/);
    assert.match(shown, /evil\\\\033\[2J\.txt/); // the diff library quotes the name; still no ESC
  });
  it("one display line per diff line, each cut to the width with a count", () => {
    const lines = diffLines(`+${"y".repeat(500)}\n-short\n`, 50);
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /…\[\+\d+ more characters\]$/);
    assert.equal(lines[1], "-short");
  });
});
