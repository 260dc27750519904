/**
 * The egress wall from inside a real box, both launch modes, both proxy backends (fourwall's own and
 * squid), and on the docker runtime (root, fourwall's proxy, fourwall's "tools" image): the proxy is the only way out, and real clients (curl, git, npm, python, node fetch) work
 * through it. The same clients run on gVisor and in the microVM too (one box each, both modes). Origins are host loopback services pinned with --resolve; the one "outside" host lives
 * in a network namespace this file creates (198.18.0.0/15). Each kernel-level check also runs against
 * a deliberately broken box (the host's network namespace) to show it catches the hole.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { copyFileSync, cpSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  chownToMode,
  type Fixture,
  MODES,
  type Mode,
  makeFixture,
  ROOT,
  readAudit,
  sh,
} from "../helpers/box.js";
import {
  type DockerBoxes,
  dockerdUnavailable,
  dockerFixture,
  startDockerBoxes,
} from "../helpers/docker-box.js";
import { createTestHost, type TestHost } from "../helpers/egress-net.js";
import { type GitServer, type Registry, startGitServer, startRegistry } from "../helpers/egress-servers.js";
import { type Certs, makeCerts, type Origin, startHttpOrigin, startHttpsOrigin } from "../helpers/origins.js";

const BACKENDS = ["builtin", "squid"] as const;
type Backend = (typeof BACKENDS)[number];

/** Where the same tests run: the default runtime in every mode and backend, and docker (root only, by design). */
type Target = { runtime: "namespaces" | "docker"; backend: Backend; mode: Mode };
const TARGETS: Target[] = [
  ...BACKENDS.flatMap((backend) => MODES.map((mode) => ({ runtime: "namespaces" as const, backend, mode }))),
  { runtime: "docker", backend: "builtin", mode: "root" },
];
const dockerSkip = dockerdUnavailable() ?? false;
let docker: DockerBoxes | undefined;

let http: Origin;
let bulk: Server;
let bulkPort = 0;
const BULK = Buffer.alloc(48 << 20, "fourwall-bulk-");
const BULK_SHA = createHash("sha256").update(BULK).digest("hex");
let http6: Origin;
let https: Origin;
let certs: Certs;
let git: GitServer;
let registry: Registry;
let outside: TestHost;
const OUTSIDE_PORT = 8080;
let udp: UdpSocket;
let udpPort = 0;
const udpSeen = new Set<string>();

before(async () => {
  bulk = createServer((_req, res) => {
    res.writeHead(200, { "content-length": BULK.length });
    res.end(BULK);
  });
  await new Promise<void>((r) => bulk.listen(0, "127.0.0.1", r));
  bulkPort = (bulk.address() as AddressInfo).port;
  certs = await makeCerts();
  [http, http6, https, git, registry] = await Promise.all([
    startHttpOrigin(),
    startHttpOrigin("::1"),
    startHttpsOrigin(certs),
    startGitServer(),
    startRegistry("registry.test"),
  ]);
  outside = createTestHost();
  await outside.serveHttp(OUTSIDE_PORT);
  udp = createSocket("udp4");
  udp.on("message", (m) => udpSeen.add(m.toString()));
  await new Promise<void>((r) => udp.bind(0, "127.0.0.1", r));
  udpPort = udp.address().port;
  if (!dockerSkip) docker = await startDockerBoxes();
});
after(async () => {
  await docker?.stop();
  udp?.close();
  outside?.close();
  bulk?.close();
  await Promise.all([http?.close(), http6?.close(), https?.close(), git?.close(), registry?.close()]);
  certs?.cleanup();
});

const flags = (backend: Backend) => [
  "--proxy",
  backend,
  "-a",
  `allowed.test:${http.port},${https.port}`,
  "-a",
  `git.test:${git.port}`,
  "-a",
  `registry.test:${registry.port}`,
  "-a",
  `localhost:${http.port}`,
  "-a",
  // tcp://: the bulk port is also reached as an unchecked raw tunnel (curl -p), the spliced path
  `tcp://allowed.test:${bulkPort}`,
  ...["allowed.test", "other.test", "git.test", "registry.test"].flatMap((n) => [
    "--resolve",
    `${n}=127.0.0.1`,
  ]),
];

