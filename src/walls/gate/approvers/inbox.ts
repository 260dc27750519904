import { randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Approver, ApproverAnswer, GateAnswer, GateRequest } from "../types.js";
import { diffLines } from "./diff.js";
import { factsText } from "./file-review.js";
import { INBOX_PAGE } from "./inbox-page.js";
import { describeRequest, visible } from "./render.js";

/**
 * A change-set's files as the page shows them, one by one (pure): each value escaped by `visible`,
 * each diff line too; the page answers with the indexes of the files to apply, never with paths.
 */
export function inboxFiles(request: GateRequest) {
  return (request.changes ?? []).map((c, i) => ({
    i,
    line: `${c.op} ${visible(c.path)}${c.to ? ` → ${visible(c.to)}` : ""}${c.detail ? `  (${visible(c.detail)})` : ""}`,
    sides: c.before || c.after ? `${factsText(c.before)} → ${factsText(c.after)}` : "",
    diff: c.diff ? diffLines(c.diff, 400) : [],
    note: c.diffNote ? visible(c.diffNote) : "",
  }));
}

interface Pending {
  request: GateRequest;
  resolve: (answer: ApproverAnswer) => void;
}

const same = (a: string, b: string) =>
  a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/**
 * The approval inbox: a page on 127.0.0.1 (the box cannot reach host loopback: it has its own
 * network namespace) that lists pending requests live and answers them with buttons.
 *
 * Access: the URL fourwall prints carries a one-time token. The first visit trades it for a
 * session cookie (HttpOnly, SameSite=Strict) and the token stops working, so a URL that leaks
 * from a terminal scrollback later opens nothing. Answers are POSTs that need the cookie and a
 * matching X-Fourwall-Session header (which a cross-site form cannot set), and the Host header
 * must be the loopback address itself (no DNS rebinding).
 */
export class InboxApprover implements Approver {
  readonly name = "inbox";
  private readonly pending = new Map<string, Pending>();
  private readonly streams = new Set<ServerResponse>();
  private readonly history: { request: GateRequest; answer: GateAnswer }[] = [];
  private token: string | undefined = randomBytes(24).toString("base64url");
  private session: string | undefined;
  private server: Server | undefined;
  private port = 0;

  async start(port = 0): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(port, "127.0.0.1", () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return `http://127.0.0.1:${this.port}/?token=${this.token}`;
  }

  ask(request: GateRequest, signal: AbortSignal): Promise<ApproverAnswer> {
    return new Promise((resolve) => {
      const done = (answer: ApproverAnswer) => {
        if (!this.pending.delete(request.id)) return;
        signal.removeEventListener("abort", onAbort);
        this.broadcast();
        resolve(answer);
      };
      const onAbort = () => done("no");
      this.pending.set(request.id, { request, resolve: done });
      signal.addEventListener("abort", onAbort, { once: true });
      this.broadcast();
    });
  }

  /** Another approver (or the timeout) decided: list it as decided; the abort then drops it from pending. */
  settled(id: string, answer: GateAnswer): void {
    const entry = this.pending.get(id);
    if (!entry) return; // answered here: remember() has it
    this.history.unshift({ request: entry.request, answer });
    this.history.splice(50);
  }

  /** Records the outcome of a request this inbox answered itself (for the "decided" list). */
  private remember(request: GateRequest, answer: ApproverAnswer): void {
    const decision = answer === "no" ? "deny" : "allow";
    const said = typeof answer === "object" ? `${answer.approve.length} file(s) approved` : answer;
    this.history.unshift({ request, answer: { decision, by: this.name, reason: `${said} in the inbox` } });
    this.history.splice(50);
  }

  private snapshot(): string {
    return JSON.stringify({
      // The page shows only `display` (escaped by `visible`, put on the page as text nodes).
      pending: [...this.pending.values()].map((p) => ({
        ...p.request,
        display: describeRequest(p.request, Number.MAX_SAFE_INTEGER), // every change, escaped: the page scrolls
        // a change-set, file by file: escaped lines, sides and diff lines (raw `changes` are not shown)
        files: p.request.kind === "fs" ? inboxFiles(p.request) : [],
      })),
      decided: this.history.map((h) => ({
        id: h.request.id,
        summary: visible(h.request.summary),
        kind: h.request.kind,
        decision: h.answer.decision,
        by: h.answer.by,
      })),
    });
  }

