/**
 * The ways a probe's report becomes a verdict. Pure: the probe program's facts and the host's
 * evidence in, PASS / HOLE / FAIL / SKIP out. The host's evidence wins over the box's own word.
 */
import type { JudgeContext, Verdict } from "./types.js";

type Data = Record<string, unknown>;
export type Judge = (data: Data, ctx: JudgeContext) => Verdict;

export const pass = (observed: string): Verdict => ({ status: "PASS", observed });
export const hole = (observed: string): Verdict => ({ status: "HOLE", observed });
export const fail = (observed: string): Verdict => ({ status: "FAIL", observed });
export const skip = (observed: string): Verdict => ({ status: "SKIP", observed });

export const text = (value: unknown, fallback = ""): string => (typeof value === "string" ? value : fallback);

/**
 * For attacks the probe itself can see succeed (a secret read, a connection answered):
 * `reached` true is a hole, false is the wall holding, null means the probe could not tell.
 */
export const denied: Judge = (data) => {
  const detail = text(data.detail, "(no detail)");
  if (data.reached === true) return hole(detail);
  if (data.reached === false) return pass(detail);
  if (data.reached === null) return skip(`inconclusive: ${detail}`);
  return fail("the probe reported no outcome");
};

/** For what must work inside the box (the listed canary): anything but the real answer fails. */
export const works: Judge = (data) => {
  const detail = text(data.detail, "(no detail)");
  return data.reached === true ? pass(detail) : fail(`expected the canary's answer: ${detail}`);
};

/** What the box's own attempts came to, in a few words: the errors seen, or "written in the box". */
export function summariseAttempts(data: Data): string {
  const attempts = Array.isArray(data.attempts) ? data.attempts.map((a) => text(a)) : [];
  const outcomes = [...new Set(attempts.map((a) => a.slice(a.lastIndexOf(": ") + 2)))];
  if (outcomes.length === 0) return text(data.detail, "nothing tried");
  if (outcomes.includes("written")) {
    const others = outcomes.filter((o) => o !== "written");
    return `written only in the box's own view${others.length ? `, else ${others.join(", ")}` : ""}; the host is untouched`;
  }
  return outcomes.join(", ");
}

/**
 * For writes: the host decides. Whatever the box believes it wrote, the wall held if, afterwards,
 * nothing of it is on the host; the box's own report is a fallback for the reader.
 */
export const landedNowhere =
  (id: string, also?: Judge): Judge =>
  (data, ctx) => {
    const landed = ctx.evidence.landed[id] ?? [];
    if (landed.length > 0) return hole(`on the host: ${landed.join(", ")}`);
    const seen = also?.(data, ctx);
    if (seen && seen.status !== "PASS") return seen;
    return pass(summariseAttempts(data));
  };

/** For probes whose effect only the host can see (a datagram arriving): `count` of what arrived. */
export const arrivedNowhere =
  (count: (ctx: JudgeContext) => number | undefined, what: string): Judge =>
  (data, ctx) => {
    const n = count(ctx);
    const detail = text(data.detail, "");
    if (n === undefined) return skip("no canary on the host to receive it");
    return n > 0 ? hole(`${what} received ${n} (${detail})`) : pass(`${detail}; nothing arrived`);
  };

/** The probe's /proc/self/status field must have exactly this value. */
export const statusField =
  (field: string, want: (v: string) => boolean, describe: (v: string) => string): Judge =>
  (data) => {
    const value = data[field];
    if (typeof value !== "string") return fail(`no ${field} line in /proc/self/status`);
    return want(value) ? pass(describe(value)) : hole(describe(value));
  };
