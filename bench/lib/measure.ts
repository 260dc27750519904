/**
 * Timing and statistics for the benchmark groups. A measurement is the wall time of a whole
 * process, from just before spawn() to its exit event, as seen by this (already warm) Node process:
 * that is what an agent pays for each command it wraps. The spawn overhead of the parent is in every
 * subject alike, and the bare `true` row shows how big it is.
 */
import { type ChildProcess, spawn } from "node:child_process";

/** One program to time, with how it must be started. */
export interface Subject {
  /** Short stable id, used as the JSON key and to refer to the subject from ratios. */
  id: string;
  /** Human label for the table. */
  label: string;
  command: string[];
  /** The command as the report shows it, when the real one has temp paths or long absolute ones. */
  shown?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Why the subject cannot be run at all here (e.g. needs root): reported instead of a number. */
  skip?: string;
}

export interface Sample {
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The tail of stderr, kept to explain a failure. */
  stderr: string;
}

/** Keep only the end of stderr: failure reasons are on the last lines, and output can be large. */
const STDERR_TAIL = 2048;
/** A subject that never exits would hang the whole bench: give up on it after this long. */
const TIMEOUT_MS = 60_000;

/** Children being timed right now, so an interrupted bench can stop them instead of orphaning them. */
const running = new Set<ChildProcess>();

/** Sends `signal` to every subject still running (the bench is being interrupted). */
export function stopRunning(signal: NodeJS.Signals = "SIGTERM"): void {
  for (const child of running) child.kill(signal);
}

/** Runs `subject` once and returns its whole-process wall time. Never rejects. */
export function timeOnce(subject: Subject): Promise<Sample> {
  const [program, ...args] = subject.command;
  return new Promise((resolve) => {
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    const start = process.hrtime.bigint();
    const child = spawn(program!, args, {
      cwd: subject.cwd,
      env: subject.env ?? process.env,
      // stdout is thrown away by the kernel (/dev/null), not read by us, so reading it costs nothing.
      stdio: ["ignore", "ignore", "pipe"],
    });
    running.add(child);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL);
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null, ms: number) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ ms, code, signal, stderr });
    };
    child.once("error", (error) => {
      stderr += `cannot start ${program}: ${error.message}`;
      finish(null, null, Number.NaN);
    });
    // `exit`, not `close`: the time stops when the process ends, even if something it left behind
    // (a daemon, a reaper) still holds its stderr open.
    child.once("exit", (code, signal) => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      // Give the pipe a moment to deliver the last of stderr, but do not wait on stray holders.
      setTimeout(() => finish(code, signal, ms), 20).unref();
    });
    timer = setTimeout(() => {
      stderr += `\ntimed out after ${TIMEOUT_MS / 1000} s`;
      child.kill("SIGKILL");
    }, TIMEOUT_MS);
  });
}

/** Why a sample counts as a failure, or undefined when the subject exited 0. */
export function failureReason(sample: Sample): string | undefined {
  if (sample.code === 0) return undefined;
  const status = sample.signal
    ? `killed by ${sample.signal}`
    : sample.code === null
      ? "did not start"
      : `exit ${sample.code}`;
  const lastLine = sample.stderr.trim().split("\n").filter(Boolean).at(-1);
  return lastLine ? `${status}: ${lastLine.trim()}` : status;
}

export interface Stats {
  runs: number;
  median: number;
  p90: number;
  min: number;
  max: number;
  mean: number;
}

const sorted = (values: readonly number[]) => [...values].sort((a, b) => a - b);

/** Median; the mean of the two middle values for an even count. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median of no values");
  const s = sorted(values);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Percentile by the nearest-rank method: the smallest sample with at least p% of samples at or
 * below it. Always an observed value, which is honest for the small counts (10 runs) used here:
 * the p90 of 10 runs is the 9th fastest.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new RangeError("percentile of no values");
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile ${p} is not in (0, 100]`);
  const s = sorted(values);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(rank, s.length) - 1]!;
}

export function stats(values: readonly number[]): Stats {
  if (values.length === 0) throw new RangeError("stats of no values");
  return {
    runs: values.length,
    median: median(values),
    p90: percentile(values, 90),
    min: Math.min(...values),
    max: Math.max(...values),
    mean: values.reduce((a, b) => a + b, 0) / values.length,
  };
}

/** A subject's outcome: its samples and stats, or why it could not be measured. */
export type Measured =
  | { subject: Subject; ok: true; samplesMs: number[]; stats: Stats }
  | { subject: Subject; ok: false; reason: string };

export interface InterleaveOptions {
  runs: number;
  warmup: number;
  /** Progress line per round (to stderr, so stdout stays the table). */
  log?: (message: string) => void;
}

/**
 * Measures every subject `runs` times, round-robin: round i runs each subject once, starting at a
 * different subject each round, so slow drifts in machine load (other jobs, thermal, page cache)
 * spread over all subjects instead of landing on whichever ran last. Warm-up rounds come first and
 * are discarded; they fill the page cache and also find subjects that cannot run at all, which are
 * then reported with their failure reason and not retried.
 */
export async function measureInterleaved(
  subjects: Subject[],
  options: InterleaveOptions,
): Promise<Measured[]> {
  const failed = new Map<string, string>();
  for (const s of subjects) if (s.skip) failed.set(s.id, s.skip);
  const samples = new Map<string, number[]>(subjects.map((s) => [s.id, []]));

  const round = async (index: number, record: boolean) => {
    for (let k = 0; k < subjects.length; k++) {
      const subject = subjects[(index + k) % subjects.length]!;
      if (failed.has(subject.id)) continue;
      const sample = await timeOnce(subject);
      const reason = failureReason(sample);
      if (reason) failed.set(subject.id, reason);
      else if (record) samples.get(subject.id)!.push(sample.ms);
    }
  };

  for (let i = 0; i < options.warmup; i++) {
    options.log?.(`warm-up ${i + 1}/${options.warmup}`);
    await round(i, false);
  }
  for (let i = 0; i < options.runs; i++) {
    options.log?.(`run ${i + 1}/${options.runs}`);
    await round(i, true);
  }

  return subjects.map((subject): Measured => {
    const reason = failed.get(subject.id);
    if (reason !== undefined) return { subject, ok: false, reason };
    const values = samples.get(subject.id)!;
    return { subject, ok: true, samplesMs: values, stats: stats(values) };
  });
}
