import { WallError } from "../core/errors.js";

/**
 * A persistent box's name becomes a directory name under the user's state dir (and is taken by up,
 * exec, down, ls, the daemon and bin/fourwall's shell fast path): it must be a plain name, never a
 * path. No "/", no leading "." (so no "." or ".."), no leading "-" (never an option), a sane charset
 * and length. bin/fourwall's sh check is the same rule spelled in sh (test/unit/box-name.test.ts
 * holds the two together).
 */
export const BOX_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export const BOX_NAME_RULE = "1 to 63 letters, digits, . _ -, starting with a letter or digit";

export const isBoxName = (name: unknown): name is string => typeof name === "string" && BOX_NAME.test(name);

/** `name` if it is a valid box name; else a WallError (exit 125) naming the rule. */
export function checkBoxName(name: unknown): string {
  if (isBoxName(name)) return name;
  throw new WallError(
    "isolation",
    `bad box name ${JSON.stringify(name)}`,
    `name the box with ${BOX_NAME_RULE}`,
  );
}
