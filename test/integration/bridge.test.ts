/**
 * native/fourwall-bridge (the gVisor and Docker boxes' first process) on its own: the real binary
 * relays many concurrent connections, some closed by the client before the answer, to a unix
 * socket server and keeps serving. Its first version freed a connection while the same epoll batch
 * still named it, and died: every later connection in the box was refused (seen in CI as curl
 * passing and python, git and npm refused right after). Loopback and a socket in a temp dir only.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { nativeHelperPath } from "../../src/core/paths.js";

/** Rounds of 100 concurrent clients; one in three closes before it reads the answer. */
const CLIENTS = String.raw`
import socket, sys, threading
port = int(sys.argv[1]); counts = {"ok": 0, "bad": 0}; lock = threading.Lock()
def one(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        if i % 3 == 0:
            s.close(); return
        ok = s.recv(100).endswith(b"ok"); s.close()
    except Exception:
        ok = False
    with lock: counts["ok" if ok else "bad"] += 1
for _ in range(5):
    ts = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    [t.start() for t in ts]; [t.join() for t in ts]
print("ok", counts["ok"], "bad", counts["bad"])
`;

/** A free loopback port (closed again: the bridge binds it). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe("fourwall-bridge", () => {
  let dir: string;
  let server: net.Server;
  let socketPath: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "fwtest-bridge-"));
    socketPath = path.join(dir, "proxy.sock");
    server = net.createServer((s) => {
      s.on("error", () => {});
      s.once("data", () => s.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
  });

  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("relays 1,000 connections (a third closed early) and still serves after them", async () => {
    const port = await freePort();
    const script = path.join(dir, "clients.py");
    writeFileSync(script, CLIENTS);
    const child = spawn(
      nativeHelperPath("bridge"),
      [
        "--listen",
        String(port),
        socketPath,
        "--",
        "sh",
        "-c",
        `python3 ${script} ${port}; python3 ${script} ${port}`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (out += d));
    const code = await new Promise<number | null>((r) => child.once("close", r));
    assert.equal(code, 0, out);
    // each round: 100 clients, 66 of them wait for the answer (5 rounds a run)
    assert.deepEqual(out.trim().split("\n"), ["ok 330 bad 0", "ok 330 bad 0"], out);
  });
});
