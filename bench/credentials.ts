/**
 * The cost of the credential swap (issue 14), beside the blind tunnel it replaces for bound hosts:
 * the same HTTPS origin through fourwall's proxy, once as a blind SNI-checked tunnel, once bound to a
 * credential (TLS terminated with the run's CA, each request judged and swapped, re-encrypted
 * upstream, the response scrubbed). Measured with curl through CONNECT, everything on 127.0.0.1:
 * a new tunnel + TLS + one request (sequential curl runs, p50), requests on a warm connection
 * (one curl, many URLs), and a bulk download. Run: node --import tsx bench/credentials.ts
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { writeOutputFile } from "../src/core/output-file.js";
import { planCredentials } from "../src/walls/egress/credentials/plan.js";
import { prepareCredentials } from "../src/walls/egress/credentials/runtime.js";
import { startProxy } from "../src/walls/egress/proxy/proxy.js";
import { compileEgressPlan } from "../src/walls/egress/rules/rules.js";
import { egressSchema } from "../src/walls/egress/schema.js";

const SECRET = "sk-bench0123456789abcdef0123456789abcdef";
const ROUNDS = Number(process.env.ROUNDS ?? 40);
const WARM = Number(process.env.WARM ?? 300);
const BULK_MIB = Number(process.env.BULK_MIB ?? 128);

const dir = mkdtempSync(path.join(os.tmpdir(), "fourwall-bench-cred-"));
try {
  execFileSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"],
      ...[
        "-keyout",
        path.join(dir, "key.pem"),
        "-out",
        path.join(dir, "cert.pem"),
        "-subj",
        "/CN=bench.test",
      ],
      ...["-addext", "subjectAltName=DNS:bench.test"],
    ],
    { stdio: "ignore" },
  );
  const chunk = Buffer.alloc(1 << 20, 120);
  const origin = createServer(
    { cert: readFileSync(path.join(dir, "cert.pem")), key: readFileSync(path.join(dir, "key.pem")) },
    (req, res) => {
      const n = Number(new URL(req.url ?? "/", "https://x").searchParams.get("n") ?? 0);
      if (n === 0) {
        res.writeHead(200, { "content-type": "text/plain", "content-length": 3 });
        res.end("ok\n");
        return;
      }
      let left = n;
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": n });
      const pump = () => {
        while (left > 0) {
          const k = Math.min(left, chunk.length);
          left -= k;
          if (!res.write(k === chunk.length ? chunk : chunk.subarray(0, k)))
            return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    },
  );
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  const port = (origin.address() as AddressInfo).port;
  const host = `bench.test:${port}`;

  const proxyFor = async (bound: boolean) => {
    const policy = egressSchema.parse({
      allow: [host],
      resolve: ["bench.test=127.0.0.1"],
      trust: [path.join(dir, "cert.pem")],
      ...(bound ? { credentials: [{ name: "bench", fromEnv: "BENCH_KEY", hosts: ["bench.test"] }] } : {}),
    });
    const plan = compileEgressPlan(policy);
    const boxPlan = planCredentials(plan, {
      hostEnv: { BENCH_KEY: SECRET },
      home: dir,
      readFile: () => undefined,
      writable: [],
    });
    const netDir = mkdtempSync(path.join(dir, "net-"));
    const credentials = bound
      ? await prepareCredentials(plan, boxPlan, "bench", netDir, () => {})
      : undefined;
    const handle = await startProxy({ plan, listen: [{ port: 0 }], ...(credentials ? { credentials } : {}) });
    const ca = bound ? path.join(netDir, "ca.pem") : path.join(dir, "cert.pem");
    return { handle, ca, sentinel: boxPlan.bindings[0]?.sentinel ?? "none" };
  };

  // async: the proxy and the origin live in this process (a synchronous spawn would stall them)
  const curl = (proxyUrl: string, ca: string, auth: string, urls: string[], extra: string[] = []) =>
    new Promise<string>((resolve, reject) =>
      execFile(
        "curl",
        [
          ...["-sS", "-p", "-x", proxyUrl, "--cacert", ca, "-H", `Authorization: Bearer ${auth}`],
          ...urls.flatMap((u) => ["-o", "/dev/null", u]),
          ...extra,
        ],
        { encoding: "utf8", maxBuffer: 1 << 20 },
        (err, stdout, stderr) => (err ? reject(new Error(`curl: ${stderr}`)) : resolve(stdout)),
      ),
    );
  const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

  const rows: string[][] = [];
  for (const bound of [false, true]) {
    const { handle, ca, sentinel } = await proxyFor(bound);
    const url = handle.url!;
    const one = `https://${host}/`;
    await curl(url, ca, sentinel, [one]); // warm-up: the leaf, the agents
    const fresh: number[] = [];
    for (let i = 0; i < ROUNDS; i++)
      fresh.push(Number(await curl(url, ca, sentinel, [one], ["-w", "%{time_total}"])) * 1000);
    const t0 = process.hrtime.bigint();
    await curl(
      url,
      ca,
      sentinel,
      Array.from({ length: WARM }, () => one),
    );
    const warm = Number(process.hrtime.bigint() - t0) / 1e6 / WARM;
    const t1 = process.hrtime.bigint();
    await curl(url, ca, sentinel, [`https://${host}/?n=${BULK_MIB << 20}`]);
    const mbps = (BULK_MIB * 1.048576) / (Number(process.hrtime.bigint() - t1) / 1e9);
    rows.push([
      bound ? "bound (terminated, swapped)" : "blind tunnel",
      p50(fresh).toFixed(2),
      warm.toFixed(3),
      mbps.toFixed(0),
    ]);
    await handle.close();
  }
  origin.close();
  const table = [
    "| path | new tunnel + TLS + 1 request, p50 ms | request on a warm connection, ms | bulk download MB/s |",
    "|---|---|---|---|",
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
  const note = `curl ${ROUNDS} fresh runs, ${WARM} requests on one connection, ${BULK_MIB} MiB; ${os.cpus().length} cores, shared host; ${new Date().toISOString()}`;
  process.stdout.write(`${table}\n\n${note}\n`);
  if (process.env.BENCH_OUT) writeOutputFile(process.env.BENCH_OUT, `${table}\n\n${note}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
