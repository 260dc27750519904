/**
 * `fourwall egress render`: the printed nftables ruleset passes `nft -c`, and both firewall formats,
 * loaded into a network namespace this test creates, do what they say: TCP to the proxy's address and
 * port gets through; another port, UDP and IPv6 fail at once. The same probes against a leaky ruleset
 * (policy accept) get through, so they can tell. The squid format is `squid -k parse`-clean. Traffic
 * stays between two test namespaces on 198.18.0.0/15 and 2001:2::/48 (benchmarking ranges).
 */

import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { iptablesSections } from "../../src/walls/egress/network/firewall.js";
import { writePeekCertificate } from "../../src/walls/egress/squid/squid.js";
import { FOURWALL } from "../helpers/box.js";

const isRoot = process.getuid?.() === 0;
const dir = mkdtempSync(path.join(os.tmpdir(), "fwtest-render-"));
const n = (process.pid * 13) % 250;
const box = `fwrb${process.pid}`;
const net = `fwrn${process.pid}`;
const boxV4 = `198.19.${n}.1`;
const netV4 = `198.19.${n}.2`;
const netV6 = `2001:2:0:${n.toString(16)}::2`;
const PROXY = 3128;
const OTHER = 8080;
const UDP = 5353;
let server: ChildProcess | undefined;
let seen = "";

const render = (format: string, extra: string[] = []) =>
  execFileSync(process.execPath, [FOURWALL, "egress", "render", "--format", format, ...extra], {
    cwd: dir,
    encoding: "utf8",
  });
const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });

// Two namespaces joined by a veth pair: "box" (where the rules go) and "net" (a proxy and another service).
before(async () => {
  if (!isRoot) return;
  ip("netns", "add", box);
  ip("netns", "add", net);
  ip("-n", box, "link", "add", "fwb0", "type", "veth", "peer", "name", "fwn0", "netns", net);
  ip("-n", box, "addr", "add", `${boxV4}/30`, "dev", "fwb0");
  ip("-n", net, "addr", "add", `${netV4}/30`, "dev", "fwn0");
  ip("-n", box, "addr", "add", `2001:2:0:${n.toString(16)}::1/64`, "dev", "fwb0", "nodad");
  ip("-n", net, "addr", "add", `${netV6}/64`, "dev", "fwn0", "nodad");
  for (const ns of [box, net]) {
    ip("-n", ns, "link", "set", "lo", "up");
    ip("-n", ns, "link", "set", ns === box ? "fwb0" : "fwn0", "up");
  }
  const code = `
import socket, threading, sys
def tcp(fam, addr, port):
    s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((addr, port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b"svc %d\\n" % port); c.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("${netV4}", ${UDP}))
    while True:
        d, _ = s.recvfrom(100); print("udp", d.decode(), flush=True)
for fam, addr in ((socket.AF_INET, "${netV4}"), (socket.AF_INET6, "${netV6}")):
    for port in (${PROXY}, ${OTHER}):
        threading.Thread(target=tcp, args=(fam, addr, port), daemon=True).start()
threading.Thread(target=udp, daemon=True).start()
print("up", flush=True)
threading.Event().wait()
`;
  server = spawn("ip", ["netns", "exec", net, "python3", "-c", code], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve) =>
    server!.stdout!.on("data", (d: Buffer) => {
      seen += d.toString();
      if (seen.includes("up")) resolve();
    }),
  );
});

after(() => {
  server?.kill("SIGKILL");
  if (isRoot) {
    for (const ns of [box, net]) spawnSync("ip", ["netns", "del", ns]);
  }
  rmSync(dir, { recursive: true, force: true });
});

const PROBE = `
import socket, sys, time
def tcp(fam, addr, port):
    t = time.time()
    try:
        s = socket.create_connection((addr, port), timeout=3); data = s.recv(100).decode().strip(); s.close()
        return data
    except OSError as e:
        return "failed after %.1f s (%s)" % (time.time() - t, e.__class__.__name__)
print("proxy:", tcp(socket.AF_INET, "${netV4}", ${PROXY}))
print("other:", tcp(socket.AF_INET, "${netV4}", ${OTHER}))
print("v6:", tcp(socket.AF_INET6, "${netV6}", ${OTHER}))
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(sys.argv[1].encode(), ("${netV4}", ${UDP})); print("udp: sent")
except OSError as e:
    print("udp: failed (%s)" % e.__class__.__name__)
`;

/** Flushes the box namespace's rules, loads `load`, runs the probes from inside it. */
function probe(load: () => void, token: string): string {
  spawnSync("ip", ["netns", "exec", box, "nft", "flush", "ruleset"]);
  load();
  const r = spawnSync("ip", ["netns", "exec", box, "python3", "-c", PROBE, token], {
    encoding: "utf8",
    timeout: 20_000,
  });
  return r.stdout + r.stderr;
}

async function udpArrived(token: string): Promise<boolean> {
  await new Promise((r) => setTimeout(r, 300));
  return seen.includes(`udp ${token}`);
}

function assertWall(out: string) {
  assert.match(out, /^proxy: svc 3128$/m, out);
  assert.match(out, /^other: failed after 0\.\d s/m, `another port must fail at once:\n${out}`);
  assert.match(out, /^v6: failed after 0\.\d s/m, `IPv6 must fail at once:\n${out}`);
}

function assertLeak(out: string) {
  assert.match(
    out,
    /^other: svc 8080$/m,
    `the leaky ruleset should let this through, or the probe proves nothing:\n${out}`,
  );
  assert.match(out, /^v6: svc 8080$/m, out);
}

