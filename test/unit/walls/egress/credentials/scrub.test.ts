import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { describe, test } from "node:test";
import { basicPairs, scrubPairs } from "../../../../../src/walls/egress/credentials/scrub.js";
import { StreamReplace } from "../../../../../src/walls/egress/credentials/swap.js";

const SECRET = "sk-REALSECRET/fourwall+0123456789=abc";
const SENTINEL = "sk-SENTINELsentinel0123456789abcdefgh";

/** Every way an echoing origin hands the secret back that the scrub must undo. */
const forms = (value: string) => {
  const basic = Buffer.from(`x-access-token:${value}`).toString("base64");
  return {
    raw: value,
    url: encodeURIComponent(value),
    urlLower: encodeURIComponent(value).replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()),
    base64: Buffer.from(value).toString("base64"),
    base64url: Buffer.from(value).toString("base64url"),
    basic,
    basicUrl: encodeURIComponent(basic),
    basicUrlSafe: Buffer.from(`x-access-token:${value}`).toString("base64url"),
    // the secret at the other two alignments inside a longer base64 string
    json1: Buffer.from(`{"a":"${value}"}`).toString("base64"),
    json2: Buffer.from(`{"ab":"${value}"}`).toString("base64"),
  };
};

/** Any readable trace of the secret: raw, or decoded from any base64 / URL form. */
function revealsSecret(out: string): boolean {
  const views = [out, decodeURIComponentSafe(out)];
  for (const word of out.split(/[^A-Za-z0-9+/=_%-]+/)) {
    const plain = decodeURIComponentSafe(word);
    views.push(
      Buffer.from(plain, "base64").toString("latin1"),
      Buffer.from(plain, "base64url").toString("latin1"),
    );
  }
  // a few bits at the edges may stay: look for the secret's middle (all but its first and last byte)
  const middle = SECRET.slice(1, -1);
  return views.some((v) => v.includes(middle));
}
function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const scrub = async (body: string, pairs: Array<[string, string]>, chunk = 0) => {
  const pieces = chunk > 0 ? (body.match(new RegExp(`[\\s\\S]{1,${chunk}}`, "g")) ?? []) : [body];
  return text(
    Readable.from(pieces.map((p) => Buffer.from(p))).pipe(
      new StreamReplace(pairs.map(([find, put]) => ({ find, put, name: "" }))),
    ),
  );
};

describe("response scrub forms", () => {
  const sent = [`Basic ${forms(SENTINEL).basic}`];
  const swapped = [`Basic ${forms(SECRET).basic}`];
  const pairs = [...basicPairs(sent, swapped), ...scrubPairs(SECRET, SENTINEL)];

  for (const [name, form] of Object.entries(forms(SECRET)))
    test(`the ${name} form never reaches the box, whole or split across chunks`, async () => {
      const body = `echo: ${form} end`;
      assert.ok(revealsSecret(body), "the unscrubbed body does reveal it (the check works)");
      for (const chunk of [0, 1, 3, 7, 16]) {
        const out = await scrub(body, pairs, chunk);
        assert.ok(!revealsSecret(out), `${name}, chunks of ${chunk}: ${out}`);
      }
    });

  test("the forms the proxy produced read back as the sentinel in the same form", async () => {
    const mine = forms(SENTINEL);
    const theirs = forms(SECRET);
    for (const name of ["raw", "url", "urlLower", "basic", "basicUrl"] as const)
      assert.equal(await scrub(`<${theirs[name]}>`, pairs, 5), `<${mine[name]}>`, name);
    // a Basic echo decodes to the box's own user:sentinel
    const echoed = await scrub(`Basic ${theirs.basic}`, pairs);
    assert.equal(Buffer.from(echoed.split(" ")[1]!, "base64").toString(), `x-access-token:${SENTINEL}`);
  });

  test("the raw-only scrub (the weakened box's) misses the encoded forms", async () => {
    const out = await scrub(`echo: ${forms(SECRET).basic}`, [[SECRET, SENTINEL]]);
    assert.ok(revealsSecret(out));
  });

  test("text without the secret passes unchanged", async () => {
    const body = `nothing here ${Buffer.from("x-access-token:other").toString("base64")} %2F`;
    assert.equal(await scrub(body, pairs, 4), body);
  });
});
