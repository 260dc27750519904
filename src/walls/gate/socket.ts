import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";

/**
 * The gate socket protocol: one JSON line in, one JSON line out, one request per connection.
 * The box sends what it wants to do; the host answers allow or deny. The request carries no
 * decision of the box's own — there is no field for one.
 */
export interface SocketRequest {
  op: "exec";
  /** The shell command line, as the agent would run it. */
  command: string;
  /** The directory it would run in, inside the box. */
  cwd: string;
  /** Which integration asks: gate-exec, claude-hook, codex-hook. */
  via: string;
}

export interface SocketAnswer {
  decision: "allow" | "deny";
  by: string;
  reason: string;
}

const MAX_REQUEST = 256 * 1024;

export function parseSocketRequest(line: string): SocketRequest | string {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return "not JSON";
  }
  if (typeof raw !== "object" || raw === null) return "not an object";
  const r = raw as Record<string, unknown>;
  if (r.op !== "exec") return "op must be exec";
  if (typeof r.command !== "string" || r.command.length === 0) return "command must be a non-empty string";
  if (typeof r.cwd !== "string" || !r.cwd.startsWith("/")) return "cwd must be an absolute path";
  const via = typeof r.via === "string" && /^[a-z-]{1,32}$/.test(r.via) ? r.via : "unknown";
  return { op: "exec", command: r.command, cwd: r.cwd, via };
}

/** Serves the gate socket (host side). */
export async function serveGateSocket(
  socketPath: string,
  handle: (r: SocketRequest) => Promise<SocketAnswer>,
): Promise<Server> {
  try {
    if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath);
  } catch {}
  const server = createServer((conn) => {
    let buf = "";
    conn.setEncoding("utf8");
    conn.on("error", () => {});
    const onData = (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST) {
        conn.end(`${JSON.stringify({ decision: "deny", by: "gate", reason: "request too large" })}\n`);
        conn.off("data", onData);
        return;
      }
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      conn.off("data", onData);
      const parsed = parseSocketRequest(buf.slice(0, nl));
      if (typeof parsed === "string") {
        conn.end(`${JSON.stringify({ decision: "deny", by: "gate", reason: `bad request: ${parsed}` })}\n`);
        return;
      }
      handle(parsed).then(
        (answer) => conn.end(`${JSON.stringify(answer)}\n`),
        (error: Error) =>
          conn.end(
            `${JSON.stringify({ decision: "deny", by: "error", reason: `the gate failed: ${error.message}` })}\n`,
          ),
      );
    };
    conn.on("data", onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o666); // the box's uid must connect; the directory limits who else can
  return server;
}

/** Asks the gate (box side). Any failure to get an answer is a deny: fail closed. */
export function askGate(socketPath: string, request: SocketRequest): Promise<SocketAnswer> {
  return new Promise((resolve) => {
    const conn = createConnection(socketPath);
    let buf = "";
    let settled = false;
    const done = (a: SocketAnswer) => {
      if (settled) return;
      settled = true;
      conn.destroy();
      resolve(a);
    };
    conn.setEncoding("utf8");
    conn.on("connect", () => conn.write(`${JSON.stringify(request)}\n`));
    conn.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      try {
        const a = JSON.parse(buf.slice(0, nl)) as SocketAnswer;
        done(
          a.decision === "allow"
            ? a
            : { decision: "deny", by: String(a.by ?? "gate"), reason: String(a.reason ?? "denied") },
        );
      } catch {
        done({ decision: "deny", by: "client", reason: "the gate sent an answer that is not JSON" });
      }
    });
    conn.on("error", (e) =>
      done({
        decision: "deny",
        by: "client",
        reason: `cannot reach the gate at ${socketPath}: ${e.message}`,
      }),
    );
    conn.on("close", () =>
      done({ decision: "deny", by: "client", reason: "the gate closed the connection without an answer" }),
    );
  });
}
