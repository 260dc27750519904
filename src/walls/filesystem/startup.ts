import path from "node:path";
import type { HostView } from "./host-view.js";

/**
 * What a placeholder for a missing shell start-up file holds, so that standing it does not change
 * what the host's own shells run while the box is up. bash's login shell reads the FIRST of
 * .bash_profile, .bash_login, .profile: an empty .bash_profile placeholder would shadow the user's
 * .profile, so it sources the file bash would have read instead. Every other one is read on its
 * own, and empty is the same as missing.
 */
export function loginPlaceholder(host: HostView, home: string, name: string): string {
  if (name !== ".bash_profile") return "";
  for (const next of [".bash_login", ".profile"]) {
    if (host.kind(path.join(home, next)) !== "missing")
      return `# fourwall placeholder: bash would read ~/${next}\n. "$HOME/${next}"\n`;
  }
  return "";
}
