/**
 * A host process the box must not see, which also serves the host's abstract unix socket.
 * Python, not Node: Node binds abstract names padded with NULs to the full sun_path, an address
 * other programs never use. Its argv carries a marker with the run's token (what the host-pids
 * probe looks for), and it ends when its stdin closes, so it goes with prove however prove ends.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { Teardown } from "../teardown.js";

export const hostProcessMarker = (token: string) => `fourwall-host-canary-${token}`;
export const abstractSocketName = (token: string) => `fourwall-prove-${token}`;

const HELPER = `
import select, socket, sys
name, token = sys.argv[1], sys.argv[2].encode()
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind("\\0" + name)
server.listen(8)
print("ready", flush=True)
while True:
    ready = select.select([server, sys.stdin], [], [])[0]
    if sys.stdin in ready and not sys.stdin.readline():
        break
    if server in ready:
        conn, _ = server.accept()
        try:
            conn.sendall(b"fourwall-socket " + token + b"\\n")
        except OSError:
            pass
        conn.close()
`;

export async function startHostProcess(python: string, token: string, teardown: Teardown): Promise<void> {
  const child = spawn(python, ["-c", HELPER, abstractSocketName(token), token, hostProcessMarker(token)], {
    stdio: ["pipe", "pipe", "ignore"],
  });
  child.stdin.on("error", () => {});
  teardown.add("the host process canary", () => {
    child.stdin.end();
    child.kill();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("it did not start within 5 s")), 5000);
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`it exited (${code})`)));
    createInterface({ input: child.stdout }).once("line", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  child.removeAllListeners("exit");
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
}
