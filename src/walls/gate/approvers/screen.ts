import pc from "picocolors";
import type { RequestDisplay } from "./render.js";

/**
 * A targeted reset of what a box can leave on a terminal to disguise a question drawn after it,
 * without clearing the user's scrollback:
 *   CAN, ST          end any escape/OSC/DCS string the box left open (it would swallow the prompt)
 *   ESC[r  ESC[?6l   no scroll region, no origin mode (the prompt is not squeezed into a corner)
 *   ESC[?1049l       the main screen, not an alternate one the box can repaint
 *   ESC[0m ESC(B SI  plain attributes (no hidden/inverse text), the ASCII charset (no line drawing)
 *   ESC[?25h ESC[?7h ESC[4l  a visible cursor, line wrap on, insert mode off
 *   OSC 104/110/111  the default palette and colours (no yellow-on-yellow)
 *   ESC[?9l ESC[?1000l..1016l  no mouse reports, no focus reports (input the box did not type
 *                    but could make the terminal send while the question waits)
 *   ESC SP F         7-bit controls: a report starts with ESC (read as "no"), never a bare C1 byte
 *   ESC[=0;1u ESC[>4m  no kitty keyboard flags, no modifyOtherKeys (plain keys for y and n)
 */
export const TERMINAL_RESET =
  "\x18\x1b\\\x1b[r\x1b[?6l\x1b[?1049l\x1b[0m\x1b(B\x0f\x1b[?25h\x1b[?7h\x1b[4l\x1b]104\x07\x1b]110\x07\x1b]111\x07" +
  "\x1b[?9l\x1b[?1000l\x1b[?1001l\x1b[?1002l\x1b[?1003l\x1b[?1004l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?1016l" +
  "\x1b F\x1b[=0;1u\x1b[>4m";

/**
 * The whole prompt as written to the terminal (pure): the reset, then the cursor to the last row
 * and one newline per row, so whatever the box drew scrolls into the scrollback (kept) and the
 * question starts on a clean screen; then the question, each line cleared to its end.
 */
export function promptScreen(
  display: RequestDisplay,
  keys: string,
  rows: number,
  question = "allow?",
): string {
  return `${TERMINAL_RESET}\x1b[${rows};1H${"\r\n".repeat(rows)}\x1b[H${promptLines(display, keys, question)}`;
}

const promptLines = (display: RequestDisplay, keys: string, question: string): string =>
  [
    pc.yellow(`┌ ${display.title}`),
    ...display.lines.map(([k, v]) => `${pc.yellow("│")} ${pc.dim(k.padEnd(8))} ${v}`),
    `${pc.yellow("└")} ${pc.bold(question)} ${keys} ${pc.dim("(no answer = no)")} `,
  ]
    .map((l) => `${l}\x1b[K`)
    .join("\r\n");

/**
 * The next screen of the same question (a file-by-file review): the reset again, then the
 * screen cleared (the box's output is still held: nothing of it is on the screen to keep).
 */
export function redrawScreen(display: RequestDisplay, keys: string, question: string): string {
  return `${TERMINAL_RESET}\x1b[H\x1b[2J${promptLines(display, keys, question)}`;
}

/** Rows a display takes on a terminal `cols` wide (each line wraps; one more for the question). */
function rowsTaken(display: RequestDisplay, cols: number): number {
  const width = (text: string) => [...text].length;
  const rowsOf = (text: string) => Math.max(1, Math.ceil(width(text) / Math.max(20, cols)));
  return (
    rowsOf(`┌ ${display.title}`) +
    display.lines.reduce((n, [k, v]) => n + rowsOf(`│ ${k.padEnd(8)} ${v}`), 0) +
    1
  );
}

/**
 * The request's display with as many listed changes as fit on the screen with the question (the
 * others counted on a line of their own), so the title, the list and "allow?" are all in view.
 */
export function fitDisplay(
  describe: (maxItems: number) => RequestDisplay,
  rows: number,
  cols: number,
): RequestDisplay {
  let display = describe(20);
  for (let items = 19; items >= 1 && rowsTaken(display, cols) > rows - 1; items--) display = describe(items);
  return display;
}
