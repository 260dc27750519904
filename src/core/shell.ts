// One way to put data into a shell script: every path, name and argument fourwall writes into sh is a
// single-quoted word, never a pattern or code.

/** `word` as one single-quoted sh word (globs, `$`, backslashes and newlines stay literal). */
export const shellQuote = (word: string): string => `'${word.replaceAll("'", `'\\''`)}'`;

/** Words as a sh command line. */
export const shellLine = (words: readonly string[]): string => words.map(shellQuote).join(" ");

/** `word` as it reads best in a shown command line: bare when it holds nothing sh would interpret. */
export const shellWord = (word: string): string =>
  /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : shellQuote(word);
