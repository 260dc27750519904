/**
 * The squid backend: Debian's squid 5, one per box, enforcing the config squid-config.ts renders from
 * the same EgressPlan. Squid cannot listen on a unix socket, so it listens on 127.0.0.1:<port> and
 * fourwall forwards each connection from the box's socket to it (the kernel wall is unchanged: the
 * box still reaches nothing but that socket).
 *
 * Per box and private: its config, pid, logs, hosts file and error pages live in `dir`; its service
 * name (which names its shared-memory segments) carries the box id. As root it runs as the `proxy`
 * user, never as root or as the box's uid. A keeper shell stops it and removes its segments when
 * fourwall says so or dies (even by SIGKILL); fourwall's reaper removes its dir with the box's run dir.
 * Start-up is verified: squid's own
 * listening socket must be bound at the chosen address (it keeps running when a listener fails).
 * Every access-log line becomes an EgressEvent, read as it is written and once more at close.
 *
 * Squid's port is reachable by every local user, so squid demands a per-run random proxy credential
 * that only the forwarder knows: it adds the header to each request head (squid takes one request per
 * connection), so the box needs none and another user gets 407. The secret is in fourwall's memory
 * and, hashed, in squid's private dir; never in an argv or the box.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import path from "node:path";
import { handOffQuiet, Splicer } from "../proxy/splice.js";
import type { EgressEvent, ProxyHandle } from "../proxy/types.js";
import type { EgressPlan } from "../rules/rules.js";
import {
  renderSquidConfig,
  renderSquidHosts,
  SQUID_ERROR_TEMPLATE,
  SQUID_SNI_HELPER,
  squidFiles,
} from "./config.js";
import { parseSquidLogLine } from "./log.js";
import { MAX_REQUEST_HEAD, requestHeadEnd, withProxyAuthorization } from "./request-head.js";

/** The forwarder hands a connection to the splice helper after this many bytes (as the builtin proxy does). */
const SPLICE_AFTER_BYTES = 256 * 1024;
/** Idle limit of a spliced connection; squid applies its own timeouts as well. */
const SQUID_IDLE_MS = 300_000;

export interface SquidOptions {
  plan: EgressPlan;
  box: string;
  /** The unix socket the box's bridge connects to. */
  socketPath: string;
  socketMode?: number;
  /** A private directory for squid's files (made here or by the caller; 0700, squid's as root); removed by the caller. */
  dir: string;
  onDecision?: (event: EgressEvent) => void;
  /** How long squid may take to listen. Default 5 s. */
  startTimeoutMs?: number;
  /** The squid binary. Default: squid on PATH, then /usr/sbin/squid. */
  squid?: string;
  /**
   * Rewrites the generated config. Only the test suite's deliberately leaky squid uses it (to show a
   * probe notices the hole); nothing else may set it.
   */
  unsafeConfigForTests?: (config: string) => string;
  /** Tests only (the deliberately broken box): squid's port without the proxy credential, open to any local user. */
  unsafeNoAuthForTests?: boolean;
}

export interface SquidHandle extends ProxyHandle {
  pid: number;
  /** squid's own listener on 127.0.0.1. */
  port: number;
  /** The Proxy-Authorization value squid's port demands (the forwarder adds it; tests and the bench use it directly). */
  proxyAuthorization: string;
  service: string;
}

/** Squid's shared-memory segments are named after its service name; an unclean end leaves them behind. */
export function removeSquidSegments(service: string): void {
  try {
    for (const name of readdirSync("/dev/shm")) {
      if (name.startsWith(`${service}-`)) rmSync(path.join("/dev/shm", name), { force: true });
    }
  } catch {}
}

/** The squid binary: FOURWALL_SQUID when set (a squid-openssl kept somewhere else), else squid on PATH. */
export function findSquid(): string | undefined {
  const chosen = process.env.FOURWALL_SQUID;
  if (chosen) return existsSync(chosen) ? chosen : undefined;
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/usr/local/sbin"])) {
    if (dir && existsSync(path.join(dir, "squid"))) return path.join(dir, "squid");
  }
  return undefined;
}

