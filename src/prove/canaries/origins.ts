/**
 * The host-side network canaries, all on loopback: the listed origin over HTTP and HTTPS (the box
 * must reach them through its proxy, by name), an unlisted host service (127.0.0.1 and [::1]) and
 * a UDP service. Each answers with the run's token, so a probe knows it really reached it.
 */
import dgram from "node:dgram";
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Server } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Teardown } from "../teardown.js";
import type { CanaryCertificate } from "./tls.js";

export interface Origins {
  httpPort: number;
  httpsPort: number | undefined;
  loopbackPort: number;
  loopback6Port: number | undefined;
  udpPort: number;
  /** Datagrams received so far that carry the token. */
  udpReceived(): number;
}

async function listen(server: Server, host: string, teardown: Teardown, what: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  teardown.add(what, () => {
    (server as http.Server).closeAllConnections?.();
    return new Promise((resolve) => server.close(() => resolve(undefined)));
  });
  return (server.address() as AddressInfo).port;
}

export async function startOrigins(
  token: string,
  tls: CanaryCertificate | undefined,
  teardown: Teardown,
): Promise<Origins> {
  // The origins echo the Host header and the TLS server name: the mismatch probes look for them.
  const listed = http.createServer((req, res) =>
    res.end(`fourwall-canary ${token} host=${req.headers.host} path=${req.url}\n`),
  );
  const secure = tls
    ? https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) =>
        res.end(
          `fourwall-canary ${token} sni=${(req.socket as TLSSocket).servername} host=${req.headers.host}\n`,
        ),
      )
    : undefined;
  const answer = (_req: http.IncomingMessage, res: http.ServerResponse) =>
    res.end(`fourwall-loopback ${token}\n`);
  const [httpPort, httpsPort, loopbackPort, loopback6Port] = await Promise.all([
    listen(listed, "127.0.0.1", teardown, "the HTTP canary"),
    secure ? listen(secure, "127.0.0.1", teardown, "the HTTPS canary") : undefined,
    listen(http.createServer(answer), "127.0.0.1", teardown, "the loopback canary"),
    // A host without IPv6 on lo has nothing for the box to reach there: the probe is skipped.
    listen(http.createServer(answer), "::1", teardown, "the IPv6 loopback canary").catch(() => undefined),
  ]);

  let received = 0;
  const udp = dgram.createSocket("udp4");
  udp.on("message", (message) => {
    if (message.includes(token)) received++;
  });
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(0, "127.0.0.1", () => resolve());
  });
  teardown.add("the UDP canary", () => udp.close());
  return {
    httpPort,
    httpsPort,
    loopbackPort,
    loopback6Port,
    udpPort: udp.address().port,
    udpReceived: () => received,
  };
}
