/**
 * `fourwall run [FLAGS] -- true` as a bench subject, launched the two ways users launch it: as root
 * in a fresh temp workdir, or as uid 65534 through setpriv with a workdir and a HOME it owns
 * (fourwall plans its secret masks from HOME; root's /root is not the user's).
 */
import path from "node:path";
import type { BenchContext } from "./group.js";
import type { Subject } from "./measure.js";

/** nobody/nogroup: an ordinary uid that exists on every Debian host. */
export const USER_ID = 65534;

export function fourwallRun(
  ctx: BenchContext,
  options: {
    id: string;
    as: "root" | "user";
    flags?: string[];
    label?: string;
    /** The workdir (default: a fresh temp dir, owned by uid 65534 for "user"). */
    workdir?: string;
    env?: NodeJS.ProcessEnv;
    skip?: string;
  },
): Subject {
  const flags = options.flags ?? [];
  const fourwall = path.join(ctx.repoRoot, "bin", "fourwall.js");
  const run = (workdir: string) => [process.execPath, fourwall, "run", ...flags, "-w", workdir, "--", "true"];
  const shownFlags = flags.length > 0 ? `${flags.join(" ")} ` : "";
  const what = `fourwall run ${shownFlags}-- true`;
  if (options.as === "root") {
    const workdir = options.workdir ?? ctx.tempDir();
    return {
      id: options.id,
      label: options.label ?? `${what} (as root)`,
      command: run(workdir),
      shown: `node bin/fourwall.js run ${shownFlags}-w <tmp workdir> -- true`,
      cwd: workdir,
      ...(options.env ? { env: options.env } : {}),
      skip: options.skip ?? (ctx.isRoot ? undefined : "the bench is not running as root"),
    };
  }
  const owner = { uid: USER_ID, gid: USER_ID };
  const workdir = options.workdir ?? ctx.tempDir(owner);
  const asUser = ctx.isRoot
    ? ["setpriv", "--reuid", String(USER_ID), "--regid", String(USER_ID), "--clear-groups"]
    : [];
  const env = ctx.isRoot
    ? { ...(options.env ?? process.env), HOME: ctx.tempDir(owner), USER: "nobody", LOGNAME: "nobody" }
    : (options.env ?? process.env);
  return {
    id: options.id,
    label: options.label ?? `${what} (as uid ${ctx.isRoot ? USER_ID : process.getuid!()})`,
    command: [...asUser, ...run(workdir)],
    shown: [...asUser, `node bin/fourwall.js run ${shownFlags}-w <workdir owned by the uid> -- true`].join(
      " ",
    ),
    cwd: workdir,
    env,
    ...(options.skip ? { skip: options.skip } : {}),
  };
}
