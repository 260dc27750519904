/**
 * The "outside" test host: a network namespace of prove's own, joined to the host by a veth pair
 * in the benchmark range 198.18.0.0/15, with a tiny HTTP service (TCP 80) and a DNS-shaped UDP
 * service (53) in it. It stands for the internet without being it: a box that leaks reaches this
 * namespace and nothing beyond the machine. Needs root (network namespaces, veth); removed at exit.
 */
import { execFile, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import type { Teardown } from "../teardown.js";

const run = promisify(execFile);

export interface OutsideHost {
  ip: string;
  tcpPort: number;
  dnsPort: number;
  /** What reached it so far (connections, datagrams carrying the token). */
  seen(): { tcp: number; udp: number };
}

/** Names and addresses are derived from the run's token, so the reaper knows them in advance. */
export function outsideNames(token: string): { netns: string; hostIf: string; outsideIf: string } {
  const tag = token.slice(0, 6);
  return { netns: `fwprove-${token.slice(0, 8)}`, hostIf: `fwp${tag}h`, outsideIf: `fwp${tag}o` };
}

/** A /30 in 198.18.0.0/16 that no address or route of the host already uses. */
async function freeSubnet(): Promise<string> {
  const [addrs, routes] = await Promise.all([
    run("ip", ["-4", "-o", "addr", "show"]),
    run("ip", ["-4", "route", "show"]),
  ]);
  const used = `${addrs.stdout}\n${routes.stdout}`;
  for (let attempt = 0; attempt < 64; attempt++) {
    const third = Math.floor(Math.random() * 256);
    if (!used.includes(`198.18.${third}.`)) return `198.18.${third}.${4 * Math.floor(Math.random() * 63)}`;
  }
  throw new Error("no free /30 in 198.18.0.0/16");
}

// Runs inside the namespace: answers TCP with the token, counts datagrams, ends when prove does.
const LISTENER = `
import select, socket, sys
ip, token = sys.argv[1], sys.argv[2].encode()
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); tcp.bind((ip, 80)); tcp.listen(16)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind((ip, 53))
print("ready", flush=True)
while True:
    ready = select.select([tcp, udp, sys.stdin], [], [])[0]
    if sys.stdin in ready and not sys.stdin.readline():
        break
    if tcp in ready:
        conn, peer = tcp.accept()
        conn.settimeout(1)
        try:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nfourwall-outside " + token + b"\\n")
        except OSError:
            pass
        conn.close()
        print("tcp", peer[0], flush=True)
    if udp in ready:
        data, peer = udp.recvfrom(4096)
        print("udp" if token in data else "udp-other", peer[0], flush=True)
`;

export async function startOutsideHost(token: string, teardown: Teardown): Promise<OutsideHost> {
  const { netns, hostIf, outsideIf } = outsideNames(token);
  const base = await freeSubnet();
  const prefix = base.slice(0, base.lastIndexOf("."));
  const last = Number(base.slice(base.lastIndexOf(".") + 1));
  const hostIp = `${prefix}.${last + 1}`;
  const ip = `${prefix}.${last + 2}`;

  await run("ip", ["netns", "add", netns]);
  teardown.add(`network namespace ${netns}`, () => run("ip", ["netns", "del", netns]));
  await run("ip", ["link", "add", hostIf, "type", "veth", "peer", "name", outsideIf, "netns", netns]);
  // Deleting the namespace would take the pair too, but the kernel does that later, in the
  // background: delete the host's end now, which takes both ends at once.
  teardown.add(`the veth pair ${hostIf}`, () => run("ip", ["link", "del", hostIf]));
  await run("ip", ["addr", "add", `${hostIp}/30`, "dev", hostIf]);
  await run("ip", ["link", "set", hostIf, "up"]);
  await run("ip", ["-n", netns, "addr", "add", `${ip}/30`, "dev", outsideIf]);
  await run("ip", ["-n", netns, "link", "set", outsideIf, "up"]);

  const listener = spawn("ip", ["netns", "exec", netns, "/usr/bin/python3", "-c", LISTENER, ip, token], {
    stdio: ["pipe", "pipe", "ignore"],
  });
  listener.stdin.on("error", () => {});
  teardown.add("the outside host's listener", () => {
    listener.stdin.end();
    listener.kill();
  });
  const seen = { tcp: 0, udp: 0 };
  const lines = createInterface({ input: listener.stdout });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("its listener did not start within 5 s")), 5000);
    listener.once("error", reject);
    listener.once("exit", (code) => reject(new Error(`its listener exited (${code})`)));
    lines.on("line", (line) => {
      if (line === "ready") {
        clearTimeout(timer);
        resolve();
      } else if (line.startsWith("tcp ")) seen.tcp++;
      else if (line.startsWith("udp ")) seen.udp++;
    });
  });
  listener.removeAllListeners("exit");
  return { ip, tcpPort: 80, dnsPort: 53, seen: () => ({ ...seen }) };
}