/** A fixture for the target: docker's workdir belongs to an unprivileged user (Docker has no idmapped mounts). */
const fixtureFor = (t: Target): Fixture =>
  t.runtime === "docker" ? dockerFixture(t.mode) : makeFixture(t.mode);

/** A fixture with the test CA in its workdir (readable by the box's uid). */
function fixtureWithCa(t: Target): Fixture & { ca: string } {
  const fx = fixtureFor(t);
  const ca = path.join(fx.workdir, "ca.pem");
  copyFileSync(certs.cert, ca);
  chownToMode(fx, ca);
  return { ...fx, ca };
}

// undici goes into the workdir beside the script: a docker box sees no host path but the workdir
const NODE_FETCH = `
const { fetch, EnvHttpProxyAgent } = require("undici");
const ca = require("node:fs").readFileSync(process.argv[3], "utf8");
process.removeAllListeners("warning"); // undici calls its env agent experimental
fetch(process.argv[2], { dispatcher: new EnvHttpProxyAgent({ requestTls: { ca } }) })
  .then((r) => r.text())
  .then((t) => process.stdout.write("fetch: " + t), (e) => { console.error("fetch failed:", e.cause?.message ?? e.message); process.exit(3); });
`;

for (const target of TARGETS) {
  const { runtime, backend, mode } = target;
  const skip = runtime === "docker" ? dockerSkip : false;
  const where = runtime === "docker" ? `docker runtime, ${mode}` : `${backend} proxy, ${mode}`;
  describe(`egress wall in the box (${where})`, { skip }, () => {
    const onRuntime = () =>
      runtime === "docker"
        ? { flags: ["-r", "docker", ...docker!.imageFlags], env: docker!.env, timeoutMs: 60_000 }
        : { flags: [] };
    // FOURWALL_SQUID (a squid-openssl kept outside PATH) reaches fourwall through the fixture's clean env.
    const squidEnv: Record<string, string> = process.env.FOURWALL_SQUID
      ? { FOURWALL_SQUID: process.env.FOURWALL_SQUID }
      : {};
    const run = (fx: Fixture, script: string, extra: string[] = []) => {
      const r = onRuntime();
      const env = { ...(r as { env?: Record<string, string> }).env, ...squidEnv };
      return sh(fx, script, { ...r, env, flags: [...r.flags, ...flags(backend), ...extra] });
    };

    it("curl and python urllib reach an allowlisted origin over plain HTTP, body checked", async () => {
      const fx = fixtureFor(target);
      const r = await run(
        fx,
        `curl -s -m 5 http://allowed.test:${http.port}/curl; ` +
          `/usr/bin/python3 -c 'import urllib.request; print(urllib.request.urlopen("http://allowed.test:${http.port}/py", timeout=5).read().decode())'`,
      );
      assert.match(r.stdout, /origin=http method=GET url=\/curl host=allowed\.test/, r.stderr);
      assert.match(r.stdout, /origin=http method=GET url=\/py host=allowed\.test/, r.stderr);
    });

    it("curl over HTTPS through CONNECT (--cacert), body and SNI checked", async () => {
      const fx = fixtureWithCa(target);
      const r = await run(fx, `curl -sS -m 5 --cacert ${fx.ca} https://allowed.test:${https.port}/tls`);
      assert.match(
        r.stdout,
        /origin=https method=GET url=\/tls host=allowed\.test:\d+ sni=allowed\.test/,
        r.stderr,
      );
    });

    it("a 48 MiB download arrives intact (plain HTTP and through a CONNECT tunnel: the spliced bulk path)", async () => {
      const fx = fixtureFor(target);
      const url = `http://allowed.test:${bulkPort}/bulk`;
      const r = await run(fx, `curl -sS -m 20 ${url} | sha256sum; curl -sS -m 20 -p ${url} | sha256sum`);
      assert.equal(r.stdout, `${BULK_SHA}  -\n${BULK_SHA}  -\n`, r.stderr);
    });

    it("git ls-remote against a git smart-HTTP server", async () => {
      const fx = fixtureFor(target);
      const r = await run(fx, `git ls-remote http://git.test:${git.port}/repo.git`);
      assert.match(r.stdout, new RegExp(`^${git.head}\\s+refs/heads/main$`, "m"), r.stderr);
    });

    it("npm view and npm install from a registry stand-in", async () => {
      const fx = fixtureFor(target);
      const npmFlags = `--registry http://registry.test:${registry.port}/ --cache ${fx.workdir}/.npm-cache --no-update-notifier --no-audit --no-fund`;
      const r = await run(
        fx,
        `npm view ${registry.name} description ${npmFlags} && mkdir app && cd app && ` +
          `npm install ${registry.name} ${npmFlags} >/dev/null && node -e 'console.log(require("${registry.name}"))'`,
      );
      assert.match(r.stdout, /served by a registry stand-in/, r.stderr);
      assert.match(r.stdout, new RegExp(registry.marker), r.stderr);
    });

    it(`node fetch through undici's EnvHttpProxyAgent, HTTP${backend === "squid" ? " (refused: squid cannot check Host inside a tunnel)" : ""} and HTTPS, bodies checked`, async () => {
      const fx = fixtureWithCa(target);
      const script = path.join(fx.workdir, "fetch.cjs");
      writeFileSync(script, NODE_FETCH);
      chownToMode(fx, script);
      cpSync(path.join(ROOT, "node_modules", "undici"), path.join(fx.workdir, "node_modules", "undici"), {
        recursive: true,
      });
      const r = await run(
        fx,
        `node ${script} http://allowed.test:${http.port}/node ${fx.ca}; node ${script} https://allowed.test:${https.port}/node-tls ${fx.ca}`,
      );
      // undici's proxy agent tunnels http:// URLs through CONNECT too. The builtin proxy checks each
      // request in the tunnel; squid cannot follow HTTP inside a tunnel, so it refuses it (its stated limit).
      if (backend === "squid") assert.match(r.stderr, /allowed\.test:\d+ \(tunnel-not-tls\)/, r.stderr);
      else assert.match(r.stdout, /fetch: origin=http method=GET url=\/node host=allowed\.test/, r.stderr);
      assert.match(
        r.stdout,
        /fetch: origin=https method=GET url=\/node-tls host=allowed\.test:\d+ sni=allowed\.test/,
        r.stderr,
      );
    });

    it("refuses an unlisted host with a 403 and the reason, and says so in the audit log and at exit", async () => {
      const fx = fixtureFor(target);
      const audit = path.join(fx.home, "audit.jsonl");
      const before = http.hits;
      const r = await run(fx, `curl -s -m 5 -D - http://other.test:${http.port}/`, ["--audit", audit]);
      assert.match(r.stdout, /^HTTP\/1\.1 403/);
      assert.match(r.stdout, /X-Fourwall-Denied: not-allowed/i);
      assert.match(r.stdout, /denied/);
      assert.doesNotMatch(r.stdout, /origin=/);
      assert.equal(http.hits, before, "the origin saw the refused request");
      assert.match(r.stderr, /egress blocked 1 request/);
      const events = readAudit(audit);
      assert.ok(
        events.some(
          (e) =>
            e.wall === "egress" &&
            e.decision === "deny" &&
            e.host === "other.test" &&
            e.reason === "not-allowed",
        ),
        JSON.stringify(events),
      );
    });

    it("refuses an allowed name that resolves to an internal address (localhost: loopback)", async () => {
      const fx = fixtureFor(target);
      const r = await run(
        fx,
        `curl -s -m 5 -D - --noproxy '' -x "$HTTP_PROXY" http://localhost:${http.port}/guard`,
      );
      assert.match(r.stdout, /X-Fourwall-Denied: address-loopback/i, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout, /origin=/);
    });

    it("closes an allowed tunnel whose TLS SNI names another host", async () => {
      const fx = fixtureFor(target);
      const req = "GET /sni HTTP/1.1\\r\\nHost: other.test\\r\\nConnection: close\\r\\n\\r\\n";
      const r = await run(
        fx,
        `printf '${req}' | timeout 8 openssl s_client -quiet -proxy 127.0.0.1:3128 -connect allowed.test:${https.port} -servername other.test -ign_eof 2>/dev/null`,
      );
      assert.doesNotMatch(
        r.stdout,
        /origin=https/,
        `the origin answered through a mismatched SNI:\n${r.stdout}`,
      );
    });

    it("never lets the origin see another vhost through a CONNECT tunnel to an allowed HTTP port (curl -p)", async () => {
      const fx = fixtureFor(target);
      const r = await run(
        fx,
        `curl -s -m 5 -p -D - -H 'Host: other.test' http://allowed.test:${http.port}/fronted`,
      );
      assert.doesNotMatch(r.stdout, /origin=http/, r.stdout);
      // The builtin proxy checks every request in the tunnel; squid refuses plain HTTP in tunnels altogether.
      if (backend === "builtin") assert.match(r.stdout, /X-Fourwall-Denied: host-mismatch/i, r.stdout);
    });

    it("never lets the origin see a Host header naming another host", async () => {
      const fx = fixtureFor(target);
      const r = await run(
        fx,
        `curl -s -m 5 -D - -H 'Host: other.test' http://allowed.test:${http.port}/host`,
      );
      assert.doesNotMatch(r.stdout, /host=other\.test/, r.stdout);
      // The builtin proxy refuses the request; squid rewrites Host from the URL (the vetted name).
      if (backend === "builtin") assert.match(r.stdout, /X-Fourwall-Denied: host-mismatch/i);
      else assert.match(r.stdout, /host=allowed\.test/);
    });

    const holes: {
      name: string;
      script: (token: string) => string;
      hole: (out: string, token: string) => boolean;
      weaken?: string[];
    }[] = [
      {
        name: "a direct connection to a host loopback address fails at once (no route but the proxy)",
        script: () =>
          `curl -s -m 3 --noproxy '*' http://127.0.0.1:${http.port}/direct; echo; python3 -c 'import socket; s=socket.socket(); s.settimeout(2); s.connect(("127.0.0.1", ${http.port})); print("CONNECTED")'`,
        hole: (out) => out.includes("url=/direct") || out.includes("CONNECTED"),
        weaken: ["net"],
      },
      {
        name: "a direct connection to an outside test host (198.18.0.0/15, test netns) fails at once",
        script: () =>
          `python3 -c 'import socket, time
t = time.time()
try:
    s = socket.create_connection(("${outside.address}", ${OUTSIDE_PORT}), timeout=3); s.sendall(b"GET /x HTTP/1.0\\r\\n\\r\\n"); print(s.recv(100))
except OSError as e:
    print("refused after %.2f s: %s" % (time.time() - t, e))'`,
        hole: (out) => out.includes("outside-host") || !/refused after 0\.\d\d s/.test(out),
        weaken: ["net"],
      },
      {
        name: "UDP to a host port never arrives",
        script: (token) =>
          `python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"${token}", ("127.0.0.1", ${udpPort})); print("sent")'; sleep 0.2`,
        hole: (_out, token) => udpSeen.has(token),
        weaken: ["net"],
      },
      {
        name: "IPv6 to a host service (::1) fails",
        script: () => `curl -s -m 3 -g --noproxy '*' 'http://[::1]:${http6.port}/v6'`,
        hole: (out) => out.includes("url=/v6"),
        weaken: ["net"],
      },
      {
        name: "the box has no interface but lo and no working resolver",
        script: () =>
          "ip -o link | grep -vc ' lo:'; getent hosts localhost.invalid >/dev/null && echo RESOLVED; cat /proc/net/route | wc -l",
        hole: (out) => out.split("\n")[0] !== "0" || out.includes("RESOLVED"),
        weaken: ["net"],
      },
      {
        name: "firewall and routing tampering fails (no CAP_NET_ADMIN)",
        script: () =>
          "ip link add fw0 type dummy 2>/dev/null && echo TAMPERED; ip route add 10.99.0.0/16 dev lo 2>/dev/null && echo TAMPERED; nft flush ruleset 2>/dev/null && echo TAMPERED; true",
        hole: (out) => out.includes("TAMPERED"),
        // No broken variant: a box that could tamper would need CAP_NET_ADMIN over a real network
        // namespace, and a leak there would change the host's own routes.
      },
    ];
    for (const check of holes) {
      it(check.name, async () => {
        const fx = fixtureFor(target);
        const token = randomBytes(6).toString("hex");
        const r = await run(fx, check.script(token));
        assert.equal(check.hole(r.stdout, token), false, `${r.stdout}\n${r.stderr}`);
      });
      // The broken box is the same for both backends (the kernel wall does not depend on the proxy).
      if (check.weaken && backend === "builtin") {
        it(`${check.name} — the check sees the hole in a box without ${check.weaken.join(" + ")}`, async () => {
          const fx = fixtureFor(target);
          const token = randomBytes(6).toString("hex");
          const weak =
            runtime === "docker"
              ? { weakRuntime: "docker" as const, weakFlags: docker!.imageFlags, ...onRuntime() }
              : {};
          const r = await sh(fx, check.script(token), { ...weak, weaken: check.weaken });
          assert.equal(
            check.hole(r.stdout, token),
            true,
            `the broken box was not caught\n${r.stdout}\n${r.stderr}`,
          );
        });
      }
    }
  });
}

