/** A policy problem, located: `file:line: field: reason`. */
export interface PolicyProblem {
  file: string;
  line?: number;
  field: string;
  reason: string;
}

export class PolicyError extends Error {
  constructor(readonly problems: PolicyProblem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.name = "PolicyError";
  }
}

export function formatProblem(p: PolicyProblem): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}`;
  return `${where}: ${p.field || "(top level)"}: ${p.reason}`;
}