  private broadcast(): void {
    const data = `data: ${this.snapshot()}\n\n`;
    for (const res of this.streams) res.write(data);
  }

  private cookieSession(req: IncomingMessage): string | undefined {
    const match = /(?:^|;\s*)fourwall_inbox=([A-Za-z0-9_-]+)/.exec(req.headers.cookie ?? "");
    return match?.[1];
  }

  private authorised(req: IncomingMessage): boolean {
    const s = this.cookieSession(req);
    return this.session !== undefined && s !== undefined && same(s, this.session);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    res.setHeader("Cache-Control", "no-store");
    res.setHeader("X-Frame-Options", "DENY");
    res.setHeader("Referrer-Policy", "no-referrer");
    if (req.headers.host !== `127.0.0.1:${this.port}`) {
      this.refuse(res, 421, "wrong host");
      return;
    }
    if (req.method === "GET" && url.pathname === "/") {
      const token = url.searchParams.get("token");
      if (token && this.token && same(token, this.token)) {
        // One-time: the token becomes a session cookie and is forgotten.
        this.token = undefined;
        this.session = randomBytes(24).toString("base64url");
        res.setHeader("Set-Cookie", `fourwall_inbox=${this.session}; HttpOnly; SameSite=Strict; Path=/`);
        res.writeHead(303, { Location: "/" }).end();
        return;
      }
      if (!this.authorised(req)) {
        this.refuse(
          res,
          403,
          "this inbox link was already used, or is wrong: use the link fourwall printed, once",
        );
        return;
      }
      res.writeHead(200, {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy":
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
      });
      res.end(INBOX_PAGE.replace("__SESSION__", this.session!));
      return;
    }
    if (!this.authorised(req)) {
      this.refuse(res, 403, "not signed in");
      return;
    }
    if (req.method === "GET" && url.pathname === "/events") {
      res.writeHead(200, { "Content-Type": "text/event-stream", Connection: "keep-alive" });
      res.write(`data: ${this.snapshot()}\n\n`);
      this.streams.add(res);
      req.on("close", () => this.streams.delete(res));
      return;
    }
    if (req.method === "POST" && url.pathname === "/answer") {
      const header = req.headers["x-fourwall-session"];
      if (typeof header !== "string" || !same(header, this.session!)) {
        this.refuse(res, 403, "missing session header");
        return;
      }
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (d: string) => {
        body += d;
        if (body.length > 256 * 1024) req.destroy(); // a list of file indexes, at most
      });
      req.on("end", () => {
        let parsed: { id?: unknown; answer?: unknown };
        try {
          parsed = JSON.parse(body);
        } catch {
          this.refuse(res, 400, "not JSON");
          return;
        }
        const entry = typeof parsed.id === "string" ? this.pending.get(parsed.id) : undefined;
        let answer = parsed.answer as ApproverAnswer;
        if (!entry) {
          this.refuse(res, 404, "no such pending request (answered already?)");
          return;
        }
        const changes = entry.request.kind === "fs" ? (entry.request.changes ?? []) : undefined;
        const picked = (answer as { approve?: unknown })?.approve;
        if (changes && Array.isArray(picked)) {
          // file by file: indexes into the change-set the page was shown
          if (!picked.every((i) => Number.isInteger(i) && i >= 0 && i < changes.length)) {
            this.refuse(res, 400, "approve: indexes of the change-set's files");
            return;
          }
          answer = { approve: [...new Set(picked as number[])].map((i) => changes[i]!.path) };
        } else if (
          answer !== "yes" &&
          answer !== "no" &&
          !(answer === "always" && entry.request.alwaysAllowed)
        ) {
          this.refuse(res, 400, "answer yes, no or always");
          return;
        }
        this.remember(entry.request, answer);
        entry.resolve(answer);
        res.writeHead(200, { "Content-Type": "application/json" }).end('{"ok":true}');
      });
      return;
    }
    this.refuse(res, 404, "not found");
  }

  private refuse(res: ServerResponse, status: number, message: string): void {
    res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" }).end(`${message}\n`);
  }

  async close(): Promise<void> {
    for (const res of this.streams) res.end();
    this.streams.clear();
    for (const p of [...this.pending.values()]) p.resolve("no");
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }
}
