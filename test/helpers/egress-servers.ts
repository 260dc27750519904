/**
 * Loopback stand-ins for the servers real clients talk to, for the box-level egress tests: a git
 * smart-HTTP server (git http-backend behind node:http, as CGI) and an npm registry serving one
 * package. Both listen on 127.0.0.1 only; the box reaches them by a .test name pinned with --resolve.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import os from "node:os";
import path from "node:path";

export interface LocalServer {
  port: number;
  /** Requests seen so far (a refused client must leave this unchanged). */
  hits: number;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface GitServer extends LocalServer {
  /** The commit the served repository's main branch points at. */
  head: string;
  /** The Authorization headers requests carried (with a token: every one, in order). */
  auth: string[];
}

/**
 * A bare repository with one commit, served by `git http-backend` (smart HTTP) at /repo.git. With
 * `tls`, over HTTPS; with `token`, only to Basic credentials whose password is the token (else 401).
 */
export async function startGitServer(
  options: { tls?: { cert: string; key: string }; token?: string } = {},
): Promise<GitServer> {
  const root = mkdtempSync(path.join(os.tmpdir(), "fwtest-git-"));
  const work = path.join(root, "work");
  const git = (args: string[], cwd = root) =>
    execFileSync("git", args, {
      cwd,
      encoding: "utf8",
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: "t",
        GIT_AUTHOR_EMAIL: "t@t",
        GIT_COMMITTER_NAME: "t",
        GIT_COMMITTER_EMAIL: "t@t",
      },
    }).trim();
  git(["init", "-q", "-b", "main", work]);
  writeFileSync(path.join(work, "hello.txt"), "served through the egress wall\n");
  git(["add", "hello.txt"], work);
  git(["commit", "-q", "-m", "init"], work);
  git(["clone", "-q", "--bare", work, path.join(root, "repo.git")]);
  const head = git(["rev-parse", "HEAD"], work);
  const server: GitServer = { port: 0, hits: 0, head, auth: [], close: async () => {} };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    server.hits++;
    if (options.token !== undefined) {
      const auth = req.headers.authorization ?? "";
      server.auth.push(auth);
      const basic = /^Basic (.+)$/.exec(auth);
      const password = basic ? Buffer.from(basic[1]!, "base64").toString().split(":").slice(1).join(":") : "";
      if (password !== options.token) {
        res.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"', "Content-Length": 0 });
        res.end();
        return;
      }
    }
    const url = new URL(req.url ?? "/", "http://x");
    const cgi = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? "GET",
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        REMOTE_ADDR: "127.0.0.1",
        GIT_PROTOCOL: String(req.headers["git-protocol"] ?? ""),
      },
      stdio: ["pipe", "pipe", "ignore"],
    });
    req.pipe(cgi.stdin);
    const chunks: Buffer[] = [];
    cgi.stdout.on("data", (c: Buffer) => chunks.push(c));
    cgi.on("close", () => {
      const out = Buffer.concat(chunks);
      const split = out.indexOf("\r\n\r\n");
      const head = out.subarray(0, Math.max(0, split)).toString("latin1");
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon < 0) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
        else headers[name] = value;
      }
      res.writeHead(status, headers);
      res.end(split < 0 ? out : out.subarray(split + 4));
    });
  };
  const http = options.tls
    ? createHttpsServer({ cert: readFileSync(options.tls.cert), key: readFileSync(options.tls.key) }, handler)
    : createServer(handler);
  const { port, close } = await listen(http as Server);
  server.port = port;
  server.close = async () => {
    await close();
    rmSync(root, { recursive: true, force: true });
  };
  return server;
}

export interface Registry extends LocalServer {
  /** The package's name; its index.js prints `marker`. */
  name: string;
  marker: string;
}

/**
 * An npm registry stand-in with one package (packument + tarball). Tarball URLs use `host` (the
 * pinned name the box uses), so npm fetches them through the proxy like the packument.
 */
export async function startRegistry(host: string): Promise<Registry> {
  const name = "fourwall-egress-demo";
  const marker = "fourwall-registry-stand-in-ok";
  const dir = mkdtempSync(path.join(os.tmpdir(), "fwtest-npm-"));
  const pkg = path.join(dir, "package");
  mkdirSync(pkg);
  writeFileSync(
    path.join(pkg, "package.json"),
    JSON.stringify({
      name,
      version: "1.0.0",
      description: "served by a registry stand-in",
      main: "index.js",
    }),
  );
  writeFileSync(path.join(pkg, "index.js"), `module.exports = ${JSON.stringify(marker)};\n`);
  const tgzPath = path.join(dir, "pkg.tgz");
  execFileSync("tar", ["-czf", tgzPath, "-C", dir, "package"]);
  const tgz = readFileSync(tgzPath);
  rmSync(dir, { recursive: true, force: true });
  const integrity = `sha512-${createHash("sha512").update(tgz).digest("base64")}`;
  const shasum = createHash("sha1").update(tgz).digest("hex");
  const registry: Registry = { port: 0, hits: 0, name, marker, close: async () => {} };
  const http = createServer((req, res) => {
    registry.hits++;
    const url = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    if (url === `/${name}`) {
      const base = `http://${host}:${registry.port}`;
      const version = {
        name,
        version: "1.0.0",
        description: "served by a registry stand-in",
        main: "index.js",
        dist: { tarball: `${base}/${name}/-/${name}-1.0.0.tgz`, integrity, shasum },
      };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          name,
          description: version.description,
          "dist-tags": { latest: "1.0.0" },
          versions: { "1.0.0": version },
          time: { "1.0.0": "2026-01-01T00:00:00.000Z" },
        }),
      );
    } else if (url === `/${name}/-/${name}-1.0.0.tgz`) {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": tgz.length });
      res.end(tgz);
    } else {
      res.writeHead(404, { "content-type": "application/json" });
      res.end('{"error":"not found"}');
    }
  });
  const { port, close } = await listen(http);
  registry.port = port;
  registry.close = close;
  return registry;
}