/** As root, squid runs as Debian's `proxy` user (nobody if there is none); otherwise as the caller. */
function squidUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const f = line.split(":");
      if (f[0] === "proxy" && f[2] && f[3]) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {}
  return { uid: 65534, gid: 65534 };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof addr === "object" && addr ? addr.port : 0;
}

/** The inodes of the TCP sockets in LISTEN state on 127.0.0.1:port (this network namespace). */
function listeningInodes(port: number): string[] {
  const want = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const out: string[] = [];
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === want && f[3] === "0A" && f[9]) out.push(f[9]);
  }
  return out;
}

/** All TCP listeners (v4 and v6) a process holds, as "address:port" in /proc's hex. */
function listenersOf(pid: number): { mine: Set<string>; all: string[] } {
  const mine = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) mine.add(m[1]!);
    } catch {}
  }
  const all: string[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === "0A" && f[9] && mine.has(f[9])) all.push(f[1]!);
    }
  }
  return { mine, all };
}

/** The last few FATAL/ERROR lines of a squid log, without timestamps. */
function lastErrors(file: string): string {
  try {
    const lines = readFileSync(file, "utf8").split("\n");
    const bad = lines.filter((l) => /FATAL|ERROR|Cannot|Bungled/.test(l)).slice(-3);
    return bad.map((l) => l.replace(/^\S+ \S+\| /, "")).join("; ");
  } catch {
    return "";
  }
}

/** Squid's own basic-auth helper (Debian's squid package ships it). */
export function findAuthHelper(squid: string): string | undefined {
  const near = path.join(path.dirname(path.dirname(squid)), "lib", "squid", "basic_ncsa_auth");
  return [near, "/usr/lib/squid/basic_ncsa_auth", "/usr/lib64/squid/basic_ncsa_auth"].find((p) =>
    existsSync(p),
  );
}

/** The proxy credential's user name; the secret is the random part. */
const AUTH_USER = "fourwall";

/** The basic_ncsa_auth line for `secret`: SHA-512 crypt from openssl, the secret on its stdin (never in an argv). */
function passwordLine(secret: string): string {
  const hash = execFileSync("openssl", ["passwd", "-6", "-stdin"], { input: secret, timeout: 10_000 })
    .toString()
    .trim();
  if (!hash.startsWith("$6$")) throw new Error("openssl passwd -6 gave no SHA-512 crypt hash");
  return `${AUTH_USER}:${hash}\n`;
}

interface SquidAuth {
  helper: string;
  secret: string;
}

function writeFiles(
  options: SquidOptions,
  port: number,
  owner: { uid: number; gid: number } | undefined,
  auth: SquidAuth | undefined,
): void {
  const files = squidFiles(options.dir);
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  chmodSync(options.dir, 0o700);
  mkdirSync(files.errors, { mode: 0o755 });
  // Every template squid may look for, each the same short body (squid's own pages are 3 KiB of HTML).
  const templates = existsSync("/usr/share/squid/errors/templates")
    ? readdirSync("/usr/share/squid/errors/templates")
    : ["ERR_ACCESS_DENIED"];
  for (const name of templates)
    writeFileSync(path.join(files.errors, name), SQUID_ERROR_TEMPLATE, { mode: 0o644 });
  let etcHosts = "";
  try {
    etcHosts = readFileSync("/etc/hosts", "utf8");
  } catch {}
  writeFileSync(files.hosts, renderSquidHosts(options.plan, etcHosts), { mode: 0o644 });
  writePeekCertificate(files);
  writeFileSync(files.sniHelper, SQUID_SNI_HELPER, { mode: 0o755 });
  if (auth) writeFileSync(files.passwd, passwordLine(auth.secret), { mode: 0o600, flag: "wx" });
  const config = renderSquidConfig(options.plan, {
    listen: { host: "127.0.0.1", port },
    dir: options.dir,
    box: options.box,
    ...(auth ? { auth: { helper: auth.helper, passwordFile: files.passwd } } : {}),
  });
  writeFileSync(files.conf, options.unsafeConfigForTests ? options.unsafeConfigForTests(config) : config, {
    mode: 0o644,
  });
  if (owner) {
    for (const p of [
      options.dir,
      files.errors,
      ...readdirSync(files.errors).map((n) => path.join(files.errors, n)),
      files.hosts,
      files.conf,
      files.bumpCert,
      files.bumpKey,
      files.sniHelper,
      ...(auth ? [files.passwd] : []),
    ])
      chownSync(p, owner.uid, owner.gid);
  }
}

