import { execFile } from "node:child_process";
import { lookup as dnsLookup } from "node:dns/promises";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createTcpServer, connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TLSSocket, connect as tlsConnect } from "node:tls";

// Loopback-only test origins for the egress proxy tests. Every server here listens on 127.0.0.1 and
// answers with a body that names itself, so a test can tell "reached the origin" from "a connection
// that merely opened".

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a client program asynchronously (the proxy under test lives in this same process). */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 15_000, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as NodeJS.ErrnoException).code === "number"
            ? Number((err as { code: number }).code)
            : 1
          : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

export interface Certs {
  dir: string;
  cert: string;
  key: string;
  /** PEM text of the self-signed certificate, to pass as a CA. */
  certPem: string;
  cleanup(): void;
}

/** A throwaway self-signed certificate for allowed.test, other.test, *.wild.test and 127.0.0.1 (prove's own maker). */
export async function makeCerts(): Promise<Certs> {
  const dir = mkdtempSync(join(tmpdir(), "fourwall-egress-"));
  const made = await makeCanaryCertificate(
    dir,
    join(dir, "cert.pem"),
    ["allowed.test", "other.test", "*.wild.test"],
    "allowed.test",
  );
  return {
    dir,
    cert: made.certPath,
    key: made.keyPath,
    certPem: made.certPem,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Origin {
  port: number;
  /** Requests (HTTP) or connections (canary) seen so far. */
  hits: number;
  close(): Promise<void>;
}

function listen(server: Server | ReturnType<typeof createTcpServer>, host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, host, () => {
      const addr = server.address();
      resolve(typeof addr === "object" && addr ? addr.port : 0);
    });
  });
}

function closer(
  server: Server | ReturnType<typeof createTcpServer>,
  sockets: Set<Socket>,
): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
}

function trackSockets(server: Server | ReturnType<typeof createTcpServer>): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
  });
  return sockets;
}

function answer(kind: string, origin: Origin) {
  return (req: IncomingMessage, res: ServerResponse) => {
    origin.hits++;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const sni = (req.socket as TLSSocket).servername;
      const body = [
        `origin=${kind}`,
        `method=${req.method}`,
        `url=${req.url}`,
        `host=${req.headers.host ?? ""}`,
        ...(sni !== undefined ? [`sni=${sni || "none"}`] : []),
        `proxyHeaders=${
          Object.keys(req.headers)
            .filter((h) => h.startsWith("proxy-"))
            .join(",") || "none"
        }`,
        `body=${Buffer.concat(chunks).length}`,
      ].join(" ");
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`${body}\n`);
    });
  };
}

/** Plain HTTP origin on 127.0.0.1 (or ::1): the body starts with "origin=http". */
export async function startHttpOrigin(host: "127.0.0.1" | "::1" = "127.0.0.1"): Promise<Origin> {
  const origin: Origin = { port: 0, hits: 0, close: async () => {} };
  const server = createHttpServer(answer("http", origin));
  const sockets = trackSockets(server);
  origin.port = await listen(server, host);
  origin.close = closer(server, sockets);
  return origin;
}

