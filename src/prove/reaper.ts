import { spawn } from "node:child_process";

export interface Reaper {
  /** Also kill this process group if prove dies (a wrapper under test and all it started). */
  watchGroup(pgid: number): void;
  /** prove is cleaning up itself: the reaper leaves without doing anything. */
  release(): void;
}

/**
 * If prove is killed outright (SIGKILL, OOM), its exit handlers never run. The reaper is a tiny
 * shell in its own session that reads a pipe from prove: process groups to kill, then "ok" when
 * prove has cleaned up itself. If the pipe closes without "ok", prove died: the reaper kills the
 * groups and runs the cleanup script (the network namespace, the throwaway home, the socket
 * files), which is written up front from names prove chose itself.
 */
export function armReaper(cleanupScript: string): Reaper {
  const script = [
    "trap '' INT TERM HUP QUIT",
    "groups=",
    "while IFS= read -r line; do",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion, not a template
    '  case $line in ok) exit 0 ;; group\\ *) groups="$groups ${line#group }" ;; esac',
    "done",
    'for g in $groups; do kill -KILL -- "-$g" 2>/dev/null; done',
    cleanupScript,
  ].join("\n");
  const reaper = spawn("/bin/sh", ["-c", script, "fourwall-prove-reaper"], {
    detached: true,
    stdio: ["pipe", "ignore", "ignore"],
  });
  reaper.unref();
  reaper.on("error", () => {}); // no /bin/sh: there is nothing more prove could do about it
  reaper.stdin?.on("error", () => {});
  // The pipe must not keep prove's event loop alive.
  (reaper.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return {
    watchGroup(pgid) {
      reaper.stdin?.write(`group ${pgid}\n`);
    },
    release() {
      reaper.stdin?.end("ok\n");
    },
  };
}

/** Single-quotes a word for /bin/sh. */
