import { randomBytes } from "node:crypto";

// Sentinels: per-run random stand-ins for secrets. Clients check a key's shape before they send it
// (Anthropic's and OpenAI's SDKs, gh), so a sentinel keeps the real value's known prefix, the
// alphabet of the rest and its length; the random part is never shorter than MIN_RANDOM characters,
// so a sentinel is unguessable and never occurs by chance in a request.

/** Known token prefixes, longest first: what a client may check and what the sentinel keeps. */
const PREFIXES = [
  /^sk-ant-[a-z]+\d*-/, // Anthropic: sk-ant-api03-, sk-ant-oat01-
  /^sk-(proj|svcacct|admin)-/, // OpenAI project, service account and admin keys
  /^sk-/, // OpenAI (older), and many others
  /^github_pat_/,
  /^gh[pousr]_/, // GitHub classic, OAuth, user-to-server, server-to-server, refresh
  /^glpat-/, // GitLab
  /^xox[abposr]-/, // Slack
  /^hf_/, // Hugging Face
  /^AKIA/, // AWS access key ids
];

const MIN_RANDOM = 24;

const ALPHABETS = {
  hex: "0123456789abcdef",
  HEX: "0123456789ABCDEF",
  alnum: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
  url: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
} as const;

/** The smallest of the alphabets above that holds every character of `text` (url-safe otherwise). */
function alphabetOf(text: string): string {
  if (/^[0-9a-f]*$/.test(text)) return ALPHABETS.hex;
  if (/^[0-9A-F]*$/.test(text)) return ALPHABETS.HEX;
  if (/^[A-Za-z0-9]*$/.test(text)) return ALPHABETS.alnum;
  return ALPHABETS.url;
}

export type RandomSource = (bytes: number) => Buffer;

function randomString(alphabet: string, length: number, random: RandomSource): string {
  // rejection sampling: no bias toward the alphabet's first characters
  const limit = 256 - (256 % alphabet.length);
  let out = "";
  while (out.length < length) {
    for (const byte of random(length * 2)) {
      if (byte < limit) out += alphabet[byte % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}

/**
 * A sentinel shaped like `secret`: its known prefix, then random characters from the alphabet of the
 * rest, as long as the rest (at least MIN_RANDOM). Never equal to the secret, never inside it.
 */
export function makeSentinel(secret: string, random: RandomSource = randomBytes): string {
  const prefix = PREFIXES.map((p) => p.exec(secret)?.[0]).find((m) => m !== undefined) ?? "";
  const rest = secret.slice(prefix.length);
  const alphabet = alphabetOf(rest);
  for (;;) {
    const sentinel = prefix + randomString(alphabet, Math.max(rest.length, MIN_RANDOM), random);
    if (!secret.includes(sentinel) && !sentinel.includes(secret)) return sentinel;
  }
}
