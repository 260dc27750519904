/** The terminal's file-by-file review of a change-set, key by key (pure: no terminal, no timer). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FileReview } from "../../../../src/walls/gate/approvers/file-review.js";
import type { GateRequest } from "../../../../src/walls/gate/types.js";

const request = (n = 3): GateRequest => ({
  id: "r1",
  box: "b1",
  kind: "fs",
  summary: `overwrite ${n} files`,
  cwd: "/w",
  why: ["held"],
  via: "change-set",
  alwaysAllowed: false,
  time: "",
  changes: Array.from({ length: n }, (_, i) => ({
    op: "overwrite" as const,
    path: `f${i}`,
    before: { kind: "file" as const, mode: "644", size: 3, sha256: "a".repeat(64) },
    after: { kind: "file" as const, mode: "644", size: 4, sha256: "b".repeat(64) },
    diff: `--- a/f${i}\n+++ b/f${i}\n@@ -1 +1 @@\n-old\n+new\x1b[31m\n`,
  })),
});
const key = (r: FileReview, k: string) => r.key(k.charCodeAt(0));

describe("FileReview", () => {
  it("the overview: y all, n none, Enter none, a is no 'always' for a change-set", () => {
    assert.equal(key(new FileReview(request()), "y"), "yes");
    assert.equal(key(new FileReview(request()), "n"), "no");
    assert.equal(key(new FileReview(request()), "\r"), "no");
    assert.equal(key(new FileReview(request()), "a"), "ignore");
  });
  it("file by file: y, n, y → a confirmed subset", () => {
    const r = new FileReview(request());
    assert.equal(key(r, "r"), undefined);
    assert.equal(r.view, "file");
    assert.match(r.screen(24, 80).display.lines[0]![1], /1 of 3: overwrite f0/);
    key(r, "y");
    key(r, "n");
    key(r, "y");
    assert.equal(r.view, "summary");
    const s = r.screen(24, 80);
    assert.deepEqual(s.display.lines[0], ["apply", "2 of 3"]);
    assert.deepEqual(key(r, "y"), { approve: ["f0", "f2"] });
  });
  it("d shows the diff, escaped; b goes back; y from the diff answers the file", () => {
    const r = new FileReview(request(1));
    key(r, "r");
    assert.equal(key(r, "d"), undefined);
    assert.equal(r.view, "diff");
    const shown = r
      .screen(24, 80)
      .display.lines.map(([, v]) => v)
      .join("\n");
    assert.match(shown, /\+new\\e\[31m/);
    assert.equal(shown.includes("\x1b"), false);
    key(r, "b");
    assert.equal(r.view, "file");
    key(r, "d");
    key(r, "y");
    assert.equal(r.view, "summary");
    assert.equal(key(r, "y"), "yes");
  });
  it("a: this and all the rest; x: none of the rest; all no is a plain no", () => {
    const r = new FileReview(request());
    key(r, "r");
    key(r, "n");
    key(r, "a");
    assert.deepEqual(r.final(), { approve: ["f1", "f2"] });
    const none = new FileReview(request());
    key(none, "r");
    key(none, "x");
    assert.equal(key(none, "y"), "no");
  });
  it("Esc, Ctrl-C and a C1 byte (an 8-bit terminal report) are no to everything on every screen; r at the summary reviews again", () => {
    for (const abort of ["\x1b", "\x03", "\x9b"]) {
      const r = new FileReview(request());
      key(r, "r");
      key(r, "y");
      assert.equal(key(r, abort), "no");
    }
    const r = new FileReview(request(1));
    key(r, "r");
    key(r, "y");
    key(r, "r");
    assert.equal(r.view, "file");
    key(r, "n");
    assert.equal(key(r, "y"), "no");
  });
  it("the summary counts what does not fit, never cuts silently", () => {
    const r = new FileReview(request(40));
    key(r, "r");
    key(r, "a");
    const text = r
      .screen(12, 80)
      .display.lines.map(([, v]) => v)
      .join("\n");
    assert.match(text, /… and \d+ more/);
  });
});
