/**
 * "Outside" hosts for egress tests: a network namespace the test creates, joined to the host by a
 * veth pair, with addresses from 198.18.0.0/15 (the benchmarking range: never a real host). A leaky
 * box would reach it through the host's route and nothing would leave this machine. Root only.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";

export interface TestHost {
  /** The test host's address (198.18.x.2) and the host side of the link (198.18.x.1). */
  address: string;
  hostSide: string;
  ns: string;
  /** Starts an HTTP server in the namespace answering `outside-host <port> <path>`; resolves once it listens. */
  serveHttp(port: number): Promise<void>;
  close(): void;
}

let counter = 0;

function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export function createTestHost(): TestHost {
  // One /30 per test host; the third octet varies with the pid so parallel test files do not collide.
  const n = (process.pid * 7 + counter++) % 250;
  const block = `198.18.${n}`;
  const ns = `fwt${process.pid}n${counter}`;
  const hostIf = `fwh${process.pid % 100000}${counter}`;
  const nsIf = `fwo${process.pid % 100000}${counter}`;
  const servers: ChildProcess[] = [];
  ip(["netns", "add", ns]);
  try {
    ip(["link", "add", hostIf, "type", "veth", "peer", "name", nsIf]);
    ip(["link", "set", nsIf, "netns", ns]);
    ip(["addr", "add", `${block}.1/30`, "dev", hostIf]);
    ip(["link", "set", hostIf, "up"]);
    ip(["-n", ns, "addr", "add", `${block}.2/30`, "dev", nsIf]);
    ip(["-n", ns, "link", "set", nsIf, "up"]);
    ip(["-n", ns, "link", "set", "lo", "up"]);
  } catch (error) {
    try {
      ip(["link", "del", hostIf]);
    } catch {}
    ip(["netns", "del", ns]);
    throw error;
  }
  const host: TestHost = {
    address: `${block}.2`,
    hostSide: `${block}.1`,
    ns,
    serveHttp(port) {
      const code = `require("node:http").createServer((q, s) => s.end("outside-host ${port} " + q.url + "\\n")).listen(${port}, "${block}.2", () => console.log("up"))`;
      const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", code], {
        stdio: ["ignore", "pipe", "ignore"],
      });
      servers.push(child);
      return new Promise((resolve, reject) => {
        child.stdout!.once("data", () => resolve());
        child.once("exit", (c) => reject(new Error(`test host server exited (${c})`)));
      });
    },
    close() {
      for (const s of servers) s.kill("SIGKILL");
      try {
        ip(["link", "del", hostIf]);
      } catch {}
      try {
        ip(["netns", "del", ns]);
      } catch {}
    },
  };
  return host;
}
