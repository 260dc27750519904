/**
 * A private docker daemon for the tests, when none is running: its own data-root, exec-root,
 * socket and pidfile under one temp dir, no bridge and no iptables (the host's network is left
 * alone), runsc registered as fourwall needs it. `stop()` kills it and removes everything; it is
 * also called at process exit, so a failed test leaves nothing behind.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { which } from "../../src/core/paths.js";
import { DOCKERD_RUNSC_ARGS } from "../../src/runtimes/docker.js";

const SBIN = "/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:/usr/local/bin";

export interface Dockerd {
  /** The value for DOCKER_HOST. */
  host: string;
  stop(): Promise<void>;
}

/** Why a private daemon cannot be started here, or undefined. */
export function dockerdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "the docker runtime needs root (dockerd runs as root)";
  if (!which("dockerd", SBIN) || !existsSync("/usr/bin/docker"))
    return "docker.io is not installed (apt-get install docker.io, or npm run setup)";
  if (!which("runsc", SBIN)) return "runsc is not installed (apt-get install runsc)";
  return undefined;
}

function unmountUnder(dir: string): void {
  // overlay and shm mounts the daemon left (it should not, killed with SIGTERM): deepest first
  const mounts = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1] ?? "")
    .filter((m) => m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync("umount", ["-l", m], { stdio: "ignore" });
}

export async function startDockerd(): Promise<Dockerd> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "fourwall-dockerd-"));
  const sock = path.join(dir, "docker.sock");
  const config = {
    "data-root": path.join(dir, "data"),
    "exec-root": path.join(dir, "exec"),
    pidfile: path.join(dir, "docker.pid"),
    hosts: [`unix://${sock}`],
    bridge: "none",
    iptables: false,
    ip6tables: false,
    "ip-masq": false,
    runtimes: { runsc: { path: which("runsc", SBIN)!, runtimeArgs: DOCKERD_RUNSC_ARGS } },
  };
  writeFileSync(path.join(dir, "daemon.json"), JSON.stringify(config));
  const log = path.join(dir, "dockerd.log");
  const logFd = openSync(log, "a");
  const child: ChildProcess = spawn(
    which("dockerd", SBIN)!,
    ["--config-file", path.join(dir, "daemon.json")],
    // its managed containerd keeps its state under exec-root
    { stdio: ["ignore", logFd, logFd], env: { PATH: SBIN } },
  );
  closeSync(logFd);
  let exited = false;
  child.once("exit", () => (exited = true));
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      child.kill("SIGTERM");
      for (let i = 0; i < 100 && !exited; i++) await sleep(50);
      if (!exited) child.kill("SIGKILL");
    }
    // the containerd it started lives in its own process: gone with dockerd, or killed here
    const pid = Number(readFileOr(path.join(dir, "exec", "containerd", "containerd.pid")));
    if (pid > 0) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", () => {
    if (!stopped) {
      try {
        child.kill("SIGKILL");
      } catch {}
      unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  const host = `unix://${sock}`;
  for (const end = Date.now() + 90_000; Date.now() < end; await sleep(50)) {
    if (exited) break;
    const r = spawnSync("/usr/bin/docker", ["version", "--format", "{{.Server.Version}}"], {
      env: { PATH: SBIN, DOCKER_HOST: host },
      encoding: "utf8",
      timeout: 5000,
    });
    if (r.status === 0) return { host, stop };
  }
  const why = readFileOr(log) || "dockerd did not answer within 90 s";
  await stop();
  throw new Error(`private dockerd: ${why}`);
}

function readFileOr(p: string): string {
  try {
    return readFileSync(p, "utf8").trim();
  } catch {
    return "";
  }
}