/** HTTPS origin on 127.0.0.1 with the test certificate: the body starts with "origin=https" and names the SNI. */
export async function startHttpsOrigin(certs: Certs): Promise<Origin> {
  const origin: Origin = { port: 0, hits: 0, close: async () => {} };
  const server = createHttpsServer(
    { cert: readFileSync(certs.cert), key: readFileSync(certs.key) },
    answer("https", origin),
  );
  const sockets = new Set<Socket>();
  server.on("secureConnection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("tlsClientError", () => {});
  origin.port = await listen(server);
  origin.close = closer(server, sockets);
  return origin;
}

/** A TCP listener that only counts connections: a probe that must be refused must leave it at 0. */
export async function startCanary(): Promise<Origin> {
  const origin: Origin = { port: 0, hits: 0, close: async () => {} };
  const server = createTcpServer((s) => {
    origin.hits++;
    s.on("error", () => {});
    s.end("canary\n");
  });
  const sockets = trackSockets(server);
  origin.port = await listen(server);
  origin.close = closer(server, sockets);
  return origin;
}

// ---- clients ----

export interface Outcome {
  /** The response body came from one of the test origins. */
  reached: boolean;
  body: string;
  /** X-Fourwall-Denied as the client saw it, if it saw one. */
  denied?: string;
  exit: number;
  stderr: string;
}

function outcome(r: RunResult): Outcome {
  const denied = /X-Fourwall-Denied: ([\w-]+)/i.exec(r.stderr + r.stdout)?.[1];
  const out: Outcome = {
    reached: /origin=https?\b/.test(r.stdout),
    body: r.stdout,
    exit: r.code,
    stderr: r.stderr,
  };
  if (denied) out.denied = denied;
  return out;
}

/** curl through an HTTP proxy (CONNECT for https URLs); -v so the CONNECT reply headers show in stderr. */
export async function curlVia(proxyUrl: string, url: string, extra: string[] = []): Promise<Outcome> {
  return outcome(
    await run("curl", ["-sS", "-v", "--max-time", "5", "--noproxy", "", "-x", proxyUrl, ...extra, url]),
  );
}

/** curl through the same listener as a SOCKS5 proxy, the proxy resolving names. */
export async function curlSocks(proxyHostPort: string, url: string, extra: string[] = []): Promise<Outcome> {
  return outcome(
    await run("curl", ["-sS", "-v", "--max-time", "5", "--socks5-hostname", proxyHostPort, ...extra, url]),
  );
}

const PY_URLLIB = `
import ssl, sys, urllib.request, urllib.error
proxy, url, ca, method = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy})]
if ca:
    handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca)))
opener = urllib.request.build_opener(*handlers)
try:
    with opener.open(urllib.request.Request(url, method=method), timeout=5) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stderr.write("status %d X-Fourwall-Denied: %s\\n" % (e.code, e.headers.get("X-Fourwall-Denied")))
    sys.exit(3)
except OSError as e:
    sys.stderr.write("error %s\\n" % e)
    sys.exit(4)
`;

import { makeCanaryCertificate } from "../../src/prove/canaries/tls.js";

/** python3 urllib with a proxy handler (CONNECT for https). */
export async function pythonVia(
  proxyUrl: string,
  url: string,
  opts: { ca?: string; method?: string } = {},
): Promise<Outcome> {
  return outcome(await run("python3", ["-c", PY_URLLIB, proxyUrl, url, opts.ca ?? "", opts.method ?? "GET"]));
}

/** node http.request CONNECT, then TLS (servername "" sends no SNI) and one GET inside the tunnel. */
export function nodeConnectGet(
  proxyPort: number,
  target: string,
  opts: { ca: string; servername: string; hostHeader: string; path?: string },
): Promise<Outcome> {
  return new Promise((resolve) => {
    const done = (o: Partial<Outcome>) => resolve({ reached: false, body: "", exit: 0, stderr: "", ...o });
    const req = httpRequest({
      host: "127.0.0.1",
      port: proxyPort,
      method: "CONNECT",
      path: target,
      timeout: 5000,
    });
    req.on("error", (e) => done({ exit: 1, stderr: String(e) }));
    req.on("connect", (res, socket) => {
      if (res.statusCode !== 200) {
        const denied = res.headers["x-fourwall-denied"];
        socket.destroy();
        done({
          exit: 2,
          ...(typeof denied === "string" ? { denied } : {}),
          stderr: `status ${res.statusCode}`,
        });
        return;
      }
      const tls = tlsConnect({
        socket,
        servername: opts.servername,
        ca: opts.ca,
        checkServerIdentity: () => undefined,
      });
      let body = "";
      tls.setTimeout(5000, () => tls.destroy(new Error("timeout")));
      tls.on("secureConnect", () =>
        tls.write(
          `GET ${opts.path ?? "/"} HTTP/1.1\r\nHost: ${opts.hostHeader}\r\nConnection: close\r\n\r\n`,
        ),
      );
      tls.on("data", (d: Buffer) => {
        body += d.toString();
      });
      tls.on("error", (e) => done({ exit: 3, body, stderr: String(e), reached: /origin=https/.test(body) }));
      tls.on("end", () => done({ body, reached: /origin=https/.test(body) }));
    });
    req.end();
  });
}

/** Sends raw bytes to the proxy and collects whatever comes back until it closes (or timeoutMs). */
export function rawExchange(port: number, data: string | Buffer, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = netConnect({ host: "127.0.0.1", port }, () => s.write(data));
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks).toString("latin1"));
    };
    const timer = setTimeout(finish, timeoutMs);
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("error", finish);
    s.on("close", finish);
  });
}

/** A raw absolute-form request; the outcome as curl would report it. */
export async function rawHttp(port: number, request: string): Promise<Outcome> {
  const text = await rawExchange(port, request);
  const denied = /X-Fourwall-Denied: ([\w-]+)/i.exec(text)?.[1];
  return {
    reached: /origin=https?\b/.test(text),
    body: text,
    exit: 0,
    stderr: "",
    ...(denied ? { denied } : {}),
  };
}

/** openssl s_client through the proxy's CONNECT with a chosen SNI; sends `request` and reads the answer. */
export async function opensslVia(
  proxyPort: number,
  target: string,
  servername: string,
  request: string,
): Promise<Outcome> {
  const r = await run(
    "openssl",
    [
      "s_client",
      "-quiet",
      "-proxy",
      `127.0.0.1:${proxyPort}`,
      "-connect",
      target,
      "-servername",
      servername,
      "-ign_eof",
    ],
    { input: request, timeoutMs: 8000 },
  );
  return outcome(r);
}

/**
 * Name resolution for proxies under test: never asks a real resolver about a test name. Answers from
 * `stub` first, localhost from /etc/hosts, .invalid with nothing, and refuses everything else.
 */
export function testLookup(stub: Record<string, string[]> = {}): (name: string) => Promise<string[]> {
  return async (name) => {
    const answer = stub[name];
    if (answer) return answer;
    if (name === "localhost") return (await dnsLookup(name, { all: true })).map((a) => a.address);
    if (name.endsWith(".invalid")) return [];
    throw new Error(`test lookup of ${name} refused`);
  };
}
