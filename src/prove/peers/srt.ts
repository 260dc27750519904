/**
 * The peer srt (@anthropic-ai/sandbox-runtime) with a policy equivalent to a fourwall policy, for
 * `fourwall prove --against 'srt -s {srt-settings} -c'`: the same secrets unreadable, the same
 * writable paths, the same persistence paths read-only, the same hosts allowed, plus the canaries.
 *
 * srt cannot pin a name to an address (fourwall's --resolve), so its listed canary is `localhost`,
 * allowed together with the 127.0.0.1 literal on the canary's ports (srt's documented way to allow
 * a local server). srt takes an allowed `localhost` as consent to reach loopback, so its guard
 * probe needs another name that resolves to loopback: an alias from /etc/hosts, if there is one.
 */
import path from "node:path";
import type { Policy } from "../../policy/schema.js";
import {
  expandPath,
  HOME_SECRETS,
  PERSISTENCE_PATHS,
  SYSTEM_SECRETS,
  WORKDIR_SECRETS,
} from "../../walls/filesystem/index.js";
import type { Canaries } from "../canaries/index.js";
import { type CanaryNames, loopbackAliases } from "../canaries/names.js";
import type { ProveLayout } from "../layout.js";

export const SRT_PLACEHOLDER = "{srt-settings}";

/** The names the probes use when srt is the wrapper (`hostsFile`: the text of /etc/hosts). */
export function srtNames(names: CanaryNames, hostsFile: string): CanaryNames {
  // srt accepts only names with a dot in its allow list.
  const alias = loopbackAliases(hostsFile).find((name) => name.includes("."));
  return {
    ...names,
    listed: "localhost",
    guard: alias ?? {
      skip: "no dotted name but localhost resolves to loopback in /etc/hosts, and srt takes an allowed localhost as consent",
    },
  };
}

export function srtSettings(
  policy: Policy,
  layout: ProveLayout,
  canaries: Canaries,
): Record<string, unknown> {
  const where = (p: string, field: string) =>
    expandPath(p, { home: layout.home, workdir: layout.workdir, field });
  const origins = canaries.origins;
  const canaryDomains = origins
    ? [
        ...[origins.httpPort, origins.httpsPort]
          .filter((p): p is number => p !== undefined)
          .flatMap((port) => [`localhost:${port}`, `127.0.0.1:${port}`]),
        ...(typeof canaries.names.guard === "string"
          ? [`${canaries.names.guard}:${origins.loopbackPort}`]
          : []),
      ]
    : [];
  return {
    network: {
      allowedDomains: [...policy.egress.allow, ...canaryDomains],
      deniedDomains: policy.egress.deny,
    },
    filesystem: {
      denyRead: [
        ...HOME_SECRETS.map((s) => path.join(layout.home, s)),
        ...SYSTEM_SECRETS,
        ...(policy.filesystem.allowDotEnv ? [] : WORKDIR_SECRETS.map((s) => path.join(layout.workdir, s))),
        ...policy.filesystem.hide.map((s, i) => where(s, `filesystem.hide[${i}]`)),
      ],
      allowWrite: [
        layout.workdir,
        ...policy.filesystem.writable.map((s, i) => where(s, `filesystem.writable[${i}]`)),
        // an agent preset's state dirs are writable too (fourwall also makes them on first use)
        ...policy.filesystem.state.map((s, i) => where(s.replace(/\/+$/, ""), `filesystem.state[${i}]`)),
      ],
      denyWrite: PERSISTENCE_PATHS.filter((p) => !policy.filesystem.allowPersistence.includes(p.path)).map(
        (p) => path.join(layout.workdir, p.path),
      ),
    },
  };
}
