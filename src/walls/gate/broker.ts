import { randomBytes } from "node:crypto";
import type { AuditLog } from "../../audit/log.js";
import type { Decision } from "./schema.js";
import type { Approver, ApproverAnswer, GateAnswer, GateRequest } from "./types.js";

export interface BrokerOptions {
  box: string;
  audit: AuditLog;
  approvers: Approver[];
  timeoutMs: number;
  /** "box": a human's "always" holds for identical requests until this box exits. */
  always: "box" | "off";
  /** Where "denied because nobody can answer" is said to the human (fourwall's stderr). */
  notify?: (line: string) => void;
}

export type NewRequest = Omit<GateRequest, "id" | "box" | "time" | "alwaysAllowed">;

/**
 * The broker: the one place a gate decision is made, in the fourwall process on the host. The
 * box can ask (through the gate socket) but never decide: the policy decision comes from the
 * caller's own evaluation on the host, and "ask" goes to the approvers. Fail closed everywhere:
 * no approver, a timeout, an approver that crashes — all mean no. Every request and every
 * decision is written to the audit log with who decided and how.
 */
export class Broker {
  private readonly always = new Set<string>();
  private readonly pending = new Map<string, AbortController>();
  private closed = false;

  constructor(private readonly options: BrokerOptions) {}

  get hasApprovers(): boolean {
    return this.options.approvers.length > 0;
  }

  /** Identical requests share an "always": same kind, same command or host, same directory. */
  private key(r: NewRequest): string {
    return JSON.stringify([r.kind, r.command ?? r.summary, r.host ?? "", r.method ?? "", r.cwd]);
  }

  /** `withdrawn`: the question is taken back (the box that asked is gone): settles no. */
  async decide(request: NewRequest, policy: Decision, withdrawn?: AbortSignal): Promise<GateAnswer> {
    const full: GateRequest = {
      ...request,
      id: randomBytes(6).toString("hex"),
      box: this.options.box,
      time: new Date().toISOString(),
      alwaysAllowed: this.options.always === "box" && request.kind !== "fs",
    };
    const started = performance.now();
    this.audit("request", full, { policy });
    const answer = await this.settle(full, policy, withdrawn);
    this.audit("decision", full, {
      decision: answer.decision,
      by: answer.by,
      how: answer.reason,
      ...(answer.paths ? { paths: answer.paths } : {}),
      ms: Math.round(performance.now() - started),
    });
    return answer;
  }

  private async settle(request: GateRequest, policy: Decision, withdrawn?: AbortSignal): Promise<GateAnswer> {
    if (policy === "allow") return { decision: "allow", by: "policy", reason: "allowed by the gate policy" };
    if (policy === "deny")
      return {
        decision: "deny",
        by: "policy",
        reason: `denied by the gate policy: ${request.why.join("; ") || request.summary}`,
      };
    const key = this.key(request);
    if (this.always.has(key))
      return { decision: "allow", by: "always", reason: "a human said always for this box earlier" };
    if (this.closed || withdrawn?.aborted)
      return { decision: "deny", by: "closed", reason: "the box is shutting down" };
    if (this.options.approvers.length === 0) {
      const reason =
        "denied: nobody to ask (no terminal, no --approver, no --inbox); allow it in the policy's gate rules to let it through unattended";
      if (request.via !== "change-set")
        this.options.notify?.(`fourwall gate: ${request.kind} ${request.summary}: ${reason}`);
      return { decision: "deny", by: "no-approver", reason };
    }
    const controller = new AbortController();
    withdrawn?.addEventListener("abort", () => controller.abort(), { once: true });
    this.pending.set(request.id, controller);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<GateAnswer>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            decision: "deny",
            by: "timeout",
            reason: `denied: no answer within ${Math.round(this.options.timeoutMs / 1000)} s`,
          }),
        this.options.timeoutMs,
      );
    });
    const asks = this.options.approvers.map((approver) =>
      approver.ask(request, controller.signal).then(
        (a): GateAnswer => {
          if (typeof a === "object") return partialAnswer(request, a.approve, approver.name);
          if (a === "always" && request.alwaysAllowed && !controller.signal.aborted) this.always.add(key);
          return toAnswer(a === "always" && !request.alwaysAllowed ? "yes" : a, approver.name);
        },
        // An approver that fails is a no: fail closed.
        (error: unknown): GateAnswer => ({
          decision: "deny",
          by: approver.name,
          reason: `denied: the ${approver.name} approver failed (${(error as Error)?.message ?? error})`,
        }),
      ),
    );
    try {
      const answer = await Promise.race([timeout, ...asks]);
      for (const approver of this.options.approvers) approver.settled?.(request.id, answer);
      return answer;
    } finally {
      clearTimeout(timer);
      controller.abort();
      this.pending.delete(request.id);
    }
  }

  private audit(event: string, r: GateRequest, extra: Record<string, unknown>): void {
    const record: Record<string, unknown> = {
      box: r.box,
      wall: "gate",
      event,
      id: r.id,
      kind: r.kind,
      via: r.via,
      summary: r.summary,
      cwd: r.cwd,
      why: r.why,
      ...extra,
    };
    if (r.command !== undefined) record.command = r.command;
    // the diffs are the box's content (bounded, but long): the log keeps sizes and hashes
    if (r.changes) record.changes = r.changes.map(({ diff: _d, diffNote: _n, ...c }) => c);
    if (r.host !== undefined) Object.assign(record, { host: r.host, port: r.port, method: r.method });
    this.options.audit.write(record as never);
  }

  /** Denies whatever is still waiting and closes the approvers. */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.pending.values()) c.abort();
    await Promise.all(this.options.approvers.map((a) => a.close?.()));
  }
}

function toAnswer(a: ApproverAnswer, by: string): GateAnswer {
  if (a === "yes") return { decision: "allow", by, reason: `approved at the ${by}` };
  if (a === "always") return { decision: "allow", by, reason: `approved at the ${by}, always for this box` };
  return { decision: "deny", by, reason: `denied at the ${by}` };
}

/**
 * A change-set answered file by file: only paths the request holds count; none is a no, every
 * one a plain yes. Any other kind of request answered this way is a no (fail closed).
 */
export function partialAnswer(request: GateRequest, approve: readonly string[], by: string): GateAnswer {
  const asked = request.kind === "fs" ? (request.changes ?? []).map((c) => c.path) : [];
  const paths = asked.filter((p) => approve.includes(p));
  if (paths.length === 0) return { decision: "deny", by, reason: `denied at the ${by}` };
  if (paths.length === asked.length) return toAnswer("yes", by);
  return {
    decision: "allow",
    by,
    reason: `${paths.length} of ${asked.length} approved at the ${by}, the others refused`,
    paths,
  };
}
