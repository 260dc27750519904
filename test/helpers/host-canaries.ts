import { chmodSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";

/**
 * What the box must not reach on the host, for the wall tests of every runtime: a loopback HTTP
 * service, an HTTP origin (allowed through the proxy when a test pins it), and world-connectable
 * unix sockets in /run and /tmp. All on this machine; removed at the end, even on an early exit.
 */
export interface HostCanaries {
  loopbackPort: number;
  originPort: number;
  socketPaths: string[];
  close(): void;
}

const listen = (server: net.Server, where: { port: number; host: string } | string) =>
  new Promise<void>((resolve) =>
    typeof where === "string"
      ? server.listen(where, resolve)
      : server.listen(where.port, where.host, resolve),
  );

export async function startHostCanaries(tag: string): Promise<HostCanaries> {
  const socketPaths = [
    `/run/fourwall-${tag}-${process.pid}.sock`,
    `/tmp/fourwall-${tag}-${process.pid}.sock`,
  ];
  const removeSockets = () => {
    for (const p of socketPaths) rmSync(p, { force: true });
  };
  process.on("exit", removeSockets); // even when a timeout ends the file before `after` hooks
  const loopback = http.createServer((_q, s) => s.end("loopback-canary"));
  await listen(loopback, { port: 0, host: "127.0.0.1" });
  const origin = http.createServer((req, res) => res.end(`origin-body ${req.url}`));
  await listen(origin, { port: 0, host: "127.0.0.1" });
  removeSockets();
  const sockets: net.Server[] = [];
  for (const p of socketPaths) {
    const server = net.createServer((c) => {
      c.on("error", () => {});
      c.end("socket-canary");
    });
    await listen(server, p);
    chmodSync(p, 0o777);
    sockets.push(server);
  }
  return {
    loopbackPort: (loopback.address() as net.AddressInfo).port,
    originPort: (origin.address() as net.AddressInfo).port,
    socketPaths,
    close() {
      loopback.close();
      origin.close();
      for (const s of sockets) s.close();
      removeSockets();
    },
  };
}