// The same real clients on the stronger runtimes, in one box each (the microVM boots in seconds under
// TCG emulation): gVisor and the microVM, both launch modes.
const ONE_BOX_TARGETS = [
  { runtime: "gvisor", label: "gVisor", timeoutMs: 60_000 },
  { runtime: "vm", label: "microVM", timeoutMs: 240_000 },
] as const;
for (const { runtime, label, timeoutMs } of ONE_BOX_TARGETS)
  for (const mode of MODES) {
    describe(`egress wall in the ${label} box (${mode})`, () => {
      it("curl, python urllib, git, npm and node fetch reach allowlisted origins through the proxy; an unlisted host gets 403", {
        timeout: 250_000,
      }, async () => {
        const fx = fixtureWithCa({ runtime: "namespaces", backend: "builtin", mode });
        const script = path.join(fx.workdir, "fetch.cjs");
        writeFileSync(script, NODE_FETCH);
        chownToMode(fx, script);
        cpSync(path.join(ROOT, "node_modules", "undici"), path.join(fx.workdir, "node_modules", "undici"), {
          recursive: true,
        });
        const npmFlags = `--registry http://registry.test:${registry.port}/ --cache ${fx.workdir}/.npm-cache --no-update-notifier --no-audit --no-fund`;
        const r = await sh(
          fx,
          [
            `curl -s -m 20 http://allowed.test:${http.port}/curl`,
            `curl -sS -m 20 --cacert ${fx.ca} https://allowed.test:${https.port}/tls`,
            `/usr/bin/python3 -c 'import urllib.request; print(urllib.request.urlopen("http://allowed.test:${http.port}/py", timeout=20).read().decode())'`,
            `git ls-remote http://git.test:${git.port}/repo.git`,
            `npm view ${registry.name} description ${npmFlags}`,
            `node ${script} https://allowed.test:${https.port}/node-tls ${fx.ca}`,
            `curl -s -m 20 -o /dev/null -w 'unlisted=%{http_code}\\n' http://other.test:${http.port}/`,
          ].join("; echo; "),
          { flags: ["-r", runtime, ...flags("builtin")], timeoutMs },
        );
        const out = `${r.stdout}\n${r.stderr}`;
        assert.match(r.stdout, /origin=http method=GET url=\/curl host=allowed\.test/, out);
        assert.match(
          r.stdout,
          /origin=https method=GET url=\/tls host=allowed\.test:\d+ sni=allowed\.test/,
          out,
        );
        assert.match(r.stdout, /origin=http method=GET url=\/py host=allowed\.test/, out);
        assert.match(r.stdout, new RegExp(`^${git.head}\\s+refs/heads/main$`, "m"), out);
        assert.match(r.stdout, /served by a registry stand-in/, out);
        assert.match(
          r.stdout,
          /fetch: origin=https method=GET url=\/node-tls host=allowed\.test:\d+ sni=allowed\.test/,
          out,
        );
        assert.match(r.stdout, /unlisted=403/, out);
      });
    });
  }