/**
 * The keeper: a small shell in its own session that starts squid (through setpriv: the squid user,
 * and a parent-death signal so squid dies with the keeper), prints squid's pid, then waits on a pipe
 * from fourwall. A line or end-of-file (fourwall ended, even by SIGKILL) makes it kill squid and
 * remove squid's shared-memory segments, which squid leaves behind whenever it does not exit cleanly.
 */
const KEEPER_SCRIPT = `
trap '' INT TERM HUP QUIT
service=$1 err=$2; shift 2
"$@" </dev/null >/dev/null 2>"$err" &
pid=$!
echo "$pid"
IFS= read -r _
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
case $service in *[!A-Za-z0-9]*|"") ;; *) rm -f -- /dev/shm/"$service"-* ;; esac
`;

interface Started {
  keeper: ChildProcess;
  pid: number;
  stop(): Promise<void>;
}

function processGone(pid: number): boolean {
  try {
    // "pid (comm) S ..." — a zombie has exited; the keeper reaps it only when told to stop
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** Starts squid on `port` and waits until its own socket listens there; rejects with squid's reason otherwise. */
async function launch(
  options: SquidOptions,
  squid: string,
  port: number,
  service: string,
  owner: { uid: number; gid: number } | undefined,
): Promise<Started> {
  const files = squidFiles(options.dir);
  const errFile = path.join(options.dir, "squid.err");
  const ids = owner ? ["--reuid", String(owner.uid), "--regid", String(owner.gid), "--clear-groups"] : [];
  const command = [
    "setpriv",
    ...ids,
    "--pdeathsig",
    "KILL",
    "--",
    squid,
    "-N",
    "-n",
    service,
    "-f",
    files.conf,
  ];
  // Its own session: a Ctrl-C meant for the agent must not stop the box's proxy.
  const keeper = spawn("/bin/sh", ["-c", KEEPER_SCRIPT, "fourwall-squid", service, errFile, ...command], {
    stdio: ["pipe", "pipe", "ignore"],
    detached: true,
  });
  keeper.stdin?.on("error", () => {});
  keeper.on("error", () => {});
  const keeperExit = new Promise<void>((resolve) => keeper.once("exit", () => resolve()));
  const stop = async () => {
    keeper.ref(); // fourwall stays until squid is gone and its segments removed
    keeper.stdin?.end("stop\n");
    await Promise.race([keeperExit, new Promise((r) => setTimeout(r, 3000).unref())]);
  };
  const pid = await new Promise<number | undefined>((resolve) => {
    let text = "";
    keeper.stdout?.on("data", (d: Buffer) => {
      text += d.toString();
      if (text.includes("\n")) resolve(Number.parseInt(text, 10));
    });
    keeper.once("exit", () => resolve(undefined));
  });
  keeper.stdout?.destroy();
  keeper.unref();
  (keeper.stdin as unknown as { unref?: () => void }).unref?.();
  if (!pid) {
    await stop();
    throw new Error("cannot start squid's keeper (/bin/sh)");
  }
  const deadline = Date.now() + (options.startTimeoutMs ?? 5000);
  const want = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (;;) {
    if (processGone(pid)) {
      const why = lastErrors(files.cacheLog) || lastErrors(errFile);
      await stop();
      throw new Error(`squid exited during start-up${why ? `: ${why}` : ""}`);
    }
    let all: string[] | undefined;
    try {
      all = listenersOf(pid).all;
    } catch {
      // /proc/PID/fd is not readable for an instant while setpriv becomes squid
    }
    if (all && all.length > 0) {
      // Exactly one listener, and it is the one the config names: nothing else reachable, nothing missing.
      if (all.length === 1 && all[0] === want && listeningInodes(port).length === 1)
        return { keeper, pid, stop };
      await stop();
      throw new Error(`squid listens on ${all.join(", ")} (/proc hex), not only on 127.0.0.1:${port}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `squid did not listen on 127.0.0.1:${port} within ${options.startTimeoutMs ?? 5000} ms ${lastErrors(files.cacheLog)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

function removeStaleSocket(p: string): void {
  try {
    if (lstatSync(p).isSocket()) unlinkSync(p);
  } catch {}
}

export async function startSquid(options: SquidOptions): Promise<SquidHandle> {
  const squid = options.squid ?? findSquid();
  if (!squid) throw new Error("squid is not installed");
  const owner = squidUser();
  let auth: SquidAuth | undefined;
  if (!options.unsafeNoAuthForTests) {
    const helper = findAuthHelper(squid);
    // fail closed: without the helper squid's port would be open to every local user
    if (!helper)
      throw new Error(
        "squid's basic_ncsa_auth helper is missing (it ships with Debian's squid package): it guards squid's port from other local users",
      );
    auth = { helper, secret: randomBytes(24).toString("base64url") };
  }
  const proxyAuthorization = auth
    ? `Basic ${Buffer.from(`${AUTH_USER}:${auth.secret}`).toString("base64")}`
    : "";
  // Service names become /dev/shm/<service>-* segment names: unique per box, so boxes never share them.
  // (squid accepts only letters and digits there)
  const service = `fourwall${options.box.replace(/[^A-Za-z0-9]/g, "")}x${process.pid}`;
  const files = squidFiles(options.dir);
  let started: Started | undefined;
  let port = 0;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3 && !started; attempt++) {
    port = await freePort();
    rmSync(options.dir, { recursive: true, force: true });
    writeFiles(options, port, owner, auth);
    try {
      started = await launch(options, squid, port, service, owner);
    } catch (error) {
      lastError = error as Error;
      removeSquidSegments(service);
      // Another process took the port between our probe and squid's bind: try another one.
      if (!/Unable to open HTTP Socket|Address already in use/.test(lastError.message)) break;
    }
  }
  if (!started) {
    if (lastError && /ssl-bump/.test(lastError.message))
      lastError.message +=
        " (this squid is built without OpenSSL and cannot check the TLS SNI: install squid-openssl)";
    throw lastError ?? new Error("squid did not start");
  }
  const { pid } = started;

  // The access log, read as squid writes it (squid writes each line at once: buffered_logs is off).
  let logFd: number | undefined;
  let logPos = 0;
  let partial = "";
  const readLog = () => {
    try {
      logFd ??= openSync(files.accessLog, "r");
    } catch {
      return;
    }
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = readSync(logFd, buf, 0, buf.length, logPos);
      if (n <= 0) break;
      logPos += n;
      const text = partial + buf.subarray(0, n).toString("utf8");
      const lines = text.split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        const event = parseSquidLogLine(line, options.box);
        if (event) {
          try {
            options.onDecision?.(event);
          } catch {}
        }
      }
    }
  };
  const tail = setInterval(readLog, 200);
  tail.unref();

  // The box's socket, forwarded byte for byte to squid's listener; a bulk transfer is handed to the
  // splice helper like the builtin proxy's tunnels (squid has already decided, and logs it).
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  };
  const splicer = Splicer.create(SQUID_IDLE_MS);
  const relay = (client: Socket, first: Buffer) => {
    const upstream = connect({ host: "127.0.0.1", port, allowHalfOpen: true, noDelay: true });
    track(upstream);
    client.setNoDelay(true);
    if (first.length > 0) upstream.write(first);
    client.pipe(upstream);
    upstream.pipe(client);
    const endClient = () => client.destroy();
    const endUpstream = () => upstream.destroy();
    client.once("close", endUpstream);
    upstream.once("close", endClient);
    if (!splicer) return;
    const watchBulk = () => {
      if (upstream.bytesRead + upstream.bytesWritten < SPLICE_AFTER_BYTES) return;
      client.removeListener("data", watchBulk);
      upstream.removeListener("data", watchBulk);
      void handOffQuiet(splicer, client, upstream, {
        detach() {
          client.removeListener("close", endUpstream);
          upstream.removeListener("close", endClient);
          sockets.delete(client);
          sockets.delete(upstream);
        },
        onClosed() {},
      }).then((outcome) => {
        if (outcome === "closed" || outcome === "failed") {
          client.destroy();
          upstream.destroy();
        }
      });
    };
    client.on("data", watchBulk);
    upstream.on("data", watchBulk);
  };
  const forwarder: Server = createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    if (!auth) return relay(client, Buffer.alloc(0));
    // Wait for the whole first request head, add the credential, then relay byte for byte.
    let head = Buffer.alloc(0);
    const onEnd = () => client.destroy();
    const onData = (data: Buffer) => {
      head = Buffer.concat([head, data]);
      const end = requestHeadEnd(head);
      if (end < 0) {
        if (head.length > MAX_REQUEST_HEAD) client.destroy();
        return;
      }
      client.removeListener("data", onData);
      client.removeListener("end", onEnd);
      client.pause();
      relay(
        client,
        Buffer.concat([
          withProxyAuthorization(head.subarray(0, end), proxyAuthorization),
          head.subarray(end),
        ]),
      );
    };
    client.on("data", onData);
    client.once("end", onEnd);
  });
  forwarder.on("error", () => {});
  removeStaleSocket(options.socketPath);
  try {
    await new Promise<void>((resolve, reject) => {
      forwarder.once("error", reject);
      forwarder.listen(options.socketPath, () => resolve());
    });
    if (options.socketMode !== undefined) chmodSync(options.socketPath, options.socketMode);
  } catch (error) {
    clearInterval(tail);
    await splicer?.close();
    await started.stop();
    throw error;
  }

  let closing: Promise<void> | undefined;
  return {
    pid,
    port,
    service,
    proxyAuthorization,
    listeners: [{ path: options.socketPath }],
    openSockets: () => sockets.size + 2 * (splicer?.live() ?? 0),
    splicedTunnels: () => splicer?.adopted() ?? 0,
    close() {
      closing ??= (async () => {
        const hadOpen = sockets.size > 0 || (splicer?.live() ?? 0) > 0;
        const stopped = new Promise<void>((resolve) => forwarder.close(() => resolve()));
        for (const s of sockets) s.destroy();
        // The server counts connections it handed to the helper until the helper is gone: end it first.
        await splicer?.close();
        await stopped;
        removeStaleSocket(options.socketPath);
        // Squid logs a tunnel when it ends: give it a moment to write the lines of the ones just cut.
        if (hadOpen) await new Promise((r) => setTimeout(r, 100));
        clearInterval(tail);
        readLog();
        if (logFd !== undefined) closeSync(logFd);
        // Nothing of squid's is worth a graceful stop (no cache, logs already read): it would take seconds.
        await started.stop();
        removeSquidSegments(service);
      })();
      return closing;
    },
  };
}

/**
 * squid's ssl-bump port wants a certificate even though it only peeks at ClientHellos and splices or
 * terminates: a throwaway one (2 days), per box in its private squid dir (the box never sees it).
 */
export function writePeekCertificate(files: { bumpCert: string; bumpKey: string }): void {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=fourwall-peek-only",
      "-keyout",
      files.bumpKey,
      "-out",
      files.bumpCert,
    ],
    { stdio: "ignore", timeout: 10_000 },
  );
  chmodSync(files.bumpKey, 0o600);
}
