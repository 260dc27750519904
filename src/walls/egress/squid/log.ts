import type { EgressEvent } from "../proxy/types.js";

// Pure: one line of squid's access log, written in SQUID_LOGFORMAT (squid-config.ts), -> the same
// EgressEvent the builtin proxy emits, so the audit log and the blocked summary read alike for both
// backends. Byte counts are squid's (they include HTTP headers); a tunnel's SNI is never known.

const ERRORS: Record<string, string> = {
  ERR_CONNECT_FAIL: "connect-failed",
  ERR_DNS_FAIL: "resolve-failed",
  ERR_READ_TIMEOUT: "idle-timeout",
  ERR_LIFETIME_EXP: "idle-timeout",
  ERR_CANNOT_FORWARD: "connect-failed",
  ERR_READ_ERROR: "upstream-error",
  ERR_WRITE_ERROR: "upstream-error",
  ERR_ZERO_SIZE_OBJECT: "upstream-error",
  ERR_INVALID_REQ: "bad-request",
  ERR_INVALID_URL: "bad-target",
  ERR_UNSUP_REQ: "bad-request",
  ERR_TOO_BIG: "header-too-large",
};

const num = (text: string | undefined) => {
  const n = Number(text);
  return Number.isFinite(n) && n >= 0 ? n : 0;
};

/** Parses one access-log line; undefined for a line that is not one of fourwall's (cut short, foreign format). */
export function parseSquidLogLine(line: string, box: string): EgressEvent | undefined {
  const fields = line.split(" ");
  if (fields.length < 13) return undefined;
  const [start, status, httpStatus, method, host, port, address, up, down, ms, note, errCode] = fields;
  const path = fields.slice(12).join(" ");
  const startSec = Number(start);
  if (!Number.isFinite(startSec) || !status || !method) return undefined;
  const connect = method === "CONNECT";
  const code = errCode && errCode !== "-" ? errCode : undefined;
  // Squid refusing a request it could not parse logs NONE_NONE/4xx: a denial without a rule.
  const malformed = status.startsWith("NONE") && /^4\d\d$/.test(httpStatus ?? "");
  // 407: no or a wrong proxy credential, i.e. not through the box's socket (another local process).
  const unauthenticated = httpStatus === "407" && status.startsWith("TCP_DENIED");
  const reason =
    note && note !== "-"
      ? note
      : unauthenticated
        ? "proxy-auth"
        : malformed
          ? (ERRORS[code ?? ""] ?? "bad-request")
          : undefined;
  const denied = reason !== undefined || status.startsWith("TCP_DENIED");
  // A peeked tunnel is logged twice: the CONNECT when squid decides to splice (no bytes yet), then the
  // tunnel itself (TCP_TUNNEL, with its bytes). The first is not a connection of its own.
  if (connect && !denied && status.startsWith("NONE") && httpStatus === "200") return undefined;
  const event: EgressEvent = {
    time: new Date(Math.round(startSec * 1000)).toISOString(),
    box,
    kind: connect ? "connect" : "http",
    host: (host && host !== "-" ? host : "").slice(0, 256),
    port: num(port),
    decision: denied ? "deny" : "allow",
    reason: denied ? (reason ?? "denied") : "rule",
    bytesUp: num(up),
    bytesDown: num(down),
    durationMs: num(ms),
  };
  if (!connect) {
    event.method = method;
    if (path && path !== "-") event.path = path.slice(0, 1024);
  }
  if (address && address !== "-") event.address = address;
  if (!denied && code) event.error = ERRORS[code] ?? code.toLowerCase();
  return event;
}
