// Pure: the forwarder's edit of the first request head on a connection to squid — any
// Proxy-Authorization the box sent is dropped and fourwall's per-run one is put after the request line.

/** Longest request head the forwarder waits for (squid's own default limit is 64 KiB). */
export const MAX_REQUEST_HEAD = 64 * 1024;

/** The offset just past the head's empty line (CRLF or bare LF), or -1 while it is incomplete. */
export function requestHeadEnd(data: Buffer): number {
  let from = 0;
  // leading empty lines before the request line are allowed (RFC 9112 §2.2)
  while (data[from] === 0x0d || data[from] === 0x0a) from++;
  for (let i = data.indexOf(0x0a, from); i >= 0; i = data.indexOf(0x0a, i + 1)) {
    if (data[i + 1] === 0x0a) return i + 2;
    if (data[i + 1] === 0x0d && data[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

/** `head` (a whole request head, requestHeadEnd bytes) with `value` as its only Proxy-Authorization. */
export function withProxyAuthorization(head: Buffer, value: string): Buffer {
  const lines = head
    .toString("latin1")
    .replace(/^[\r\n]+/, "")
    .split("\n");
  const requestLine = lines.shift() ?? "";
  const kept: string[] = [];
  let dropping = false;
  for (const line of lines) {
    // a folded continuation line belongs to the header above it
    if (/^[ \t]/.test(line) && dropping) continue;
    dropping = /^proxy-authorization[ \t]*:/i.test(line);
    if (!dropping) kept.push(line);
  }
  return Buffer.from([requestLine, `Proxy-Authorization: ${value}\r`, ...kept].join("\n"), "latin1");
}
