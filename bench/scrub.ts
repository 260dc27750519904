/**
 * The cost of scrubbing a response's encoded forms of the secret (scrub.ts) beside the raw-only
 * scrub it replaced: the same body through StreamReplace, in the chunks a socket gives, once with the
 * raw secret alone, once with every form. In-process, no network: the scrub's own share of a bound
 * host's bulk download. Run: node --import tsx bench/scrub.ts (ROUNDS, MIB).
 */
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { basicPairs, scrubPairs } from "../src/walls/egress/credentials/scrub.js";
import { StreamReplace } from "../src/walls/egress/credentials/swap.js";

const SECRET = "sk-bench0123456789abcdef0123456789abcdef";
const SENTINEL = "sk-SENTINEL456789abcdef0123456789abcdef";
const ROUNDS = Number(process.env.ROUNDS ?? 11);
const MIB = Number(process.env.MIB ?? 32);
const CHUNK = 64 * 1024;

const chunk = Buffer.alloc(CHUNK, "abcdefghij0123456789 ");
const basic = (s: string) => `Basic ${Buffer.from(`x-access-token:${s}`).toString("base64")}`;
const variants: Record<string, Array<[string, string]>> = {
  "raw only (before)": [[SECRET, SENTINEL]],
  "every form (now)": [...basicPairs([basic(SENTINEL)], [basic(SECRET)]), ...scrubPairs(SECRET, SENTINEL)],
};

async function once(pairs: Array<[string, string]>): Promise<number> {
  const chunks = (MIB * 1024 * 1024) / CHUNK;
  const started = process.hrtime.bigint();
  await pipeline(
    Readable.from(
      (function* () {
        for (let i = 0; i < chunks; i++) yield chunk;
      })(),
    ),
    new StreamReplace(pairs.map(([find, put]) => ({ find, put, name: "" }))),
    new Writable({ write: (_c, _e, done) => done() }),
  );
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
for (let r = 0; r < ROUNDS; r++)
  for (const [name, pairs] of Object.entries(variants)) ms[name]!.push(await once(pairs));
const base = median(ms["raw only (before)"]!);
console.log(
  `${MIB} MiB in ${CHUNK / 1024} KiB chunks, median of ${ROUNDS}, load ${(await import("node:os")).loadavg()[0]!.toFixed(1)}`,
);
for (const [name, xs] of Object.entries(ms)) {
  const m = median(xs);
  console.log(
    `${name.padEnd(20)} ${variants[name]!.length} needles  ${m.toFixed(0)} ms  ${((MIB / m) * 1000).toFixed(0)} MiB/s  ×${(m / base).toFixed(2)}`,
  );
}
