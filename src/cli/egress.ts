import pc from "picocolors";
import { AuditLog } from "../audit/log.js";
import { EXIT_BOX_FAILED } from "../core/errors.js";
import { PolicyError } from "../policy/errors.js";
import { loadPolicy } from "../policy/load.js";
import type { ListenSpec, ProxyCredentialOptions } from "../walls/egress/index.js";
import {
  CredentialSetupError,
  FirewallError,
  loadClusterCredentials,
  parseProxyAddress,
  renderIptables,
  renderNftables,
  renderSquidConfig,
  SquidConfigError,
} from "../walls/egress/index.js";

export interface RenderOptions {
  format: "squid" | "nftables" | "iptables";
  policy?: string;
  preset: string[];
  allow: string[];
  resolve: string[];
  /** Where the proxy listens, as the box sees it. */
  proxyAddress: string;
}

/**
 * `fourwall egress render`: what fourwall would install for a policy, printed for audit or to paste
 * into another set-up (squid on a container host plus a firewall in the container's namespace).
 */
export function egressRenderCommand(options: RenderOptions): number {
  try {
    const flags: Record<string, unknown> = {};
    if (options.allow.length > 0 || options.resolve.length > 0)
      flags.egress = { allow: options.allow, resolve: options.resolve };
    const { egress, source } = loadPolicy({
      file: options.policy,
      cwd: process.cwd(),
      flags,
      presets: options.preset,
    });
    const proxy = parseProxyAddress(options.proxyAddress);
    let text: string;
    if (options.format === "squid") {
      text = `# policy: ${source}\n${renderSquidConfig(egress, { listen: proxy })}`;
    } else if (options.format === "nftables") {
      text = renderNftables(proxy);
    } else {
      text = renderIptables(proxy);
    }
    process.stdout.write(text);
    return 0;
  } catch (error) {
    if (error instanceof PolicyError) {
      process.stderr.write(`${pc.red(error.message)}\n`);
      return EXIT_BOX_FAILED;
    }
    if (error instanceof FirewallError || error instanceof SquidConfigError) {
      process.stderr.write(`${pc.red(`fourwall egress render: ${error.message}`)}\n`);
      return 2;
    }
    throw error;
  }
}

export interface ServeOptions {
  policy?: string;
  preset: string[];
  allow: string[];
  resolve: string[];
  /** 127.0.0.1:PORT, [::1]:PORT (0: any free port) or the path of a unix socket. */
  listen: string;
  audit?: string;
  /** A cluster proxy's credential file (its Secret, written by `fourwall k8s apply`). */
  credentials?: string;
}

const listenAt = (host: "127.0.0.1" | "::1" | "0.0.0.0" | "::", port: number): ListenSpec =>
  host === "0.0.0.0" || host === "::" ? { host, port, walledOff: true } : { host, port };

/**
 * `fourwall egress serve`: fourwall's own proxy on its own, for a policy (benchmarks, or a host
 * whose containers reach it through a socket). Loopback or a unix socket only; prints where it
 * listens, serves until SIGINT/SIGTERM.
 */
export async function egressServeCommand(options: ServeOptions): Promise<number> {
  try {
    const flags: Record<string, unknown> = {};
    if (options.allow.length > 0 || options.resolve.length > 0)
      flags.egress = { allow: options.allow, resolve: options.resolve };
    const { egress } = loadPolicy({
      file: options.policy,
      cwd: process.cwd(),
      flags,
      presets: options.preset,
    });
    // Every interface (0.0.0.0, [::]) is for a proxy container or pod whose network is walled off
    // around it (a Kubernetes NetworkPolicy, an internal docker network): only agents reach it.
    const m = /^(127\.0\.0\.1|\[::1\]|0\.0\.0\.0|\[::\]):(\d{1,5})$/.exec(options.listen);
    if ((!m || Number(m[2]) > 65535) && !options.listen.startsWith("/"))
      throw new FirewallError(
        `--listen takes 127.0.0.1:PORT, [::1]:PORT, 0.0.0.0:PORT, [::]:PORT or /path/to.sock, not "${options.listen}"`,
      );
    const LISTEN_HOST = {
      "127.0.0.1": "127.0.0.1",
      "[::1]": "::1",
      "0.0.0.0": "0.0.0.0",
      "[::]": "::",
    } as const;
    const audit = new AuditLog(options.audit);
    const { startProxy } = await import("../walls/egress/proxy/proxy.js");
    let credentials: ProxyCredentialOptions | undefined;
    if (options.credentials) {
      credentials = await loadClusterCredentials(egress, options.credentials, (event) =>
        audit.write({ wall: "egress", event: "credential", ...event }),
      );
    } else if ((egress.credentials ?? []).some((c) => !c.optional))
      throw new FirewallError(
        "the policy binds credentials: serve needs --credentials FILE (the proxy's Secret, written by fourwall k8s apply)",
      );
    const proxy = await startProxy({
      ...(credentials ? { credentials } : {}),
      plan: egress,
      box: "serve",
      listen: [
        m
          ? listenAt(LISTEN_HOST[m[1] as keyof typeof LISTEN_HOST], Number(m[2]))
          : { path: options.listen, mode: 0o600 },
      ],
      onDecision: (event) => audit.write({ wall: "egress", event: "decision", ...event }),
    });
    const where = proxy.listeners[0]!;
    process.stdout.write(
      `fourwall egress: listening on ${"path" in where ? where.path : `${where.host}:${where.port}`}\n`,
    );
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await proxy.close();
    audit.close();
    return 0;
  } catch (error) {
    if (error instanceof PolicyError) {
      process.stderr.write(`${pc.red(error.message)}\n`);
      return EXIT_BOX_FAILED;
    }
    if (error instanceof FirewallError || error instanceof CredentialSetupError) {
      process.stderr.write(`${pc.red(`fourwall egress serve: ${error.message}`)}\n`);
      return 2;
    }
    throw error;
  }
}