const skip = isRoot ? false : "needs root (creates network namespaces)";

describe("egress render: firewall rules", { skip }, () => {
  const proxy = `${netV4}:${PROXY}`;

  test("nft -c accepts the nftables output (IPv4 and IPv6 proxies)", () => {
    for (const address of [proxy, `[${netV6}]:${PROXY}`]) {
      const file = path.join(dir, "check.nft");
      writeFileSync(file, render("nftables", ["--proxy-address", address]));
      const r = spawnSync("unshare", ["-n", "nft", "-c", "-f", file], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    }
  });

  test("nftables: only the proxy's address and port get through; other ports, UDP, IPv6 fail at once", async () => {
    const file = path.join(dir, "wall.nft");
    writeFileSync(file, render("nftables", ["--proxy-address", proxy]));
    const token = `nft${Date.now()}`;
    const out = probe(() => ip("netns", "exec", box, "nft", "-f", file), token);
    assertWall(out);
    assert.equal(await udpArrived(token), false, "UDP got out");
    // loading it twice replaces it (no duplicate rules)
    ip("netns", "exec", box, "nft", "-f", file);
    const listed = execFileSync("ip", ["netns", "exec", box, "nft", "list", "ruleset"], { encoding: "utf8" });
    assert.equal(listed.match(/tcp dport 3128 accept/g)?.length, 1);
  });

  test("nftables: the probes see the hole in a leaky ruleset (policy accept)", async () => {
    const file = path.join(dir, "leaky.nft");
    writeFileSync(
      file,
      render("nftables", ["--proxy-address", proxy])
        .replaceAll("policy drop", "policy accept")
        .replace(/^ +(meta l4proto tcp )?reject.*$/gm, ""),
    );
    const token = `nftleak${Date.now()}`;
    assertLeak(probe(() => ip("netns", "exec", box, "nft", "-f", file), token));
    assert.equal(await udpArrived(token), true, "UDP should get out of the leaky box");
  });

  const iptables = spawnSync("iptables-restore", ["--version"]).status === 0;
  const noIptables = iptables
    ? false
    : "iptables is not installed (apt-get install iptables): the iptables format is checked by the unit tests only";

  test("iptables: the same wall with iptables-restore and ip6tables-restore", {
    skip: noIptables,
  }, async () => {
    const { v4, v6 } = iptablesSections(render("iptables", ["--proxy-address", proxy]));
    const token = `ipt${Date.now()}`;
    const out = probe(() => {
      execFileSync("ip", ["netns", "exec", box, "iptables-restore"], { input: v4 });
      execFileSync("ip", ["netns", "exec", box, "ip6tables-restore"], { input: v6 });
    }, token);
    assertWall(out);
    assert.equal(await udpArrived(token), false, "UDP got out");
  });

  test("iptables: the probes see the hole in a leaky ruleset (ACCEPT policies)", { skip: noIptables }, () => {
    const { v4, v6 } = iptablesSections(render("iptables", ["--proxy-address", proxy]));
    const leaky = (t: string) =>
      t.replaceAll(" DROP [0:0]", " ACCEPT [0:0]").replace(/^-A OUTPUT .*REJECT.*\n/gm, "");
    const out = probe(() => {
      execFileSync("ip", ["netns", "exec", box, "iptables-restore"], { input: leaky(v4) });
      execFileSync("ip", ["netns", "exec", box, "ip6tables-restore"], { input: leaky(v6) });
    }, `iptleak${Date.now()}`);
    assertLeak(out);
  });
});

describe("egress render: squid", () => {
  test("squid -k parse accepts the squid output for a policy with every kind of rule", () => {
    const policy = path.join(dir, "policy.yaml");
    writeFileSync(
      policy,
      [
        "egress:",
        '  allow: ["registry.npmjs.org", "*.github.com", "example.com:8443", "docs.example.com/v2/", "[10.0.0.0/8]:5432"]',
        '  deny: ["gist.github.com", "192.168.0.0/16"]',
        '  resolve: ["example.com=203.0.113.7"]',
        '  methods: { "*.github.com": ["GET", "HEAD", "CONNECT"] }',
        "",
      ].join("\n"),
    );
    // The rendered config names where its peek-only certificate and SNI helper go on a host
    // (/etc/squid/fourwall); here they go to a temp dir, as a user would install them.
    const files = path.join(dir, "squid-files");
    mkdirSync(files, { recursive: true });
    writePeekCertificate({ bumpCert: path.join(files, "bump.pem"), bumpKey: path.join(files, "bump.key") });
    writeFileSync(path.join(files, "no-sni.sh"), "#!/bin/sh\nwhile read -r l; do echo ERR; done\n", {
      mode: 0o755,
    });
    const conf = path.join(dir, "squid.conf");
    writeFileSync(conf, render("squid", ["-p", policy]).replaceAll("/etc/squid/fourwall", files));
    const r = spawnSync("squid", ["-k", "parse", "-f", conf], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const complaints = r.stderr
      .split("\n")
      .filter((l) => /WARNING|ERROR|FATAL/.test(l) && !/HTTP requires the use of Via/.test(l));
    assert.deepEqual(complaints, []);
  });

  test("a policy squid cannot enforce is refused (exit 2, the reason)", () => {
    const policy = path.join(dir, "ask.yaml");
    writeFileSync(policy, "egress:\n  unknown: ask\n");
    const r = spawnSync(process.execPath, [FOURWALL, "egress", "render", "--format", "squid", "-p", policy], {
      encoding: "utf8",
    });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown: ask needs the builtin proxy/);
  });
});
