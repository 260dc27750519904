/**
 * One proxy at the concurrency of a busy node (issue 17): CONCURRENCY clients at once, each in a
 * loop opening a CONNECT tunnel through fourwall's proxy (`fourwall egress serve`, from the bundle),
 * sending one HTTP request inside it and reading a small answer (BODY bytes), then closing. Reports
 * requests per second, latency percentiles (p50, p99) and the proxy's own CPU time, hence requests
 * per CPU-second ("per core"). Loopback only: the origin is a separate process on 127.0.0.1, the
 * rule a plain one for 127.0.0.1/32 on its port (every tunnel's first bytes are checked as HTTP and
 * its Host judged, as for an agent's plain HTTP in a tunnel). Bounded: DURATION_S seconds.
 *   node --import tsx bench/proxy-load.ts [--concurrency 200] [--seconds 15] [--body 4096]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import os from "node:os";
import path from "node:path";
import { percentile } from "./lib/measure.js";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const CONCURRENCY = arg("concurrency", 200);
const DURATION_S = arg("seconds", 15);
const BODY = arg("body", 4096);
const ROOT = path.resolve(import.meta.dirname, "..");

/** The origin, its own process: any GET answers BODY bytes and closes. */
const ORIGIN = `
const http = require("node:http");
const body = Buffer.alloc(${BODY}, 120);
const s = http.createServer((req, res) => { res.writeHead(200, { "content-length": body.length, connection: "close" }); res.end(body); });
s.listen(0, "127.0.0.1", () => console.log(s.address().port));
`;

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    child.stdout!.on("data", (d: Buffer) => {
      text += d;
      if (text.includes("\n")) resolve(text.slice(0, text.indexOf("\n")));
    });
    child.once("exit", (code) => reject(new Error(`exited ${code}`)));
  });
}

/** utime + stime of a process, in seconds (Linux USER_HZ is 100). */
const cpu = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

/** One request: CONNECT, GET inside the tunnel, the whole answer read; its latency in ms (or an error). */
function oneRequest(proxyPort: number, originPort: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const s = connect(proxyPort, "127.0.0.1");
    let stage: "connect" | "body" = "connect";
    let got = 0;
    let head = "";
    s.setNoDelay(true);
    s.on("error", reject);
    s.on("connect", () =>
      s.write(`CONNECT 127.0.0.1:${originPort} HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\n\r\n`),
    );
    s.on("data", (d: Buffer) => {
      if (stage === "connect") {
        head += d.toString("latin1");
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        if (!/^HTTP\/1\.[01] 200/.test(head)) return reject(new Error(head.split("\r\n")[0]));
        stage = "body";
        head = "";
        s.write(`GET /small HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\nConnection: close\r\n\r\n`);
        return;
      }
      got += d.length;
    });
    s.on("end", () => {
      s.destroy();
      if (got >= BODY) resolve(performance.now() - started);
      else reject(new Error(`short answer: ${got} bytes`));
    });
  });
}

async function main() {
  const origin = spawn(process.execPath, ["-e", ORIGIN], { stdio: ["ignore", "pipe", "inherit"] });
  const originPort = Number(await firstLine(origin));
  const proxy = spawn(
    process.execPath,
    [path.join(ROOT, "bin", "fourwall.js"), "egress", "serve", "-a", `[127.0.0.1/32]:${originPort}`],
    { cwd: os.tmpdir(), stdio: ["ignore", "pipe", "ignore"] },
  );
  try {
    const proxyPort = Number(/:(\d+)$/.exec(await firstLine(proxy))?.[1]);
    await oneRequest(proxyPort, originPort); // warm: the rule compiled, the first tunnel made
    const latencies: number[] = [];
    const errors = new Map<string, number>();
    const cpuBefore = cpu(proxy.pid!);
    const started = performance.now();
    const end = started + DURATION_S * 1000;
    const worker = async () => {
      while (performance.now() < end) {
        try {
          latencies.push(await oneRequest(proxyPort, originPort));
        } catch (error) {
          const key = (error as Error).message;
          errors.set(key, (errors.get(key) ?? 0) + 1);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (performance.now() - started) / 1000;
    const proxyCpu = cpu(proxy.pid!) - cpuBefore;
    const rss = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${proxy.pid}/status`, "utf8"))?.[1]) / 1024;
    const result = {
      concurrency: CONCURRENCY,
      seconds: Number(seconds.toFixed(1)),
      bodyBytes: BODY,
      requests: latencies.length,
      errors: Object.fromEntries(errors),
      reqPerSecond: Math.round(latencies.length / seconds),
      p50Ms: Number(percentile(latencies, 50).toFixed(1)),
      p99Ms: Number(percentile(latencies, 99).toFixed(1)),
      proxyCpuSeconds: Number(proxyCpu.toFixed(2)),
      reqPerProxyCpuSecond: Math.round(latencies.length / proxyCpu),
      proxyPeakRssMiB: Math.round(rss),
      host: `${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(1)} at the end`,
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    proxy.kill("SIGTERM");
    origin.kill("SIGTERM");
  }
}

await main();
