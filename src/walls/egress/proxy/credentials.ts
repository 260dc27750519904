import type { SecureContext } from "node:tls";
import type { RunCa } from "../credentials/ca.js";
import { boundTo, type CompiledInputRule } from "../credentials/compile.js";
import { inputRuleFor } from "../credentials/input-gate.js";
import { judgeRequest, type LiveCredential, type RequestVerdict } from "../credentials/swap.js";
import type { NormalHost } from "../rules/hostname.js";

// What the proxy holds for the credentials wing at run time: the secrets and their sentinels, the
// run's CA, the upstream trust, the input gate's rules, and where its events go.

/** One audit record per swap, refusal or blocked response; never a secret or a sentinel. */
export interface CredentialEvent {
  time: string;
  box: string;
  /** swap: the secret went in; pass: out of scope, sent unswapped; refuse: a sentinel stopped; input-blocked. */
  action: "swap" | "pass" | "refuse" | "input-blocked";
  /** Why, for refuse and input-blocked (credential-exfiltration, credential-out-of-scope, input-*). */
  reason?: string;
  /** The credential entries involved (their policy names). */
  names?: string[];
  host: string;
  port: number;
  method?: string;
  path?: string;
  /** Where the proxy saw the request: plain HTTP, a TLS tunnel it terminated, plain HTTP in a tunnel. */
  via: "http" | "tls" | "tunnel";
}

export interface ProxyCredentialOptions {
  live: LiveCredential[];
  input: CompiledInputRule[];
  /** The run's CA; without it no TLS is terminated (bound hosts then only over plain HTTP). */
  ca?: RunCa;
  /** Trust for upstream TLS the proxy speaks itself (system store + egress.trust). */
  upstreamTrust?: SecureContext;
  onEvent?: (event: CredentialEvent) => void;
}

export class CredentialRuntime {
  readonly sentinels: string[];

  constructor(
    readonly options: ProxyCredentialOptions,
    private readonly box: string,
  ) {
    this.sentinels = options.live.map((c) => c.sentinel);
  }

  /** Whether the proxy terminates a tunnel to `host`: a credential is bound there or the input gate screens it. */
  terminates(host: NormalHost): boolean {
    if (!this.options.ca) return false;
    return this.options.live.some((c) => boundTo(c.entry, host)) || this.inputRule(host) !== undefined;
  }

  inputRule(host: NormalHost): CompiledInputRule | undefined {
    return inputRuleFor(this.options.input, host);
  }

  judge(
    host: NormalHost,
    req: { method: string; target: string; pathname: string; rawHeaders: string[] },
  ): RequestVerdict {
    return judgeRequest(this.options.live, { host, ...req }, (entry) => boundTo(entry, host));
  }

  emit(event: Omit<CredentialEvent, "time" | "box">): void {
    try {
      this.options.onEvent?.({ time: new Date().toISOString(), box: this.box, ...event });
    } catch {}
  }
}
