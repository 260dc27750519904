import { isDeepStrictEqual } from "node:util";
import { parse, stringify } from "smol-toml";

/**
 * Codex's config.toml edited as text, not re-serialised: a user's comments, order and layout stay,
 * and the dry-run diff shows only the lines that change. Only `command` and `args` of a
 * `[mcp_servers.NAME]` table are replaced; a layout this does not recognise (inline tables, dotted
 * keys) falls back to re-serialising the whole file, which is still correct. Pure.
 */

type Table = Record<string, unknown>;

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A TOML value as one line (JSON strings are valid TOML basic strings). */
const tomlValue = (v: string | string[]): string =>
  Array.isArray(v) ? `[${v.map((x) => JSON.stringify(x)).join(", ")}]` : JSON.stringify(v);

/** Lines [start, end) holding the key's value (a multi-line array spans several), or undefined. */
function keyRange(lines: string[], from: number, to: number, key: string): [number, number] | undefined {
  const re = new RegExp(`^\\s*${escapeRe(key)}\\s*=`);
  for (let i = from; i < to; i++) {
    if (!re.test(lines[i]!)) continue;
    for (let j = i + 1; j <= to; j++) {
      try {
        parse(lines.slice(i, j).join("\n"));
        return [i, j];
      } catch {
        // the value goes on (a multi-line array): take one more line
      }
    }
    return undefined;
  }
  return undefined;
}

/** The [mcp_servers.NAME] table's body lines [start, end), or undefined. */
function tableRange(lines: string[], name: string): [number, number] | undefined {
  const quoted = `(?:${escapeRe(name)}|"${escapeRe(name)}"|'${escapeRe(name)}')`;
  const header = new RegExp(`^\\s*\\[\\s*mcp_servers\\s*\\.\\s*${quoted}\\s*\\]\\s*(#.*)?$`);
  const start = lines.findIndex((l) => header.test(l));
  if (start < 0) return undefined;
  let end = start + 1;
  while (end < lines.length && !/^\s*\[/.test(lines[end]!)) end++;
  return [start + 1, end];
}

/** One server's command and args replaced in place; undefined when the layout is not recognised. */
function editServer(text: string, name: string, entry: Table): string | undefined {
  const lines = text.split("\n");
  const table = tableRange(lines, name);
  if (!table) return undefined;
  const command = keyRange(lines, table[0], table[1], "command");
  if (!command) return undefined;
  const args = keyRange(lines, table[0], table[1], "args");
  const indent = /^\s*/.exec(lines[command[0]]!)![0];
  const newArgs = entry.args as string[] | undefined;
  const edits: Array<{ range: [number, number]; lines: string[] }> = [
    { range: command, lines: [`${indent}command = ${tomlValue(entry.command as string)}`] },
  ];
  if (args) edits.push({ range: args, lines: newArgs ? [`${indent}args = ${tomlValue(newArgs)}`] : [] });
  else if (newArgs)
    edits.push({ range: [command[1], command[1]], lines: [`${indent}args = ${tomlValue(newArgs)}`] });
  // bottom up, so earlier ranges stay where they are
  edits.sort((a, b) => b.range[0] - a.range[0]);
  for (const e of edits) lines.splice(e.range[0], e.range[1] - e.range[0], ...e.lines);
  return lines.join("\n");
}

/** Plain data (no prototypes, dates as text), so two documents compare by content only. */
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

export function parseToml(text: string): Table {
  return parse(text) as Table;
}

/**
 * `text` with the given servers' entries replaced by `entries` (each a full entry). Checked by
 * parsing the result: if the text edit did not produce exactly the wanted document, the whole
 * document is re-serialised instead.
 */
export function replaceTomlServers(text: string, entries: Record<string, Table>): string {
  const doc = parseToml(text);
  const servers = { ...((doc.mcp_servers as Table | undefined) ?? {}) };
  for (const [name, entry] of Object.entries(entries)) servers[name] = entry;
  const wanted = { ...doc, mcp_servers: servers };
  let edited: string | undefined = text;
  for (const [name, entry] of Object.entries(entries)) {
    edited = edited === undefined ? undefined : editServer(edited, name, entry);
  }
  if (edited !== undefined) {
    try {
      if (isDeepStrictEqual(plain(parseToml(edited)), plain(wanted))) return edited;
    } catch {
      // fall through: re-serialise
    }
  }
  return `${stringify(wanted)}\n`;
}
