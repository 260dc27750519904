/**
 * What a human reads about a request: one escaping (`visible`) for everything the box chose, the
 * request's lines (counts never hide items), and the terminal prompt's reset and clean screen.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeRequest, visible } from "../../../../src/walls/gate/approvers/render.js";
import { fitDisplay, promptScreen, TERMINAL_RESET } from "../../../../src/walls/gate/approvers/screen.js";
import type { GateRequest } from "../../../../src/walls/gate/types.js";

const request = (over: Partial<GateRequest> = {}): GateRequest => ({
  id: "1",
  box: "abcd1234",
  kind: "fs",
  summary: "delete 1 file",
  cwd: "/work",
  why: ["the box changed files"],
  via: "change-set",
  alwaysAllowed: false,
  time: "2026-01-01T00:00:00Z",
  changes: [{ op: "delete", path: "README.md" }],
  ...over,
});

describe("visible: what the box chose, as a human can read it", () => {
  const cases: [string, string, string][] = [
    ["plain text stays", "src/main.ts", "src/main.ts"],
    ["non-Latin letters stay", "données/ファイル.txt", "données/ファイル.txt"],
    ["newline, CR, tab", "a\nb\rc\td", "a\\nb\\rc\\td"],
    ["ESC (a colour, a scroll region)", "\x1b[31mred\x1b[1;5r", "\\e[31mred\\e[1;5r"],
    ["other C0, DEL, C1", "\x07\x00\x7f\x9b", "\\x07\\x00\\x7f\\x9b"],
    ["a backslash is doubled: the text cannot fake an escape", "a\\nb", "a\\\\nb"],
    [
      "bidi override and isolates",
      "evil\u202Etxt.exe\u2066x\u2069",
      "evil\\u{202E}txt.exe\\u{2066}x\\u{2069}",
    ],
    ["all bidi embeddings", "\u202A\u202B\u202C\u202D", "\\u{202A}\\u{202B}\\u{202C}\\u{202D}"],
    [
      "zero-width and marks",
      "a\u200Bb\u200Cc\u200Dd\u200Ee\u200Ff\uFEFFg",
      "a\\u{200B}b\\u{200C}c\\u{200D}d\\u{200E}e\\u{200F}f\\u{FEFF}g",
    ],
    ["word joiner, soft hyphen, Arabic letter mark", "a\u2060b\u00ADc\u061Cd", "a\\u{2060}b\\xadc\\u{61C}d"],
    ["line and paragraph separators", "a\u2028b\u2029c", "a\\u{2028}b\\u{2029}c"],
    [
      "spaces that look like nothing or like a space",
      "a\u00A0b\u3000c\u2007d",
      "a\\xa0b\\u{3000}c\\u{2007}d",
    ],
    [
      "invisible letters and selectors",
      "a\u3164b\u115Fc\u034Fd\uFE0Fe",
      "a\\u{3164}b\\u{115F}c\\u{34F}d\\u{FE0F}e",
    ],
    ["tags and private use", "a\u{E0041}b\uE000c", "a\\u{E0041}b\\u{E000}c"],
  ];
  for (const [what, input, shown] of cases) it(what, () => assert.equal(visible(input), shown));

  it("a long value is cut with a visible count of what is cut", () => {
    const shown = visible("x".repeat(1000));
    assert.match(shown, /^x{300}…\[\+700 more characters\]$/);
    assert.equal(visible("\n".repeat(10), 8), "\\n\\n\\n\\n…[+6 more characters]");
  });
  it("the result holds no control or format character at all", () => {
    let all = "";
    for (let c = 0; c < 0x3000; c++) all += String.fromCodePoint(c);
    const hidden = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
    assert.doesNotMatch(visible(all, 1e9), hidden);
  });
});

describe("describeRequest: every value escaped, every item counted", () => {
  it("a rename target with 60 newlines is one line", () => {
    const d = describeRequest(
      request({ changes: [{ op: "rename", path: "README.md", to: `${"a\n".repeat(60)}end` }] }),
    );
    const line = d.lines.find(([, v]) => v.startsWith("rename"))![1];
    assert.doesNotMatch(line, /\n/);
    assert.match(line, /README\.md → (a\\n){60}end/);
  });
  it("a command, the directory and the reasons are escaped too", () => {
    const d = describeRequest(
      request({ kind: "exec", command: "rm -rf /\x1b[2K\rls", cwd: "/w\nx", why: ["w\x1bhy"] }),
    );
    assert.deepEqual(
      d.lines.map(([, v]) => v),
      ["rm -rf /\\e[2K\\rls", "/w\\nx", "w\\ehy"],
    );
  });
  it("more changes than fit: the rest are counted on their own line, the total always shown", () => {
    const changes = Array.from({ length: 30 }, (_, i) => ({ op: "delete" as const, path: `f${i}` }));
    const d = describeRequest(request({ summary: "delete 30 files", changes }), 10);
    const values = d.lines.map(([, v]) => v);
    assert.equal(values[0], "delete 30 files · 30 in all");
    assert.equal(values.filter((v) => v.startsWith("delete ") && /f\d+$/.test(v)).length, 9);
    assert.ok(values.includes("… and 21 more — see the audit log (--approver gets all of them as JSON)"));
  });
});

describe("the terminal prompt", () => {
  it("starts with the reset: open strings ended, scroll region, origin, alternate screen, attributes, charset, cursor, palette", () => {
    const text = promptScreen(describeRequest(request()), "[y]es  [n]o", 24);
    assert.ok(text.startsWith(TERMINAL_RESET));
    for (const seq of [
      "\x18",
      "\x1b\\",
      "\x1b[r",
      "\x1b[?6l",
      "\x1b[?1049l",
      "\x1b[0m",
      "\x1b(B",
      "\x0f",
      "\x1b[?25h",
      "\x1b]104\x07",
      "\x1b[?1000l",
      "\x1b[?1003l",
      "\x1b[?1006l",
      "\x1b[?1004l",
      "\x1b F",
    ])
      assert.ok(TERMINAL_RESET.includes(seq), JSON.stringify(seq));
    for (const clear of ["\x1b[2J", "\x1b[3J", "\x1bc"])
      assert.ok(!TERMINAL_RESET.includes(clear), "no clearing of the screen or the scrollback");
  });
  it("scrolls the screen away (into the scrollback) and draws the question from the top, each line cleared to its end", () => {
    const text = promptScreen(describeRequest(request()), "[y]es  [n]o", 24);
    const body = text.slice(TERMINAL_RESET.length);
    assert.ok(body.startsWith(`\x1b[24;1H${"\r\n".repeat(24)}\x1b[H`));
    assert.ok(body.includes("README.md\x1b[K"));
    assert.match(body, /allow\?/);
  });
  it("lists only as many changes as fit with the title and allow? on a small screen", () => {
    const changes = Array.from({ length: 40 }, (_, i) => ({ op: "delete" as const, path: `file-${i}` }));
    const r = request({ summary: "delete 40 files", changes });
    const d = fitDisplay((n) => describeRequest(r, n), 20, 80);
    assert.ok(d.lines.length + 2 <= 19, `${d.lines.length} lines`);
    assert.ok(d.lines.some(([, v]) => /… and \d+ more/.test(v)));
  });
});
