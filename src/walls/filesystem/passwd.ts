import type { Mount } from "./mounts.js";

/**
 * The box's /etc/passwd and /etc/group: root, nobody and the box's own user, nothing of the host's
 * user list. As root the box runs as a uid the host has no entry for (70000): without one,
 * getpwuid() fails (python's pwd, ssh, whoami). Generated, read-only, in both launch modes.
 */
export function identityFiles(box: { uid: number; gid: number; name: string; home: string }): Mount[] {
  const name = /^[a-z_][a-z0-9_-]{0,31}$/.test(box.name) ? box.name : "box";
  const users = [
    "root:x:0:0:root:/root:/usr/sbin/nologin",
    ...(box.uid === 0 || box.uid === 65534
      ? []
      : [`${name}:x:${box.uid}:${box.gid}:fourwall box:${box.home}:/bin/sh`]),
    `nobody:x:65534:65534:nobody:${box.uid === 65534 ? box.home : "/nonexistent"}:/usr/sbin/nologin`,
  ];
  const groups = [
    "root:x:0:",
    ...(box.gid === 0 || box.gid === 65534 ? [] : [`${name}:x:${box.gid}:`]),
    "nogroup:x:65534:",
  ];
  const why = "the box's own user list: root, nobody and the box user";
  return [
    { type: "file", name: "passwd", target: "/etc/passwd", content: `${users.join("\n")}\n`, why },
    { type: "file", name: "group", target: "/etc/group", content: `${groups.join("\n")}\n`, why },
  ];
}
