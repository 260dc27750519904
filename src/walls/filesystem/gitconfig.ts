/**
 * The box's copy of the user's global git config: what git needs to work (user.name, aliases,
 * core settings) without what hands out credentials or pulls in other files. Line-based: a
 * dropped section is dropped whole, up to the next section header.
 */

/** Sections dropped whole: credential helpers, files included from elsewhere, per-URL headers and rewrites that carry tokens. */
const DROPPED_SECTIONS = ["credential", "include", "includeif", "http", "url", "sendemail"];
/** Keys dropped in any section: their values are secrets by name. */
const SECRET_KEY = /(token|password|passwd|secret|extraheader)/i;

export function sanitiseGitConfig(text: string): string {
  const out: string[] = [];
  let dropping = false;
  for (const line of text.split("\n")) {
    const header = line.match(/^\s*\[\s*([A-Za-z0-9.-]+)/);
    if (header) {
      const section = header[1]!.toLowerCase().split(".")[0]!;
      dropping = DROPPED_SECTIONS.includes(section);
      // `[section] key = value` on one line: the key part is judged below with the header kept
    }
    if (dropping) continue;
    const key = line.replace(/^\s*\[[^\]]*\]/, "").match(/^\s*([A-Za-z][A-Za-z0-9-]*)\s*(=|$)/);
    if (key && SECRET_KEY.test(key[1]!)) continue;
    out.push(line);
  }
  return out.join("\n");
}

/**
 * The git config the box sees as ~/.gitconfig: the sanitised user config, then `safe.directory=*`
 * (in root mode a repository outside the idmapped paths belongs to another uid than the box's;
 * inside the box git's ownership check protects nothing: everything there runs boxed anyway).
 * No `safe.bareRepository = explicit` either, for the same reason: a bare repository the box makes
 * is a danger to the host's git, which this file does not configure (the gate holds such a
 * directory as a new repository; docs/gate.md), and in the box it would only break `git clone
 * --bare` work.
 */
export const boxGitConfig = (text: string) =>
  `${sanitiseGitConfig(text).trimEnd()}\n# fourwall: credential helpers, includes and tokens removed\n[safe]\n\tdirectory = *\n`;

/**
 * Per-host headers appended to the box's git config (after sanitising, so the user's own are gone):
 * credentials fourwall's proxy swaps (a sentinel, never a secret), each scoped to https://HOST/.
 */
export function gitHeaderSections(entries: Array<{ host: string; header: string }>): string {
  return entries
    .map(
      (e) =>
        `# fourwall: a sentinel the egress proxy swaps for the real token (docs/credentials.md)\n[http "https://${e.host}/"]\n\textraHeader = ${e.header}\n`,
    )
    .join("");
}
