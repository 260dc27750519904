import { closeSync, constants, fstatSync, ftruncateSync, openSync, statSync, writeSync } from "node:fs";
import path from "node:path";

// Files fourwall writes at a path its caller names (--audit, --junit, k8s --out, bench results): a
// link or a file another user planted there (in /tmp, say) must not redirect the write into a file
// the caller (often root) can write but did not name. So: never through a symlink at the last
// component (O_NOFOLLOW), and in a sticky world-writable directory never into a file owned by someone
// other than the caller or the directory's owner (the kernel's protected_regular, whatever the
// host's sysctl says). Checked before a byte is written or truncated.

export class OutputFileError extends Error {
  override name = "OutputFileError";
}

/** Opens `file` for writing ("append" keeps what is there; "replace" empties it once checked). */
export function openOutputFile(file: string, how: "append" | "replace", mode = 0o600): number {
  const flags =
    constants.O_WRONLY |
    constants.O_CREAT |
    constants.O_NOFOLLOW |
    (how === "append" ? constants.O_APPEND : 0);
  let fd: number;
  try {
    fd = openSync(file, flags, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ELOOP")
      throw new OutputFileError(
        `${file} is a symbolic link: fourwall does not write through one (it may point at a file you did not mean); name the real file`,
      );
    throw error;
  }
  try {
    refusePlanted(file, fd);
    if (how === "replace") ftruncateSync(fd, 0);
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** Writes `text` as the whole content of `file`, checked as openOutputFile does. */
export function writeOutputFile(file: string, text: string | Uint8Array, mode = 0o644): void {
  const fd = openOutputFile(file, "replace", mode);
  try {
    const data = typeof text === "string" ? Buffer.from(text) : text;
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
  } finally {
    closeSync(fd);
  }
}

function refusePlanted(file: string, fd: number): void {
  const st = fstatSync(fd);
  if (!st.isFile() && !st.isCharacterDevice() && !st.isFIFO())
    throw new OutputFileError(`${file} is not a regular file`);
  const dir = statSync(path.dirname(file));
  const me = process.geteuid?.() ?? st.uid;
  const shared = (dir.mode & 0o1000) !== 0 && (dir.mode & 0o002) !== 0;
  if (shared && st.uid !== me && st.uid !== dir.uid)
    throw new OutputFileError(
      `${file} belongs to uid ${st.uid}, in a directory anyone can write (${path.dirname(file)}): another user may have planted it; remove it or name a path of your own`,
    );
}
