import { accessSync, constants, existsSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import type { Mount } from "../filesystem/index.js";
import { matchExecRules, strictest } from "./rules.js";
import type { Decision, GatePolicy } from "./schema.js";
import type { Classification, ClassifyContext, Resolution } from "./shell/classify.js";

export interface ExecDecision {
  decision: Decision;
  /** One line per part that is not plainly allowed: what it is and why it is gated. */
  why: string[];
  classification: Classification;
}

/**
 * Policy over classification: each simple command gets the decision of the exec rules that match
 * it (strictest of them) or, when none matches, the decision for its class; the whole command line
 * gets the strictest of its parts.
 */
export function decideExec(policy: GatePolicy["exec"], classification: Classification): ExecDecision {
  const parts: Decision[] = [];
  const why: string[] = [];
  for (const cmd of classification.commands) {
    const words = cmd.words.map((w) => w ?? "…");
    // Rules see the program by the name the classifier trusted, and as typed.
    const variants =
      cmd.program && words[0] !== cmd.program ? [words, [cmd.program, ...words.slice(1)]] : [words];
    const hits = variants.flatMap((w) => matchExecRules(policy.rules, w));
    const fromClass =
      cmd.class === "read-only"
        ? policy.readOnly
        : cmd.class === "destructive"
          ? policy.destructive
          : policy.unknown;
    const decision =
      hits.length > 0
        ? strictest(
            hits.map((r) => r.decision),
            fromClass,
          )
        : fromClass;
    parts.push(decision);
    if (decision !== "allow") {
      const rule = hits.find((r) => r.decision === decision);
      why.push(rule ? `${cmd.reason} (rule "${rule.command}": ${decision})` : cmd.reason);
    }
  }
  return { decision: strictest(parts, "allow"), why: [...new Set(why)], classification };
}

/**
 * Which paths the box can write, from its mount plan: the last mount covering a path decides
 * (a writable bind or a tmpfs that is not read-only). A program found in such a place may have
 * been planted by the agent.
 */
export function boxWritableFrom(mounts: readonly Mount[]): (p: string) => boolean {
  const covers = (target: string, p: string) => target === "/" || p === target || p.startsWith(`${target}/`);
  return (p: string) => {
    for (let i = mounts.length - 1; i >= 0; i--) {
      const m = mounts[i]!;
      if (!("target" in m) || !covers(m.target, p)) continue;
      if (m.type === "bind") return m.writable;
      if (m.type === "tmpfs") return !m.readOnly;
      return false;
    }
    return false;
  };
}

const isExecutable = (p: string) => {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * The classifier's view of the host as the box sees it: PATH lookup that distrusts any directory
 * the box can write (a PATH entry in the workdir, /tmp or a writable HOME spot met before the
 * program's system directory makes the answer untrustworthy: the agent could have put a file there).
 */
export function hostClassifyContext(options: {
  cwd: string;
  pathEnv: string;
  boxWritable: (p: string) => boolean;
}): ClassifyContext {
  const { boxWritable } = options;
  const trustedFile = (p: string): Resolution => {
    let real = p;
    try {
      real = realpathSync(p);
    } catch {}
    return { path: p, trusted: !boxWritable(p) && !boxWritable(real) };
  };
  return {
    cwd: options.cwd,
    exists: (p) => existsSync(p),
    resolve(program, cwd) {
      if (program.includes("/")) {
        const p = path.resolve(cwd, program);
        if (boxWritable(p)) return { path: p, trusted: false };
        return isExecutable(p) ? trustedFile(p) : { trusted: false };
      }
      for (const entry of options.pathEnv.split(":")) {
        const dir = path.resolve(cwd, entry || ".");
        if (boxWritable(dir)) return { path: path.join(dir, program), trusted: false };
        const candidate = path.join(dir, program);
        if (isExecutable(candidate)) return trustedFile(candidate);
      }
      return { trusted: false };
    },
  };
}
