/**
 * The egress proxy (issue 3): CONNECT bulk throughput, new-tunnel latency and memory at 1,000 open
 * tunnels, through fourwall's own proxy (run from the bundle: `fourwall egress serve`), squid 5 with
 * the config fourwall generates, and the peer srt's HTTP proxy (its SandboxManager, as `srt` runs
 * it), against no proxy at all, in one run. Targets: throughput ≥ squid's and ≥ 0.6 × direct; added
 * new-tunnel latency (p50) < 0.5 ms and (issue 16) ≤ squid's; RSS < 64 MiB with 1,000 tunnels open.
 * Everything is on 127.0.0.1; the origin is a separate process.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import path from "node:path";
import type { BenchContext, BenchGroup, ExtraTable, GroupResult, Row } from "./lib/group.js";
import { ratio, target } from "./lib/group.js";
import { percentile, stats } from "./lib/measure.js";

const TARGET_ADDED_MS = 0.5;
const TUNNELS = 1000;
/** Issue 7: the proxy's memory with TUNNELS tunnels open. */
const TARGET_MEMORY_MIB = 64;
/** fourwall's proxy runs with the V8 flags its container image gives it (k8s/proxy.Dockerfile). */
const PROXY_NODE_FLAGS = ["--max-semi-space-size=1", "--no-opt"];

/** The origin, its own process: GET /bulk?n=BYTES answers BYTES of zeros; a second port echoes. */
const ORIGIN = `
const http = require("node:http"), net = require("node:net");
const chunk = Buffer.alloc(1 << 20);
const bulk = http.createServer((req, res) => {
  let left = Number(new URL(req.url, "http://x").searchParams.get("n"));
  res.writeHead(200, { "content-length": left });
  const pump = () => { while (left > 0) { const n = Math.min(left, chunk.length); left -= n; if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return res.once("drain", pump); } res.end(); };
  pump();
});
const echo = net.createServer((s) => { s.on("error", () => {}); s.pipe(s); });
bulk.listen(0, "127.0.0.1", () => echo.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ bulk: bulk.address().port, echo: echo.address().port }))));
`;

/** srt's proxy as srt itself starts it (SandboxManager), printing its port and auth token. */
const SRT = (moduleUrl: string) => `
import(${JSON.stringify(moduleUrl)}).then(async ({ SandboxManager }) => {
  await SandboxManager.initialize({ network: { allowedDomains: ["127.0.0.1"], deniedDomains: [] }, filesystem: { denyRead: [], allowWrite: [], denyWrite: [] } });
  console.log(JSON.stringify({ port: SandboxManager.getProxyPort(), token: SandboxManager.getProxyAuthToken() }));
  setInterval(() => {}, 1 << 30);
});
`;

interface Proxy {
  id: string;
  label: string;
  shown: string;
  port?: number;
  /** Proxy-Authorization value, for srt. */
  auth?: string;
  pid?: number;
  stop(): Promise<void>;
}

function firstLine(child: ChildProcess, what: string, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(
      () => reject(new Error(`${what} did not start within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    child.stdout!.on("data", (d: Buffer) => {
      text += d.toString();
      const nl = text.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(text.slice(0, nl));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code})`));
    });
  });
}

const stopChild = (child: ChildProcess) => async () => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await Promise.race([gone, new Promise((r) => setTimeout(r, 2000))]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
};

function rssKiB(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** CONNECT host:port through the proxy; resolves with the tunnel once the proxy says 200. */
function tunnel(proxy: Proxy, targetPort: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: proxy.port!, noDelay: true });
    s.once("error", reject);
    s.once("connect", () => {
      const auth = proxy.auth ? `Proxy-Authorization: ${proxy.auth}\r\n` : "";
      s.write(`CONNECT 127.0.0.1:${targetPort} HTTP/1.1\r\nHost: 127.0.0.1:${targetPort}\r\n${auth}\r\n`);
    });
    let head = "";
    const onData = (d: Buffer) => {
      head += d.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      s.removeListener("data", onData);
      if (!/^HTTP\/1\.[01] 200/.test(head)) {
        s.destroy();
        reject(new Error(`CONNECT refused: ${head.split("\r\n")[0]}`));
        return;
      }
      if (end + 4 < head.length) s.unshift(Buffer.from(head.slice(end + 4), "latin1"));
      resolve(s);
    };
    s.on("data", onData);
  });
}

