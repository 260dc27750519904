import { isUnder } from "../../core/paths.js";
import type { HostView } from "../filesystem/index.js";

export interface Idmap {
  path: string;
  ownerUid: number;
  ownerGid: number;
}

/** Who the box runs as on the host, and how it gets to write where it must. */
export type Identity =
  | { mode: "user"; uid: number; gid: number }
  | {
      mode: "root";
      uid: number;
      gid: number;
      idmaps: Idmap[];
      /**
       * The policy named the uid (isolation.rootModeUid): every box runs as it. Otherwise the uid
       * here is the range's first and the supervisor gives each box one of its own (uids.ts).
       */
      pinned?: boolean;
    };

/** Root-launched boxes get a uid of their own from [BOX_UID_FIRST, BOX_UID_FIRST + BOX_UID_COUNT). */
export const BOX_UID_FIRST = 70000;
export const BOX_UID_COUNT = 1000;

export class IdentityError extends Error {}

/**
 * Launched by an ordinary user, the box is that user (bwrap maps nothing else). Launched by root,
 * the box must not be uid 0 — a uid-0 box without capabilities still owns every root-owned file —
 * so it runs as `boxUid`, and each path it must reach as the owner (HOME, to read it; the
 * writable paths, to write them) gets an idmapped mount that shows the owner's files as the box's.
 */
export function planIdentity(options: {
  hostUid: number;
  hostGid: number;
  /** isolation.rootModeUid, when the policy pins it. */
  boxUid: number | undefined;
  home: string;
  writable: string[];
  host: HostView;
}): Identity {
  const { hostUid, hostGid, host } = options;
  const boxUid = options.boxUid ?? BOX_UID_FIRST;
  if (hostUid !== 0) return { mode: "user", uid: hostUid, gid: hostGid };
  const idmaps: Idmap[] = [];
  const wanted = [options.home !== "/" ? options.home : undefined, ...options.writable].filter(
    (p): p is string => p !== undefined,
  );
  // Outermost first: a path inside an idmapped one is covered by it when the owner is the same.
  for (const p of [...new Set(wanted)].sort((a, b) => a.length - b.length)) {
    const owner = host.owner(p);
    if (!owner || owner.uid === boxUid) continue;
    const outer = idmaps.find((m) => isUnder(p, m.path));
    if (outer) {
      if (outer.ownerUid === owner.uid) continue;
      throw new IdentityError(
        `${p} is owned by uid ${owner.uid} but lies inside ${outer.path} (uid ${outer.ownerUid}); run fourwall as uid ${owner.uid}`,
      );
    }
    idmaps.push({ path: p, ownerUid: owner.uid, ownerGid: owner.gid });
  }
  return { mode: "root", uid: boxUid, gid: boxUid, idmaps, pinned: options.boxUid !== undefined };
}
