import { spawn } from "node:child_process";
import pc from "picocolors";
import { AuditLog } from "../audit/log.js";
import { EXIT_BOX_FAILED } from "../core/errors.js";
import { OutputFileError } from "../core/output-file.js";
import type { EgressPlan, ListenSpec, ProxyCredentialOptions } from "../walls/egress/index.js";

// `fourwall egress serve` loads only the proxy: the policy is compiled by a short-lived child
// (`fourwall egress plan`, same flags), whose parsers (zod, yaml) would otherwise stay in this
// long-lived process's memory for good. The EgressPlan is plain JSON by design (rules.ts).

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

class ServeError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

const listenAt = (host: "127.0.0.1" | "::1" | "0.0.0.0" | "::", port: number): ListenSpec =>
  host === "0.0.0.0" || host === "::" ? { host, port, walledOff: true } : { host, port };

/** The policy's compiled egress plan, from `fourwall egress plan` in a child (its errors on our stderr). */
function compilePlan(options: ServeOptions): Promise<EgressPlan> {
  const args = [
    // the same V8 and loader flags (tsx from a source checkout), but not a second debugger on our port
    ...process.execArgv.filter((a) => !a.startsWith("--inspect")),
    process.argv[1]!,
    "egress",
    "plan",
    ...(options.policy !== undefined ? [`--policy=${options.policy}`] : []),
    ...options.preset.map((p) => `--preset=${p}`),
    ...options.allow.map((a) => `--allow=${a}`),
    ...options.resolve.map((r) => `--resolve=${r}`),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    const out: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.once("error", (error) => reject(new ServeError(`cannot compile the policy: ${error.message}`, 2)));
    child.once("close", (code, signal) => {
      if (code !== 0) {
        // the child has said why on stderr; a policy error keeps its exit status
        reject(new ServeError("", code ?? (signal ? EXIT_BOX_FAILED : 2)));
        return;
      }
      try {
        resolve(JSON.parse(Buffer.concat(out).toString("utf8")) as EgressPlan);
      } catch {
        reject(new ServeError("cannot compile the policy: no plan from `fourwall egress plan`", 2));
      }
    });
  });
}

/** The bound secrets of a cluster proxy (loaded only when asked: the x509 code stays out otherwise). */
async function clusterCredentials(
  plan: EgressPlan,
  options: ServeOptions,
  audit: AuditLog,
): Promise<ProxyCredentialOptions | undefined> {
  if (!options.credentials) {
    if ((plan.credentials ?? []).some((c) => !c.optional))
      throw new ServeError(
        "the policy binds credentials: serve needs --credentials FILE (the proxy's Secret, written by fourwall k8s apply)",
        2,
      );
    return undefined;
  }
  const { loadClusterCredentials, CredentialSetupError } = await import("../walls/egress/index.js");
  try {
    return await loadClusterCredentials(plan, options.credentials, (event) =>
      audit.write({ wall: "egress", event: "credential", ...event }),
    );
  } catch (error) {
    if (error instanceof CredentialSetupError) throw new ServeError(error.message, 2);
    throw error;
  }
}

/**
 * `fourwall egress serve`: fourwall's own proxy on its own, for a policy (benchmarks, or a host
 * whose containers reach it through a socket). Loopback or a unix socket only; prints where it
 * listens, serves until SIGINT/SIGTERM.
 */
export async function egressServeCommand(options: ServeOptions): Promise<number> {
  try {
    // Every interface (0.0.0.0, [::]) is for a proxy container or pod whose network is walled off
    // around it (a Kubernetes NetworkPolicy, an internal docker network): only agents reach it.
    const m = /^(127\.0\.0\.1|\[::1\]|0\.0\.0\.0|\[::\]):(\d{1,5})$/.exec(options.listen);
    if ((!m || Number(m[2]) > 65535) && !options.listen.startsWith("/"))
      throw new ServeError(
        `--listen takes 127.0.0.1:PORT, [::1]:PORT, 0.0.0.0:PORT, [::]:PORT or /path/to.sock, not "${options.listen}"`,
        2,
      );
    const LISTEN_HOST = {
      "127.0.0.1": "127.0.0.1",
      "[::1]": "::1",
      "0.0.0.0": "0.0.0.0",
      "[::]": "::",
    } as const;
    const plan = await compilePlan(options);
    const audit = new AuditLog(options.audit);
    const { startProxy } = await import("../walls/egress/proxy/proxy.js");
    const credentials = await clusterCredentials(plan, options, audit);
    const proxy = await startProxy({
      ...(credentials ? { credentials } : {}),
      plan,
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
    if (error instanceof ServeError) {
      if (error.message) process.stderr.write(`${pc.red(`fourwall egress serve: ${error.message}`)}\n`);
      return error.exitCode;
    }
    if (error instanceof OutputFileError) {
      process.stderr.write(`${pc.red(`fourwall egress serve: --audit: ${error.message}`)}\n`);
      return EXIT_BOX_FAILED;
    }
    throw error;
  }
}
