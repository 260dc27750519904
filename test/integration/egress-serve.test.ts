/**
 * `fourwall egress serve` as the container image and the bench run it: the policy is compiled by a
 * child (`egress plan`) and the proxy process loads only the proxy. The checks hold on that path: a
 * policy error still exits 125 with its message; an unlisted host gets 403; a ClientHello whose SNI
 * names another host is refused before a byte reaches the origin, the matching one passes; every
 * decision is in the audit log. All on 127.0.0.1 (the allowed name is pinned there with --resolve).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { FOURWALL } from "../helpers/box.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "fwtest-serve-"));
const audit = path.join(dir, "audit.jsonl");
let origin: Server;
let originPort = 0;
const received: Buffer[] = [];
let proxy: ChildProcess | undefined;
let proxyPort = 0;

/** CONNECT through the proxy: the status line, and the socket when it is 200. */
function connectVia(target: string): Promise<{ status: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: proxyPort }, () =>
      s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`),
    );
    s.once("error", reject);
    let head = "";
    const onData = (d: Buffer) => {
      head += d.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      s.removeListener("data", onData);
      resolve({ status: head.split("\r\n")[0]!, socket: s });
    };
    s.on("data", onData);
  });
}

/** Starts a TLS handshake naming `sni` inside the tunnel; resolves once the proxy closes it or 1 s passes. */
function helloThrough(socket: Socket, sni: string): Promise<"closed" | "open"> {
  return new Promise((resolve) => {
    const tls = tlsConnect({ socket, servername: sni, rejectUnauthorized: false });
    tls.on("error", () => {});
    const timer = setTimeout(() => {
      tls.destroy();
      resolve("open");
    }, 1000);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve("closed");
    });
  });
}

describe("fourwall egress serve (the proxy process loads the plan, not the policy parsers)", () => {
  before(async () => {
    origin = createServer((s) => {
      s.on("data", (d: Buffer) => received.push(d));
      s.on("error", () => {});
    });
    await new Promise<void>((r) => origin.listen(0, "127.0.0.1", () => r()));
    originPort = (origin.address() as { port: number }).port;
    proxy = spawn(
      process.execPath,
      [
        FOURWALL,
        "egress",
        "serve",
        "-a",
        `good.test:${originPort}`,
        "--resolve",
        "good.test=127.0.0.1",
        "--audit",
        audit,
      ],
      { cwd: dir, stdio: ["ignore", "pipe", "inherit"] },
    );
    const line = await new Promise<string>((resolve, reject) => {
      let text = "";
      proxy!.stdout!.on("data", (d: Buffer) => {
        text += d.toString();
        if (text.includes("\n")) resolve(text);
      });
      proxy!.once("exit", (code) => reject(new Error(`egress serve exited ${code}`)));
    });
    proxyPort = Number(/:(\d+)\s*$/.exec(line)?.[1]);
    assert.ok(proxyPort > 0, line);
  });

  after(async () => {
    if (proxy && proxy.exitCode === null) {
      const gone = new Promise((r) => proxy!.once("exit", r));
      proxy.kill("SIGTERM");
      await gone;
    }
    origin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a policy error still fails closed: exit 125 and the policy's own message", () => {
    const r = spawnSync(process.execPath, [FOURWALL, "egress", "serve", "-a", "bad host!"], {
      cwd: dir,
      encoding: "utf8",
    });
    assert.equal(r.status, 125);
    assert.match(r.stderr, /bad host!/);
  });

  test("a host no rule names gets 403", async () => {
    const { status, socket } = await connectVia(`other.test:${originPort}`);
    socket.destroy();
    assert.match(status, /^HTTP\/1\.1 403/);
  });

  test("an SNI naming another host is refused before any byte reaches the origin", async () => {
    received.length = 0;
    const { status, socket } = await connectVia(`good.test:${originPort}`);
    assert.match(status, /^HTTP\/1\.1 200/);
    assert.equal(await helloThrough(socket, "evil.test"), "closed");
    assert.equal(Buffer.concat(received).length, 0, "nothing reached the origin");
  });

  test("the matching SNI passes: the ClientHello reaches the origin", async () => {
    received.length = 0;
    const { status, socket } = await connectVia(`good.test:${originPort}`);
    assert.match(status, /^HTTP\/1\.1 200/);
    await helloThrough(socket, "good.test");
    socket.destroy();
    assert.equal(Buffer.concat(received)[0], 0x16, "a TLS handshake record arrived");
  });

  test("every decision is in the audit log", async () => {
    await new Promise((r) => setTimeout(r, 200));
    const events = readFileSync(audit, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { host: string; decision: string; reason: string });
    assert.ok(events.some((e) => e.host === "other.test" && e.decision === "deny"));
    assert.ok(events.some((e) => e.host === "good.test" && e.reason === "sni-mismatch"));
    assert.ok(events.some((e) => e.host === "good.test" && e.decision === "allow"));
  });
});
