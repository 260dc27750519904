import { shellWord } from "../../../core/shell.js";
import type { Node } from "./parser.js";

/** Backslash removal in an unquoted word: `\r\m` is `rm`. */
function unescapeUnquoted(text: string): string {
  return text.replace(/\\(\n|.)/g, (_, c: string) => (c === "\n" ? "" : c));
}

/** Inside double quotes only \$ \` \" \\ and a newline are escapes. */
function unescapeDouble(text: string): string {
  return text.replace(/\\([$`"\\\n])/g, (_, c: string) => (c === "\n" ? "" : c));
}

/** $'...' (ANSI-C quoting): enough of it that `$'\x72m'` reads as `rm`. */
export function decodeAnsiC(body: string): string {
  const simple: Record<string, string> = {
    n: "\n",
    t: "\t",
    r: "\r",
    a: "\x07",
    b: "\b",
    e: "\x1b",
    E: "\x1b",
    f: "\f",
    v: "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
  };
  return body.replace(
    /\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)/g,
    (_, esc: string) => {
      if (esc[0] === "x" || esc[0] === "u" || esc[0] === "U")
        return String.fromCodePoint(Number.parseInt(esc.slice(1), 16));
      if (/^[0-7]/.test(esc)) return String.fromCharCode(Number.parseInt(esc, 8));
      if (esc[0] === "c") return String.fromCharCode(esc.charCodeAt(1) & 0x1f);
      return simple[esc] ?? `\\${esc}`;
    },
  );
}

/**
 * The word the shell would pass after quote removal, or undefined when it depends on run-time
 * values (a variable, a command substitution, arithmetic). Globs and braces are kept as typed.
 */
export function staticText(node: Node): string | undefined {
  switch (node.type) {
    case "word":
    case "number":
      return unescapeUnquoted(node.text);
    case "raw_string":
      return node.text.slice(1, -1);
    case "ansi_c_string":
      return decodeAnsiC(node.text.slice(2, -1));
    case "string":
    case "translated_string": {
      let out = "";
      for (const child of node.namedChildren) {
        if (!child) continue;
        if (child.type !== "string_content") return undefined;
        out += unescapeDouble(child.text);
      }
      // Quotes and content only: take the text between the quotes (keeps spacing exactly).
      if (node.namedChildren.length === 0) return "";
      return out;
    }
    case "concatenation": {
      let out = "";
      for (const child of node.children) {
        if (!child) continue;
        const part = staticText(child);
        if (part === undefined) return undefined;
        out += part;
      }
      return out;
    }
    case "brace_expression":
      return node.text;
    default:
      return undefined;
  }
}

/** Shell-quotes argv into one line the parser reads back as the same words. */
export function quoteArgv(argv: readonly string[]): string {
  return argv.map(shellWord).join(" ");
}
