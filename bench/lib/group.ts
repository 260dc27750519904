/**
 * The shape every benchmark group shares. A group is a function from the run's context to rows
 * (plus the ratios and targets it derives from them); run.ts runs the groups in order and report.ts
 * renders whatever they return, so adding a group (proxy throughput, exec latency, ...) is one new
 * file exporting a BenchGroup and one line in run.ts.
 */
import { type Measured, measureInterleaved, type Stats, type Subject } from "./measure.js";

export interface BenchContext {
  /** Measured runs per subject (10 by default, 1 with --quick). */
  runs: number;
  /** Discarded rounds before the measured ones. */
  warmup: number;
  quick: boolean;
  /** The checkout's root (absolute). */
  repoRoot: string;
  /** Whether the bench runs as root (some subjects need it to switch users). */
  isRoot: boolean;
  /** A fresh temp dir, removed when the bench ends (also on Ctrl-C); chowned to `owner` if given. */
  tempDir(owner?: { uid: number; gid: number }): string;
  /** Progress, to stderr (stdout carries the table). */
  log(message: string): void;
}

/** One measured line of a table. `unit` lets groups measure other things than milliseconds. */
export interface Row {
  id: string;
  label: string;
  /** The command (or setup) exactly as run, for the reader to reproduce. */
  command: string;
  /** "baseline" rows are what ratios divide by; "informative" rows explain, and have no target. */
  role: "subject" | "baseline" | "informative";
  unit: string;
  result: { ok: true; stats: Stats; samples: number[] } | { ok: false; reason: string };
}

export interface Ratio {
  subject: string;
  baseline: string;
  /** subject median / baseline median; null when either could not be measured. */
  value: number | null;
}

export interface Target {
  /** e.g. "fourwall run (root) ≤ 0.25 × srt true". */
  description: string;
  subject: string;
  baseline: string;
  /** The ratio must be at most (or below) this. */
  limit: number;
  comparison: "<=" | "<";
  ratio: number | null;
  /** null: could not be decided (a side failed to run). */
  met: boolean | null;
}

/** Any extra table a group wants to show (e.g. a derived breakdown); rendered as is. */
export interface ExtraTable {
  title: string;
  header: string[];
  rows: string[][];
  note?: string;
}

export interface GroupResult {
  id: string;
  title: string;
  /** What is measured and how, one paragraph. */
  method: string;
  rows: Row[];
  ratios: Ratio[];
  targets: Target[];
  extraTables: ExtraTable[];
  notes: string[];
}

export interface BenchGroup {
  id: string;
  title: string;
  run(ctx: BenchContext): Promise<GroupResult>;
}

/** A measured subject as a millisecond row. */
export function msRow(measured: Measured, role: Row["role"]): Row {
  const { subject } = measured;
  return {
    id: subject.id,
    label: subject.label,
    command: subject.shown ?? subject.command.join(" "),
    role,
    unit: "ms",
    result: measured.ok
      ? {
          ok: true,
          stats: measured.stats,
          samples: measured.samplesMs.map((v) => Math.round(v * 1000) / 1000),
        }
      : { ok: false, reason: measured.reason },
  };
}

const medianOf = (rows: Row[], id: string): number | null => {
  const row = rows.find((r) => r.id === id);
  return row?.result.ok ? row.result.stats.median : null;
};

export function ratio(rows: Row[], subject: string, baseline: string): Ratio {
  const a = medianOf(rows, subject);
  const b = medianOf(rows, baseline);
  return { subject, baseline, value: a === null || b === null || b === 0 ? null : a / b };
}

export function target(
  rows: Row[],
  description: string,
  subject: string,
  baseline: string,
  comparison: Target["comparison"],
  limit: number,
): Target {
  const { value } = ratio(rows, subject, baseline);
  const met = value === null ? null : comparison === "<=" ? value <= limit : value < limit;
  return { description, subject, baseline, limit, comparison, ratio: value, met };
}

/**
 * Measures a group's subjects (interleaved, with the run's runs and warm-up) and makes the
 * millisecond rows; `role` says which are baselines, subjects or only informative.
 */
export async function measureRows(
  ctx: BenchContext,
  groupId: string,
  subjects: Subject[],
  role: (id: string) => Row["role"],
): Promise<Row[]> {
  const measured = await measureInterleaved(subjects, {
    runs: ctx.runs,
    warmup: ctx.warmup,
    log: (message) => ctx.log(`${groupId}: ${message}`),
  });
  return measured.map((m) => msRow(m, role(m.subject.id)));
}
