import { lookup as dnsLookup } from "node:dns/promises";
import { refusalText } from "../rules/explain.js";
import { hostText, type NormalHost, normaliseHost } from "../rules/hostname.js";
import { checkMethods, decide, pinsFor, tunnelCheck, vetAddress } from "../rules/match.js";
import type { RuleRequest, TunnelCheck } from "../rules/rules.js";
import type { EgressEvent, ProxyContext } from "./types.js";

// The one decision pipeline that HTTP, CONNECT and SOCKS all go through: normalise the host, apply the
// rules (deny first), maybe ask, resolve the name ourselves (pins first) and vet every address. The
// caller connects only to the addresses returned here, so a second lookup can never swap them.

export interface Target {
  kind: "http" | "connect" | "socks";
  rawHost: string;
  port: number;
  method?: string;
  path?: string;
}

export type Authorized = {
  ok: true;
  host: NormalHost;
  addresses: string[];
  reason: "rule" | "ask";
  rule?: string;
  /** For tunnels: what runTunnel must see before passing bytes on (asked: the port's default). */
  tunnel: TunnelCheck;
};

export type Denied = {
  ok: false;
  reason: string;
  rule?: string;
  host: string;
  address?: string;
  /** What an HTTP client is told: 403 for policy, 400 for a malformed target, 502/504 for name trouble. */
  status: 400 | 403 | 502 | 504;
};

function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function systemLookup(name: string): Promise<string[]> {
  const results = await dnsLookup(name, { all: true, verbatim: true });
  return results.map((r) => r.address);
}

export async function authorize(ctx: ProxyContext, target: Target): Promise<Authorized | Denied> {
  const norm = normaliseHost(target.rawHost);
  if ("error" in norm)
    return { ok: false, reason: "bad-target", host: target.rawHost.slice(0, 256), status: 400 };
  const host = hostText(norm);
  const req: RuleRequest = { kind: target.kind, host: norm, port: target.port };
  if (target.method !== undefined) req.method = target.method;
  if (target.path !== undefined) req.path = target.path;

  let reason: "rule" | "ask" = "rule";
  let rule: string | undefined;
  let tunnel = tunnelCheck(target.port);
  if (!ctx.unsafe.allowAll) {
    const verdict = decide(ctx.plan, req);
    if (verdict.verdict === "deny") {
      const denied: Denied = {
        ok: false,
        reason: verdict.reason,
        host,
        status: verdict.reason === "bad-target" ? 400 : 403,
      };
      if (verdict.rule) denied.rule = verdict.rule;
      return denied;
    }
    if (verdict.verdict === "allow") {
      rule = verdict.rule.source;
      if (verdict.tunnel) tunnel = verdict.tunnel;
    } else {
      // No rule names this host: deny, or (policy "ask") hold the request while a human decides.
      if (ctx.plan.unknown !== "ask" || !ctx.ask)
        return { ok: false, reason: "not-allowed", host, status: 403 };
      const limited = checkMethods(ctx.plan, req);
      if (limited?.verdict === "deny") {
        const denied: Denied = { ok: false, reason: limited.reason, host, status: 403 };
        if (limited.rule) denied.rule = limited.rule;
        return denied;
      }
      const ask = ctx.ask;
      const answer = await withTimeout(
        ask({
          box: ctx.box,
          kind: target.kind,
          host,
          port: target.port,
          method: target.method,
          path: target.path,
        }).then(
          (yes) => (yes === true ? "yes" : "no"),
          () => "failed",
        ),
        ctx.limits.askTimeoutMs,
        () => "timeout",
      );
      if (answer !== "yes")
        return { ok: false, reason: answer === "no" ? "ask-denied" : `ask-${answer}`, host, status: 403 };
      reason = "ask";
    }
  }

  let addresses: string[];
  const pinned = pinsFor(ctx.plan, norm);
  if (norm.kind === "ip") addresses = [norm.ip];
  else if (pinned) addresses = pinned;
  else {
    const found = await withTimeout(
      ctx.lookup(norm.name).catch(() => [] as string[]),
      ctx.limits.lookupTimeoutMs,
      () => undefined,
    );
    if (found === undefined) return { ok: false, reason: "resolve-timeout", host, status: 504 };
    if (found.length === 0) return { ok: false, reason: "resolve-failed", host, status: 502 };
    addresses = found;
  }
  if (!ctx.unsafe.skipAddressGuard) {
    // Every address must pass: a name that answers with one internal address among public ones is a
    // rebinding attempt or a misconfiguration, and either way not something to connect around.
    for (const address of addresses) {
      const v = vetAddress(ctx.plan, address, target.port, pinned !== undefined);
      if (!v.ok) {
        const denied: Denied = { ok: false, reason: v.reason, host, address, status: 403 };
        if (v.rule) denied.rule = v.rule;
        return denied;
      }
    }
  }
  const ok: Authorized = { ok: true, host: norm, addresses, reason, tunnel };
  if (rule !== undefined) ok.rule = rule;
  return ok;
}

/** Builds the event for a request; handlers fill in the outcome. */
export function baseEvent(ctx: ProxyContext, target: Target, started: number): EgressEvent {
  const event: EgressEvent = {
    time: new Date(started).toISOString(),
    box: ctx.box,
    kind: target.kind,
    host: target.rawHost.slice(0, 256),
    port: target.port,
    decision: "deny",
    reason: "",
    bytesUp: 0,
    bytesDown: 0,
    durationMs: 0,
  };
  if (target.method !== undefined) event.method = target.method;
  if (target.path !== undefined) event.path = target.path.slice(0, 1024);
  return event;
}

/** The event of an allowed request, before its bytes and duration are known. */
export function allowEvent(
  ctx: ProxyContext,
  target: Target,
  started: number,
  allowed: Authorized,
): EgressEvent {
  const event = baseEvent(ctx, target, started);
  event.host = hostText(allowed.host);
  event.decision = "allow";
  event.reason = allowed.reason;
  if (allowed.rule) event.rule = allowed.rule;
  return event;
}

export function denyEvent(ctx: ProxyContext, target: Target, started: number, denied: Denied): EgressEvent {
  const event = baseEvent(ctx, target, started);
  event.host = denied.host;
  event.reason = denied.reason;
  if (denied.rule) event.rule = denied.rule;
  if (denied.address) event.address = denied.address;
  event.durationMs = Date.now() - started;
  return event;
}

/** The body of a refusal: what was refused, why, and the flag or policy line that would allow it. */
export function denialBody(
  kind: string,
  host: string,
  port: number,
  reason: string,
  denied?: Denied,
): string {
  return refusalText(kind, {
    host,
    port,
    reason,
    rule: denied?.rule,
    address: denied?.address,
    method: kind,
  });
}
