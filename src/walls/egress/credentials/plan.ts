import path from "node:path";
import { BOX_NET_DIR } from "../network/network.js";
import type { EgressPlan } from "../rules/rules.js";
import type { CompiledCredential } from "./compile.js";
import { makeSentinel, type RandomSource } from "./sentinel.js";

// The box's side of the credentials: per-run sentinels, where the box sees them (variables, files,
// git's config), the CA bundle it trusts, and the secrets themselves, read on the host and held
// for the proxy only. Pure apart from the inputs it is handed (environment, file reader, random).

/** Where the box finds the run's CA: the system bundle plus the CA (bundle), and the CA alone (for NODE_EXTRA_CA_CERTS). */
export const BOX_CA_BUNDLE = `${BOX_NET_DIR}/ca-bundle.pem`;
export const BOX_CA_CERT = `${BOX_NET_DIR}/ca.pem`;

/** Variables that point TLS clients at the CA bundle (OpenSSL, node, python requests, curl, git). */
export function caEnvironment(): Record<string, string> {
  return {
    SSL_CERT_FILE: BOX_CA_BUNDLE,
    NODE_EXTRA_CA_CERTS: BOX_CA_CERT,
    REQUESTS_CA_BUNDLE: BOX_CA_BUNDLE,
    CURL_CA_BUNDLE: BOX_CA_BUNDLE,
    GIT_SSL_CAINFO: BOX_CA_BUNDLE,
  };
}

/**
 * The secrets, kept out of every serialisation of the plan (`run --dry-run --json`, the hand-off to
 * the box daemon): JSON shows only that they are held. A plan that went through JSON has none, and
 * the supervisor refuses to start its proxy rather than run without the swap.
 */
