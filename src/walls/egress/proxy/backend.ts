import type { EgressPlan } from "../rules/rules.js";
import type { ProxyCredentialOptions } from "./credentials.js";
import type { AskRequest, EgressEvent, ProxyHandle } from "./types.js";

// The one place the box builder starts "the proxy": fourwall's own, or squid with a generated config.
// Both listen on the unix socket the box's bridge connects to and report EgressEvents; each is
// imported only when used, so a box never loads the other.

export interface BackendOptions {
  plan: EgressPlan;
  box: string;
  /** The unix socket bind-mounted into the box. */
  socketPath: string;
  socketMode: number;
  /** A private directory a backend may use for its own files (squid's config, logs, pid). */
  stateDir: string;
  onDecision: (event: EgressEvent) => void;
  /** The approval gate's question for names no rule allows (policy unknown: ask; builtin only). */
  ask?: ((request: AskRequest) => Promise<boolean>) | undefined;
  /** Credentials and the input gate (builtin only; the plan refuses them with squid). */
  credentials?: ProxyCredentialOptions | undefined;
  /** Tests only (the deliberately broken box): squid without its proxy credential. */
  openSquidPortForTests?: boolean;
}

export async function startEgressBackend(options: BackendOptions): Promise<ProxyHandle> {
  if (options.plan.proxy === "squid") {
    if (options.credentials) throw new Error("credentials and the input gate need the builtin proxy");
    const { startSquid } = await import("../squid/squid.js");
    const squid: Parameters<typeof startSquid>[0] = {
      plan: options.plan,
      box: options.box,
      socketPath: options.socketPath,
      socketMode: options.socketMode,
      dir: options.stateDir,
      onDecision: options.onDecision,
      ...(options.openSquidPortForTests ? { unsafeNoAuthForTests: true } : {}),
    };
    return startSquid(squid);
  }
  const { startProxy } = await import("./proxy.js");
  return startProxy({
    plan: options.plan,
    box: options.box,
    listen: [{ path: options.socketPath, mode: options.socketMode }],
    onDecision: options.onDecision,
    ...(options.ask ? { ask: options.ask } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
  });
}
