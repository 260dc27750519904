// Pure: the forms of a secret the response scrub looks for. The proxy itself put the secret into the
// request, possibly inside a Basic credential it re-encoded, so an origin that echoes the request
// can hand back the secret in that encoding, or in one the box undoes at once (base64, base64url,
// URL-encoding). Each form is replaced by the sentinel in the same form, so what the box reads back
// decodes to the sentinel. An origin that transforms the secret arbitrarily is not caught (docs).

export type ScrubPair = [find: string, put: string];

type Encode = (bytes: Buffer) => string;
const base64: Encode = (b) => b.toString("base64");
const base64url: Encode = (b) => b.toString("base64url");

/**
 * The characters of `encode(k filler bytes + text)` that depend on `text`'s bytes alone: wherever the
 * secret starts in a longer encoded string (three alignments), these characters are the same, so
 * searching for them finds it. At most a few bits of the first and last byte stay in the edge
 * characters, which mix them with their neighbours.
 */
function encodedCore(text: string, k: number, encode: Encode): string {
  const bytes = Buffer.from(text, "utf8");
  const encoded = encode(Buffer.concat([Buffer.alloc(k), bytes]));
  const first = Math.ceil((8 * k) / 6);
  const last = Math.floor((8 * (k + bytes.length)) / 6); // exclusive: only whole 6-bit groups of text
  return encoded.slice(first, last);
}

/** URL-encoding as clients and origins write it: upper- and lower-case hex. */
function urlForms(text: string): string[] {
  const upper = encodeURIComponent(text);
  return [upper, upper.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase())];
}

/**
 * secret → sentinel in every form the scrub covers: raw, URL-encoded, and base64 / base64url at each
 * alignment (which covers `user:secret` built into a Basic credential), each of those URL-encoded
 * too. Longest first, so a longer form wins over a shorter one found at the same place.
 */
export function scrubPairs(secret: string, sentinel: string): ScrubPair[] {
  const pairs: ScrubPair[] = [[secret, sentinel]];
  for (const encode of [base64, base64url])
    for (const k of [0, 1, 2]) pairs.push([encodedCore(secret, k, encode), encodedCore(sentinel, k, encode)]);
  const withUrl = pairs.flatMap(([find, put]): ScrubPair[] => {
    const finds = urlForms(find);
    const puts = urlForms(put);
    return [[find, put], ...finds.map((f, i): ScrubPair => [f, puts[i]!])];
  });
  return uniqueLongestFirst(withUrl);
}

/**
 * The exact Basic credentials the proxy produced (header values before and after the swap): the
 * encoded token it sent → the one the box sent, so an echo of the whole token reads back whole.
 */
export function basicPairs(sent: string[], swapped: string[]): ScrubPair[] {
  const pairs: ScrubPair[] = [];
  const token = (value: string) => /^\s*basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(value)?.[1];
  sent.forEach((value, i) => {
    const before = token(value);
    const after = token(swapped[i] ?? "");
    if (before && after && before !== after) {
      pairs.push([after, before]);
      const [upper, lower] = urlForms(after);
      const [upperBefore, lowerBefore] = urlForms(before);
      pairs.push([upper!, upperBefore!], [lower!, lowerBefore!]);
    }
  });
  return pairs;
}

/** Drops empty and repeated needles (the first kept), longest first. */
export function uniqueLongestFirst(pairs: ScrubPair[]): ScrubPair[] {
  const seen = new Set<string>();
  const out: ScrubPair[] = [];
  for (const pair of pairs) {
    if (pair[0].length === 0 || pair[0] === pair[1] || seen.has(pair[0])) continue;
    seen.add(pair[0]);
    out.push(pair);
  }
  return out.sort((a, b) => b[0].length - a[0].length);
}