/** One new connection (tunnel, or direct), one byte there and back, close: milliseconds. */
async function oneRoundTrip(proxy: Proxy | undefined, echoPort: number): Promise<number> {
  const start = process.hrtime.bigint();
  const s = proxy
    ? await tunnel(proxy, echoPort)
    : await new Promise<Socket>((resolve, reject) => {
        const c = connect({ host: "127.0.0.1", port: echoPort, noDelay: true }, () => resolve(c));
        c.once("error", reject);
      });
  await new Promise<void>((resolve, reject) => {
    s.once("data", () => resolve());
    s.once("error", reject);
    s.write("x");
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  s.destroy();
  return ms;
}

/** Bulk download of `bytes` through a CONNECT tunnel (curl -p), or directly: MB/s (10^6 bytes). */
function bulk(proxy: Proxy | undefined, bulkPort: number, bytes: number): number {
  const args = ["-sS", "-o", "/dev/null", "-w", "%{speed_download}", "--max-time", "120"];
  if (proxy) {
    args.push("-p", "-x", `http://127.0.0.1:${proxy.port}`);
    if (proxy.auth) args.push("--proxy-header", `Proxy-Authorization: ${proxy.auth}`);
  } else args.push("--noproxy", "*");
  const r = spawnSync("curl", [...args, `http://127.0.0.1:${bulkPort}/bulk?n=${bytes}`], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`curl exit ${r.status}: ${r.stderr.trim()}`);
  return Number(r.stdout) / 1e6;
}

async function startProxies(ctx: BenchContext, ports: { bulk: number; echo: number }): Promise<Proxy[]> {
  // tcp://: the bench moves raw bytes (an echo byte, a bulk body) through tunnels, which a plain
  // rule now checks as TLS or HTTP; this measures the relay itself, as the rule's opt-out allows
  const rule = `tcp://[127.0.0.1/32]:${ports.bulk},${ports.echo}`;
  const proxies: Proxy[] = [];
  const failed = (id: string, label: string, shown: string, error: unknown): Proxy => ({
    id,
    label: `${label} — not measured: ${(error as Error).message}`,
    shown,
    stop: async () => {},
  });

  // fourwall, from the bundle (tsx would measure the transpiler)
  const fourwallShown = `node ${PROXY_NODE_FLAGS.join(" ")} bin/fourwall.js egress serve -a '${rule}'`;
  try {
    const child = spawn(
      process.execPath,
      [...PROXY_NODE_FLAGS, path.join(ctx.repoRoot, "bin", "fourwall.js"), "egress", "serve", "-a", rule],
      {
        cwd: ctx.tempDir(),
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const line = await firstLine(child, "fourwall egress serve");
    const port = Number(/:(\d+)$/.exec(line)?.[1]);
    proxies.push({
      id: "fourwall",
      label: "fourwall's proxy",
      shown: fourwallShown,
      port,
      pid: child.pid,
      stop: stopChild(child),
    });
  } catch (error) {
    proxies.push(failed("fourwall", "fourwall's proxy", fourwallShown, error));
  }

  // squid 5 with fourwall's generated config (squid's own listener; the box-side socket forwarder is not in the path)
  const squidShown = "squid -N -f <config rendered by fourwall for the same rule>";
  try {
    const { startSquid } = await import("../src/walls/egress/squid/squid.js");
    const { compileEgressPlan } = await import("../src/walls/egress/rules/rules.js");
    const { egressSchema } = await import("../src/walls/egress/schema.js");
    const dir = ctx.tempDir();
    spawnSync("chmod", ["0711", dir]); // squid runs as the proxy user when the bench runs as root
    const handle = await startSquid({
      plan: compileEgressPlan(egressSchema.parse({ allow: [rule], proxy: "squid" })),
      box: "bench",
      socketPath: path.join(dir, "squid.sock"),
      dir: path.join(dir, "squid"),
    });
    proxies.push({
      id: "squid",
      label: "squid 5.7 (fourwall's config)",
      shown: squidShown,
      port: handle.port,
      auth: handle.proxyAuthorization,
      pid: handle.pid,
      stop: () => handle.close(),
    });
  } catch (error) {
    proxies.push(failed("squid", "squid", squidShown, error));
  }

  // srt's HTTP proxy, started by srt's own SandboxManager in a process of its own
  const srtModule = path.join(
    ctx.repoRoot,
    "node_modules",
    "@anthropic-ai",
    "sandbox-runtime",
    "dist",
    "index.js",
  );
  const srtShown =
    "SandboxManager.initialize({ network: { allowedDomains: ['127.0.0.1'] } }) (@anthropic-ai/sandbox-runtime)";
  try {
    if (!existsSync(srtModule)) throw new Error("@anthropic-ai/sandbox-runtime is not installed");
    const child = spawn(process.execPath, ["--input-type=module", "-e", SRT(`file://${srtModule}`)], {
      cwd: ctx.tempDir(),
      stdio: ["ignore", "pipe", "ignore"],
    });
    const info = JSON.parse(await firstLine(child, "srt")) as { port: number; token: string };
    proxies.push({
      id: "srt",
      label: "srt's proxy (peer)",
      shown: srtShown,
      port: info.port,
      auth: `Basic ${Buffer.from(`bench:${info.token}`).toString("base64")}`,
      pid: child.pid,
      stop: stopChild(child),
    });
  } catch (error) {
    proxies.push(failed("srt", "srt's proxy (peer)", srtShown, error));
  }
  return proxies;
}

/** Opens `n` tunnels through the proxy (50 at a time), holds them; returns the proxy's RSS growth. */
async function memoryAt(
  proxy: Proxy,
  echoPort: number,
  n: number,
): Promise<{ idleKiB: number; heldKiB: number } | string> {
  const idle = rssKiB(proxy.pid);
  if (idle === undefined) return "cannot read the proxy's RSS";
  const open: Socket[] = [];
  try {
    for (let i = 0; i < n; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, n - i) }, () => tunnel(proxy, echoPort)),
      );
      for (const s of batch) s.on("error", () => {});
      open.push(...batch);
    }
    // one byte through each, so every tunnel is really joined end to end
    await Promise.all(
      open.map(
        (s) =>
          new Promise<void>((r) => {
            s.once("data", () => r());
            s.write("x");
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 500));
    const held = rssKiB(proxy.pid);
    return held === undefined ? "cannot read the proxy's RSS" : { idleKiB: idle, heldKiB: held };
  } catch (error) {
    return `failed after ${open.length} tunnels: ${(error as Error).message}`;
  } finally {
    for (const s of open) s.destroy();
  }
}

export const proxy: BenchGroup = {
  id: "proxy",
  title: "Egress proxy: CONNECT throughput, new-tunnel latency, memory",
  async run(ctx): Promise<GroupResult> {
    const bytes = ctx.quick ? 64 << 20 : 256 << 20;
    const latencyRounds = ctx.quick ? 50 : 400;
    const origin = spawn(process.execPath, ["-e", ORIGIN], { stdio: ["ignore", "pipe", "inherit"] });
    const ports = JSON.parse(await firstLine(origin, "the origin")) as { bulk: number; echo: number };
    const proxies = await startProxies(ctx, ports);
    try {
      const live = proxies.filter((p) => p.port !== undefined);
      const subjects: Array<Proxy | undefined> = [undefined, ...live];
      const key = (p: Proxy | undefined) => p?.id ?? "direct";

      // Throughput: interleaved rounds, one transfer per subject per round.
      const mbps = new Map<string, number[]>();
      const errors = new Map<string, string>();
      for (let round = -ctx.warmup; round < ctx.runs; round++) {
        ctx.log(`proxy: throughput ${round < 0 ? "warm-up" : `run ${round + 1}/${ctx.runs}`}`);
        for (let k = 0; k < subjects.length; k++) {
          const s = subjects[(Math.max(round, 0) + k) % subjects.length];
          if (errors.has(key(s))) continue;
          try {
            const v = bulk(s, ports.bulk, bytes);
            if (round >= 0) mbps.set(key(s), [...(mbps.get(key(s)) ?? []), v]);
          } catch (error) {
            errors.set(key(s), (error as Error).message);
          }
        }
      }

      // New-tunnel latency: one round trip per subject per round, the order rotating each round, so a
      // busy moment on a shared machine lands on every subject alike (batches per subject did not).
      ctx.log("proxy: new-tunnel latency");
      const lat = new Map<string, number[]>();
      for (let i = 0; i < 20; i++) for (const s of subjects) await oneRoundTrip(s, ports.echo).catch(() => 0); // warm-up
      for (let round = 0; round < latencyRounds; round++) {
        for (let k = 0; k < subjects.length; k++) {
          const s = subjects[(round + k) % subjects.length];
          if (errors.has(key(s))) continue;
          try {
            const ms = await oneRoundTrip(s, ports.echo);
            const v = lat.get(key(s));
            if (v) v.push(ms);
            else lat.set(key(s), [ms]);
          } catch (error) {
            errors.set(key(s), (error as Error).message);
          }
        }
      }

      // Memory with TUNNELS tunnels open, one proxy at a time.
      const memory = new Map<string, { idleKiB: number; heldKiB: number } | string>();
      for (const p of live) {
        ctx.log(`proxy: ${TUNNELS} open tunnels through ${p.id}`);
        memory.set(p.id, await memoryAt(p, ports.echo, TUNNELS));
      }

      const labelOf = (id: string) =>
        id === "direct" ? "direct (no proxy)" : proxies.find((p) => p.id === id)!.label;
      const shownOf = (id: string) =>
        id === "direct"
          ? `curl --noproxy '*' http://127.0.0.1:<origin>/bulk?n=${bytes}`
          : `curl -p -x <proxy> … (proxy: ${proxies.find((p) => p.id === id)!.shown})`;
      const rows: Row[] = [{ id: "direct" }, ...proxies].map(({ id }) => {
        const values = mbps.get(id);
        const notStarted = proxies.find((p) => p.id === id && p.port === undefined);
        return {
          id,
          label: labelOf(id),
          command: shownOf(id),
          role: id === "direct" || id === "squid" || id === "srt" ? "baseline" : "subject",
          unit: "MB/s",
          result:
            values && values.length > 0
              ? { ok: true, stats: stats(values), samples: values.map((v) => Math.round(v)) }
              : { ok: false, reason: errors.get(id) ?? (notStarted ? "did not start" : "no sample") },
        };
      });

      const p50 = (id: string) => {
        const v = lat.get(id);
        return v && v.length > 0 ? percentile(v, 50) : undefined;
      };
      const direct50 = p50("direct");
      const latencyTable: ExtraTable = {
        title: `New tunnel + 1-byte round trip + close (sequential, ${latencyRounds} per subject)`,
        header: ["subject", "p50 ms", "p90 ms", "added p50 over direct, ms"],
        rows: ["direct", ...live.map((p) => p.id)].map((id) => {
          const v = lat.get(id);
          if (!v || v.length === 0)
            return [labelOf(id), `failed: ${errors.get(id) ?? "no sample"}`, "–", "–"];
          const added =
            id === "direct" || direct50 === undefined ? "–" : (percentile(v, 50) - direct50).toFixed(3);
          return [labelOf(id), percentile(v, 50).toFixed(3), percentile(v, 90).toFixed(3), added];
        }),
      };
      const addedOf = (id: string) =>
        p50(id) !== undefined && direct50 !== undefined ? p50(id)! - direct50 : undefined;
      const fourwallAdded = addedOf("fourwall");
      const squidAdded = addedOf("squid");
      const memoryTable: ExtraTable = {
        title: `Proxy memory with ${TUNNELS} tunnels open (RSS)`,
        header: ["proxy", "idle MiB", `with ${TUNNELS} tunnels MiB`, "per tunnel KiB"],
        rows: live.map((p) => {
          const m = memory.get(p.id);
          if (!m || typeof m === "string") return [p.label, "–", `failed: ${m ?? "not measured"}`, "–"];
          return [
            p.label,
            (m.idleKiB / 1024).toFixed(1),
            (m.heldKiB / 1024).toFixed(1),
            ((m.heldKiB - m.idleKiB) / TUNNELS).toFixed(1),
          ];
        }),
        note: "One process each; squid's RSS is squid's alone (its keeper shell is not counted), srt's includes its whole SandboxManager.",
      };
      const mbpsOf = (id: string) => {
        const v = mbps.get(id);
        return v && v.length > 0 ? stats(v).median : undefined;
      };
      const throughputRatio = () => {
        const f = mbpsOf("fourwall");
        const d = mbpsOf("direct");
        return f !== undefined && d !== undefined && d > 0 ? f / d : undefined;
      };
      const directOf = () => {
        const r = throughputRatio();
        return r === undefined ? undefined : `${r.toFixed(2)} × direct`;
      };
      const directMet = () => {
        const r = throughputRatio();
        return r === undefined ? undefined : r >= 0.6 ? "yes" : "no";
      };
      const held = memory.get("fourwall");
      const heldMiB = held && typeof held !== "string" ? held.heldKiB / 1024 : undefined;
      const verdict: ExtraTable = {
        title: "Latency, memory and throughput targets",
        header: ["target", "measured", "met"],
        rows: [
          [
            `fourwall's proxy RSS with ${TUNNELS} tunnels open < ${TARGET_MEMORY_MIB} MiB`,
            heldMiB === undefined ? "n/a" : `${heldMiB.toFixed(1)} MiB`,
            heldMiB === undefined ? "unknown" : heldMiB < TARGET_MEMORY_MIB ? "yes" : "no",
          ],
          [
            `fourwall's added new-tunnel latency p50 < ${TARGET_ADDED_MS} ms`,
            fourwallAdded === undefined ? "n/a" : `${fourwallAdded.toFixed(3)} ms`,
            fourwallAdded === undefined ? "unknown" : fourwallAdded < TARGET_ADDED_MS ? "yes" : "no",
          ],
          [
            "issue 16: fourwall's added new-tunnel latency p50 ≤ squid's (same run)",
            fourwallAdded === undefined || squidAdded === undefined
              ? "n/a"
              : `${fourwallAdded.toFixed(3)} vs ${squidAdded.toFixed(3)} ms`,
            fourwallAdded === undefined || squidAdded === undefined
              ? "unknown"
              : fourwallAdded <= squidAdded
                ? "yes"
                : "no",
          ],
          [
            "issue 16: fourwall's throughput ≥ 0.6 × direct (same run)",
            directOf() ?? "n/a",
            directMet() ?? "unknown",
          ],
        ],
      };
      return {
        id: this.id,
        title: this.title,
        method:
          `Bulk: curl downloads ${bytes >> 20} MiB from a separate origin process through a CONNECT tunnel (curl -p -x), or directly; ` +
          `MB/s = curl's average download speed (10^6 bytes/s), ${ctx.warmup} warm-up and ${ctx.runs} measured round(s), subjects interleaved. ` +
          "Latency: the bench opens a new connection to the proxy, CONNECTs to an echo server, sends one byte, reads it back and closes; one such round trip per subject per round, the order rotating. " +
          `Memory: ${TUNNELS} tunnels held open through each proxy (one byte through each), the proxy's RSS read from /proc. ` +
          "fourwall's proxy runs from the bundle (`fourwall egress serve`); every proxy allows exactly 127.0.0.1 on the origin's ports; all on loopback, on the same 2 cores as client and origin.",
        rows,
        ratios: [
          ratio(rows, "fourwall", "direct"),
          ratio(rows, "fourwall", "squid"),
          ratio(rows, "fourwall", "srt"),
        ],
        targets: [
          target(rows, "throughput: squid ÷ fourwall ≤ 1 (fourwall ≥ squid)", "squid", "fourwall", "<=", 1),
          target(
            rows,
            "throughput: direct ÷ fourwall ≤ 1.67 (fourwall ≥ 0.6 × direct)",
            "direct",
            "fourwall",
            "<=",
            1 / 0.6,
          ),
        ],
        extraTables: [latencyTable, verdict, memoryTable],
        notes: [
          "fourwall's proxy runs with its container image's V8 flags (`--max-semi-space-size=1 --no-opt`, k8s/proxy.Dockerfile) and has its policy compiled by a short-lived child (`fourwall egress plan`), so the policy parsers never load into it; per tunnel it holds two sockets and two light relays (docs/benchmarks.md, issue 16). A new tunnel's cost is mostly Node's per-socket machinery (a bare Node CONNECT relay already adds more than squid); bulk tunnels are spliced in the kernel after 256 KiB.",
          "squid is measured on its own TCP listener; in a box, squid is reached through fourwall's unix-socket forwarder as well, which is not in this path.",
          "srt's proxy is measured as srt runs it (in-process SandboxManager HTTP proxy with its auth token); srt's standalone `srt proxy` mode refuses CONNECT tunnels it cannot TLS-terminate, so it is not the mode measured.",
        ],
      };
    } finally {
      for (const p of proxies) await p.stop();
      await stopChild(origin)();
    }
  },
};
