/**
 * A host unix socket the box must not reach, by path: in /run when prove runs as root (where
 * docker.sock and friends live), in the temp dir otherwise. It answers with the token. (Its
 * abstract-namespace sibling is served by the host process canary.)
 */
import { chmodSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Teardown } from "../teardown.js";

export function hostSocketPath(token: string, root: boolean): string {
  return path.join(root ? "/run" : os.tmpdir(), `fourwall-prove-${token}.sock`);
}

export async function startHostSocket(token: string, root: boolean, teardown: Teardown): Promise<string> {
  const socketPath = hostSocketPath(token, root);
  rmSync(socketPath, { force: true });
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.end(`fourwall-socket ${token}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  teardown.add(
    "the host socket canary",
    () => new Promise((resolve) => server.close(() => resolve(undefined))),
  );
  teardown.add("the host socket file", () => rmSync(socketPath, { force: true }));
  chmodSync(socketPath, 0o777); // anyone may connect: only hiding it can keep the box out
  return socketPath;
}
