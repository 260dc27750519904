import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { type Document, isMap, isScalar, LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { CredentialError, compileEgressPlan, type EgressPlan, RuleError } from "../walls/egress/index.js";
import { PolicyError, type PolicyProblem } from "./errors.js";
import { mergeLayers } from "./merge.js";
import { PRESET_NAMES, PRESETS, type PresetName } from "./presets.js";
import { type Policy, policySchema } from "./schema.js";

export const DEFAULT_POLICY_FILE = "fourwall.yaml";

export interface LoadOptions {
  /** The policy file; when absent, ./fourwall.yaml is used if it exists, else the built-in default. */
  file?: string | undefined;
  cwd: string;
  /** A layer from command-line flags, merged over the file. */
  flags?: Record<string, unknown>;
  /** Presets named on the command line. */
  presets?: string[];
}

export interface LoadedPolicy {
  policy: Policy;
  /** The egress rules, compiled and checked (a rule that cannot be enforced is a policy error). */
  egress: EgressPlan;
  /** Where the policy came from: a path, or "(built-in default)". */
  source: string;
}

interface ParsedFile {
  raw: unknown;
  doc?: Document;
  lines?: LineCounter;
  source: string;
}

export function loadPolicy(options: LoadOptions): LoadedPolicy {
  const parsed = readPolicyFile(options);
  const fileLayer = (parsed.raw ?? {}) as Record<string, unknown>;
  const presets = presetNames(fileLayer.preset, options.presets ?? [], parsed);
  const layers = presets.map((name) => PRESETS[name]);
  const merged = mergeLayers(...layers, fileLayer, options.flags ?? {});
  if (presets.length > 0) merged.preset = presets;
  const result = policySchema.safeParse(merged);
  if (!result.success) throw new PolicyError(result.error.issues.map((issue) => locate(issue, parsed)));
  return { policy: result.data, source: parsed.source, egress: compileEgress(result.data, parsed, options) };
}

/** Compiles the egress rules; a bad rule is located like any other policy error. */
function compileEgress(policy: Policy, parsed: ParsedFile, options: LoadOptions): EgressPlan {
  try {
    return compileEgressPlan(policy.egress);
  } catch (error) {
    if (error instanceof CredentialError) {
      // a credential or input entry: located by its field path in the file, or named as the flag
      const field = ["egress", ...error.field.split(".")];
      const line = lineOf(parsed, field);
      const inFile = line !== undefined;
      throw new PolicyError([
        {
          file: inFile ? parsed.source : options.flags?.egress ? "--secret" : parsed.source,
          ...(inFile ? { line } : {}),
          field: field.join("."),
          reason: error.message,
        },
      ]);
    }
    if (!(error instanceof RuleError)) throw error;
    const fileRaw = (parsed.raw ?? {}) as { egress?: Record<string, unknown> };
    for (const side of ["allow", "deny", "methods", "resolve"] as const) {
      const list = fileRaw.egress?.[side];
      const index = Array.isArray(list) ? list.indexOf(error.rule) : -1;
      if (index >= 0) {
        const field = ["egress", side, index];
        throw new PolicyError([
          { file: parsed.source, line: lineOf(parsed, field), field: field.join("."), reason: error.message },
        ]);
      }
    }
    const flag =
      options.flags && JSON.stringify(options.flags).includes(JSON.stringify(error.rule))
        ? "--allow/--resolve"
        : parsed.source;
    throw new PolicyError([{ file: flag, field: "egress", reason: error.message }]);
  }
}

/** Validates one file on its own (for `fourwall policy check`). */
export function checkPolicyFile(file: string, cwd: string): LoadedPolicy {
  return loadPolicy({ file, cwd });
}

function readPolicyFile(options: LoadOptions): ParsedFile {
  let file = options.file;
  if (file === undefined) {
    const fallback = path.join(options.cwd, DEFAULT_POLICY_FILE);
    if (!existsSync(fallback)) return { raw: {}, source: "(built-in default)" };
    file = fallback;
  }
  const shown = path.relative(options.cwd, path.resolve(options.cwd, file)) || file;
  let text: string;
  try {
    text = readFileSync(path.resolve(options.cwd, file), "utf8");
  } catch (error) {
    throw new PolicyError([{ file: shown, field: "", reason: `cannot read: ${(error as Error).message}` }]);
  }
  // YAML 1.2 is a superset of JSON, so one parser serves both and keeps line numbers for either.
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new PolicyError(
      doc.errors.map((e) => ({
        file: shown,
        line: lines.linePos(e.pos[0]).line,
        field: "",
        reason: `not valid YAML/JSON: ${e.message.split("\n")[0]}`,
      })),
    );
  }
  const raw = doc.toJS() ?? {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new PolicyError([
      { file: shown, line: 1, field: "", reason: "a policy is a mapping of keys to values" },
    ]);
  }
  return { raw, doc, lines, source: shown };
}

function presetNames(fromFile: unknown, fromFlags: string[], parsed: ParsedFile): PresetName[] {
  const names = [
    ...(Array.isArray(fromFile) ? fromFile : fromFile === undefined ? [] : [fromFile]),
    ...fromFlags,
  ];
  const bad = names.filter((n) => !(PRESET_NAMES as readonly unknown[]).includes(n));
  if (bad.length > 0) {
    const file = fromFlags.some((n) => bad.includes(n)) ? "--preset" : parsed.source;
    throw new PolicyError([
      {
        file,
        line: lineOf(parsed, ["preset"]),
        field: "preset",
        reason: `unknown preset ${bad.map((b) => JSON.stringify(b)).join(", ")} (known: ${PRESET_NAMES.join(", ")})`,
      },
    ]);
  }
  return [...new Set(names as PresetName[])];
}

function locate(issue: z.core.$ZodIssue, parsed: ParsedFile): PolicyProblem {
  let fieldPath = issue.path.map(String);
  let reason = issue.message;
  if (issue.code === "unrecognized_keys") {
    fieldPath = [...fieldPath, issue.keys[0]!];
    reason = `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
  }
  return { file: parsed.source, line: lineOf(parsed, fieldPath), field: fieldPath.join("."), reason };
}

/** The line of the deepest node of `fieldPath` present in the file (the key's line for a mapping entry). */
function lineOf(parsed: ParsedFile, fieldPath: (string | number)[]): number | undefined {
  const { doc, lines } = parsed;
  if (!doc || !lines) return undefined;
  for (let depth = fieldPath.length; depth > 0; depth--) {
    const parentPath = fieldPath.slice(0, depth - 1).map((p) => (/^\d+$/.test(String(p)) ? Number(p) : p));
    const last = fieldPath[depth - 1]!;
    const parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true);
    if (isMap(parent)) {
      const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === String(last));
      const range = pair && isScalar(pair.key) ? pair.key.range : undefined;
      if (range) return lines.linePos(range[0]).line;
    }
    const node = doc.getIn([...parentPath, /^\d+$/.test(String(last)) ? Number(last) : last], true) as
      | { range?: [number, number, number] }
      | undefined;
    if (node?.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}