export class HeldSecrets {
  readonly #values = new Map<string, string>();
  set(name: string, value: string): void {
    this.#values.set(name, value);
  }
  get(name: string): string | undefined {
    return this.#values.get(name);
  }
  get size(): number {
    return this.#values.size;
  }
  values(): string[] {
    return [...this.#values.values()];
  }
  toJSON(): string {
    return `[${this.#values.size} secret(s), held by the proxy only]`;
  }
}

export interface CredentialBinding {
  name: string;
  sentinel: string;
  /** The box's variable and/or file holding the sentinel. */
  env?: string;
  file?: string;
  /** git over HTTPS: the origins (host, or host:port) whose git config sends the sentinel (Basic auth, user x-access-token). */
  gitHosts: string[];
}

export interface CredentialBoxPlan {
  bindings: CredentialBinding[];
  /** Whether the proxy terminates TLS for some hosts (credentials or input gate): the box gets the CA bundle. */
  terminates: boolean;
  secrets: HeldSecrets;
  /** Said once on stderr before the box starts (skipped optional entries, with the fix). */
  notes: string[];
  /** Tests only (weak-box.ts scrub-raw): the response scrub looks for the raw secret alone. */
  rawScrubOnly?: true;
}

export class CredentialPlanError extends Error {}

/** What an agent user probably does instead of an API key, and the fix, for the presets' optional keys. */
const MISSING_HINTS: Record<string, string> = {
  ANTHROPIC_API_KEY:
    "if Claude Code logs in with OAuth (claude /login), that token lives in ~/.claude/.credentials.json, inside the box, and the proxy cannot scope it yet; to keep the key outside, create an API key and export ANTHROPIC_API_KEY before fourwall run",
  OPENAI_API_KEY:
    "if Codex logs in with ChatGPT (codex login), that token lives in ~/.codex/auth.json, inside the box, and the proxy cannot scope it yet; to keep the key outside, export OPENAI_API_KEY before fourwall run (and `codex login --with-api-key` inside)",
};

export interface CredentialContext {
  hostEnv: Record<string, string | undefined>;
  home: string;
  /** Reads a host file (bounded); undefined when it cannot. */
  readFile: (file: string) => string | undefined;
  /** Paths the box can write (a source there is one the agent could read or replace). */
  writable: string[];
  random?: RandomSource;
}

const isUnder = (p: string, dir: string) => p === dir || p.startsWith(dir.endsWith("/") ? dir : `${dir}/`);

function readSecret(entry: CompiledCredential, ctx: CredentialContext): string | undefined {
  if ("env" in entry.source) return ctx.hostEnv[entry.source.env];
  const file = entry.source.file.replace(/^~(?=\/|$)/, ctx.home);
  if (!path.isAbsolute(file))
    throw new CredentialPlanError(
      `credential ${entry.name}: fromFile ${file} must be an absolute path (or start with ~/)`,
    );
  if (ctx.writable.some((w) => isUnder(file, w)))
    throw new CredentialPlanError(
      `credential ${entry.name}: fromFile ${file} is in a path the box can write, so the box could read it: keep the secret outside the workdir and writable paths`,
    );
  return ctx.readFile(file)?.split(/\r?\n/)[0];
}

/** Sentinels for the run, and the secrets they stand for. Throws CredentialPlanError on a secret that is missing or unfit. */
export function planCredentials(egress: EgressPlan, ctx: CredentialContext): CredentialBoxPlan {
  const entries = egress.credentials ?? [];
  const plan: CredentialBoxPlan = {
    bindings: [],
    terminates: false, // set below: only when a secret is really held, or the input gate is on
    secrets: new HeldSecrets(),
    notes: [],
  };
  const sentinels = new Set<string>();
  for (const entry of entries) {
    const secret = readSecret(entry, ctx)?.trim();
    const where = "env" in entry.source ? `$${entry.source.env}` : entry.source.file;
    if (!secret) {
      if (entry.optional) {
        const hint = "env" in entry.source ? MISSING_HINTS[entry.source.env] : undefined;
        plan.notes.push(
          `credential ${entry.name}: ${where} is not set on the host, so nothing is swapped for ${entry.hostSources.join(", ")}${hint ? `; ${hint}` : ""}`,
        );
        continue;
      }
      throw new CredentialPlanError(
        `credential ${entry.name}: ${where} is ${"env" in entry.source ? "not set (or empty)" : "missing, unreadable or empty"} on the host`,
      );
    }
    if (secret.length < 8 || /\s|\p{Cc}/u.test(secret))
      throw new CredentialPlanError(
        `credential ${entry.name}: the secret in ${where} is shorter than 8 characters or holds spaces or control characters; such a value cannot be found and swapped reliably`,
      );
    // Two entries for one box variable (a preset's and a --secret's) share its sentinel, so the key
    // works at the hosts of both; two different secrets for one variable cannot both be in it.
    const sharing = entry.env ? plan.bindings.find((b) => b.env === entry.env) : undefined;
    if (sharing && plan.secrets.get(sharing.name) !== secret)
      throw new CredentialPlanError(
        `credentials ${sharing.name} and ${entry.name} both set the box's $${entry.env} from different secrets`,
      );
    let sentinel = sharing?.sentinel ?? makeSentinel(secret, ctx.random);
    while (!sharing && sentinels.has(sentinel)) sentinel = makeSentinel(secret, ctx.random);
    sentinels.add(sentinel);
    plan.secrets.set(entry.name, secret);
    const binding: CredentialBinding = {
      name: entry.name,
      sentinel,
      gitHosts: entry.git ? gitOrigins(egress, entry) : [],
    };
    if (entry.env) binding.env = entry.env;
    if (entry.file) binding.file = entry.file;
    plan.bindings.push(binding);
  }
  // No CA, no terminated tunnels when every entry was an optional one without its secret.
  plan.terminates = plan.bindings.length > 0 || (egress.input ?? []).length > 0;
  return plan;
}

/**
 * The box's environment with the credentials applied: every source variable removed, each binding's
 * variable set to its sentinel, the CA variables when TLS is terminated. Throws when a secret still
 * appears in any value (another variable passed or set with the same token).
 */
export function applyCredentialEnv(
  env: Record<string, string>,
  egress: EgressPlan,
  plan: CredentialBoxPlan,
): Record<string, string> {
  const out = { ...env };
  for (const entry of egress.credentials ?? []) if ("env" in entry.source) delete out[entry.source.env];
  for (const b of plan.bindings) if (b.env) out[b.env] = b.sentinel;
  if (plan.terminates) Object.assign(out, caEnvironment());
  const secrets = plan.secrets.values();
  for (const [name, value] of Object.entries(out))
    if (secrets.some((s) => value.includes(s)))
      throw new CredentialPlanError(
        `the box's variable ${name} holds a secret that a credential entry keeps outside: remove it from env.pass / env.set`,
      );
  return out;
}

/**
 * git matches a config URL's port exactly: one origin per port egress allows for each exact bound
 * name (443 written bare), at most 16 per rule (a wide range gets none: write the port in the rule).
 */
export function gitOrigins(egress: EgressPlan, entry: CompiledCredential): string[] {
  const out: string[] = [];
  for (const h of entry.hosts) {
    if (h.kind !== "name" || h.wildcard) continue;
    for (const rule of egress.allow) {
      const covers =
        rule.host.kind === "name" &&
        (rule.host.wildcard ? h.name.endsWith(`.${rule.host.name}`) : rule.host.name === h.name);
      if (!covers || rule.path !== undefined) continue;
      for (const [lo, hi] of rule.ports) {
        if (hi - lo >= 16) continue;
        for (let port = lo; port <= hi; port++) {
          if (port === 80) continue; // git's token goes over HTTPS only
          const origin = port === 443 ? h.name : `${h.name}:${port}`;
          if (!out.includes(origin)) out.push(origin);
        }
      }
    }
  }
  return out;
}

/** A Basic authorization header value carrying the sentinel as the password (git's x-access-token convention). */
export function gitBasicHeader(sentinel: string): string {
  return `Authorization: Basic ${Buffer.from(`x-access-token:${sentinel}`).toString("base64")}`;
}
