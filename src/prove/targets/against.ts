/**
 * The probe program under another wrapper instead of a fourwall box: `sh -c` (no box at all), the
 * peer srt, docker, a deliberately weakened fourwall box. The wrapper is a command prefix that runs
 * one shell command string, as `sh -c` does; one that ends in `--` takes a command and its
 * arguments instead, and gets `/bin/sh -c <string>`.
 */
import { spawn } from "node:child_process";
import { shellQuote } from "../../core/shell.js";

export interface WrapperOutcome {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** The shell script that runs `probeCommand` under the wrapper (the command arrives as "$1"). */
export function wrapperScript(wrapper: string): string {
  const takesArgv = /(^|\s)--$/.test(wrapper.trim());
  return `${wrapper.trim()} ${takesArgv ? '/bin/sh -c "$1"' : '"$1"'}`;
}

export function probeCommand(python: string, probe: string, config: string): string {
  return `exec ${shellQuote(python)} ${shellQuote(probe)} ${shellQuote(config)}`;
}

export function runUnderWrapper(
  wrapper: string,
  command: string,
  options: {
    cwd: string;
    env: Record<string, string>;
    timeoutMs: number;
    onStarted?: (pgid: number) => void;
  },
): Promise<WrapperOutcome> {
  return new Promise((resolve) => {
    // Its own process group, so a timeout takes the wrapper and everything it started.
    const child = spawn("/bin/sh", ["-c", wrapperScript(wrapper), "fourwall-prove", command], {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    if (child.pid !== undefined) options.onStarted?.(child.pid);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {}
    }, options.timeoutMs);
    child.on("error", (error) => {
      stderr += `${error.message}\n`;
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ exitCode: code, stdout, stderr, timedOut });
    });
  });
}
