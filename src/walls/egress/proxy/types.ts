import type { Agent } from "node:http";
import type { Socket } from "node:net";
import type { EgressPlan } from "../rules/rules.js";
import type { CredentialRuntime, ProxyCredentialOptions } from "./credentials.js";
import type { IdleSweeper } from "./idle.js";
import type { Splicer } from "./splice.js";

/** One audit record per decision: a denial at once, an allowed connection when it ends (with byte counts). */
export interface EgressEvent {
  /** ISO time the request arrived. */
  time: string;
  box: string;
  kind: "http" | "connect" | "socks";
  /** Normalised host (IPv6 in brackets); the raw text, cut to 256 characters, when it could not be parsed. */
  host: string;
  port: number;
  method?: string;
  path?: string;
  /** The vetted address the proxy connected to (or refused). */
  address?: string;
  /** The TLS server name the client sent inside a tunnel, when it sent one. */
  sni?: string;
  decision: "allow" | "deny";
  /** allow: "rule" or "ask". deny: a reason code, also sent as X-Fourwall-Denied. */
  reason: string;
  /** The policy rule (as written) that decided, when one did. */
  rule?: string;
  /** Set on an allowed request that still failed: connect-refused, connect-timeout, idle-timeout, upstream-error. */
  error?: string;
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  /** A tunnel whose TLS the proxy terminated (a bound credential's host, or the input gate's). */
  terminated?: boolean;
}

export interface AskRequest {
  box: string;
  kind: "http" | "connect" | "socks";
  host: string;
  port: number;
  method?: string;
  path?: string;
}

export type ListenSpec =
  | { path: string; mode?: number }
  | { host?: "127.0.0.1" | "::1"; port: number }
  /** Every interface: only for a proxy container or pod whose network is walled off around it. */
  | { host: "0.0.0.0" | "::"; port: number; walledOff: true };

export interface ProxyLimits {
  /** Time to receive request headers, a SOCKS handshake. Default 10 s. */
  headerTimeoutMs: number;
  /** A tunnel or request with no traffic either way for this long is closed. Default 5 min. */
  idleTimeoutMs: number;
  /** Upstream TCP connect, per address tried. Default 10 s. */
  connectTimeoutMs: number;
  /** Name resolution. Default 5 s. */
  lookupTimeoutMs: number;
  /** How long an "ask" may hold a request before it is denied. Default 120 s. */
  askTimeoutMs: number;
  /** Largest request header block (bytes); larger gets 431. Default 32 KiB. */
  maxHeaderBytes: number;
  /** Client connections at once; more are refused. Default 8192. */
  maxConnections: number;
  /**
   * A tunnel that has carried this many bytes is handed to the splice helper (kernel-to-kernel copy),
   * when it is built. 0: never. Default 256 KiB.
   */
  spliceAfterBytes?: number;
}

/**
 * Switches that open holes on purpose. They exist only so the test suite can run every probe against a
 * leaky proxy and show that the probe notices; nothing outside tests may set them.
 */
export interface UnsafeTestSwitches {
  allowAll?: boolean;
  skipAddressGuard?: boolean;
  skipSniCheck?: boolean;
  skipHostCheck?: boolean;
}

export interface ProxyOptions {
  plan: EgressPlan;
  /** Identity of the box in every event. Default "box". */
  box?: string;
  /** Unix socket path(s) (the box reaches them through a bind mount) and/or a loopback TCP port (0 = any). */
  listen: ListenSpec[];
  onDecision?: (event: EgressEvent) => void;
  /** Consulted for hosts no rule allows when plan.unknown is "ask"; true lets this one request through. */
  ask?: (request: AskRequest) => Promise<boolean>;
  limits?: Partial<ProxyLimits>;
  /** Name resolution, replaceable in tests. Default dns.lookup (all addresses, system order). */
  lookup?: (name: string) => Promise<string[]>;
  unsafeForTests?: UnsafeTestSwitches;
  /** Credentials to swap and the input gate (credentials/): set when the policy has either. */
  credentials?: ProxyCredentialOptions;
}

export interface ProxyHandle {
  /** Where the proxy listens: unix socket paths and TCP ports, in the order of options.listen. */
  listeners: Array<{ path: string } | { host: string; port: number }>;
  /** http://127.0.0.1:PORT of the first TCP listener, if any. */
  url?: string;
  /** Connections currently open (clients and upstreams). */
  openSockets(): number;
  /** Tunnels handed to the splice helper so far (0 when it is not built). */
  splicedTunnels?(): number;
  /** Stops listening and ends every open connection. */
  close(): Promise<void>;
}

/** What every handler shares. */
export interface ProxyContext {
  plan: EgressPlan;
  box: string;
  limits: ProxyLimits;
  emit: (event: EgressEvent) => void;
  ask?: (request: AskRequest) => Promise<boolean>;
  lookup: (name: string) => Promise<string[]>;
  unsafe: UnsafeTestSwitches;
  agent: Agent;
  idle: IdleSweeper;
  track: (socket: Socket) => void;
  /** Stops counting a socket as open (its handle went to the splice helper). */
  untrack: (socket: Socket) => void;
  /** The bulk data path for tunnels, when native/fourwall-splice is built. */
  splicer?: Splicer;
  /** Sentinel swap, TLS termination and the input gate, when configured. */
  creds?: CredentialRuntime;
}
