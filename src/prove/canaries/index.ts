/**
 * Starts the canaries the selected walls need, in parallel, each registered for teardown as soon
 * as it exists. A canary that cannot start is a note, and the probes that need it are SKIP with the
 * reason: never a PASS.
 */
import type { ProveLayout } from "../layout.js";
import type { Teardown } from "../teardown.js";
import type { ProveWall } from "../types.js";
import { abstractSocketName, hostProcessMarker, startHostProcess } from "./host-process.js";
import type { CanaryNames } from "./names.js";
import { type Origins, startOrigins } from "./origins.js";
import { type OutsideHost, startOutsideHost } from "./outside.js";
import { hostSocketPath, startHostSocket } from "./sockets.js";
import { makeCanaryCertificate } from "./tls.js";

export interface Canaries {
  names: CanaryNames;
  /** In the argv of a host process (undefined: no such canary running). */
  hostProcessMarker: string | undefined;
  /** The host's unix socket canaries: by path, and in the abstract namespace. */
  socketPath: string | undefined;
  abstractName: string | undefined;
  origins: Origins | undefined;
  /** Where the HTTPS canary's certificate is, for the probe's --cacert (undefined: no HTTPS canary). */
  caPath: string | undefined;
  outside: OutsideHost | { skip: string };
  /** Secret-looking variables planted in the environment the box starts from. */
  plantedEnv: Record<string, string>;
  notes: string[];
}

export function plantedEnvironment(token: string, root: boolean): Record<string, string> {
  const secret = `FOURWALL-PROVE-SECRET-${token}`; // probe.py looks for this value under any name
  return {
    AWS_SECRET_ACCESS_KEY: secret,
    GITHUB_TOKEN: secret,
    NPM_TOKEN: secret,
    DATABASE_URL: `postgres://app:${secret}@db.fourwall.invalid/app`,
    SSH_AUTH_SOCK: hostSocketPath(token, root),
  };
}

const why = (error: unknown) => (error as Error).message.split("\n")[0] ?? String(error);

export async function startCanaries(options: {
  token: string;
  walls: ProveWall[];
  root: boolean;
  python: string;
  layout: ProveLayout;
  names: CanaryNames;
  teardown: Teardown;
  progress: (message: string) => void;
}): Promise<Canaries> {
  const { token, walls, root, layout, names, teardown } = options;
  const notes: string[] = [];
  const wants = (wall: ProveWall) => walls.includes(wall);
  const unavailable = (what: string) => (error: unknown) => {
    notes.push(`${what}: ${why(error)}; the probes that need it are skipped`);
    return false as const;
  };

  const hostProcess =
    wants("isolation") || wants("filesystem")
      ? startHostProcess(options.python, token, teardown).then(
          () => true,
          unavailable("the host process canary"),
        )
      : Promise.resolve(false);
  const socket = wants("filesystem")
    ? startHostSocket(token, root, teardown).catch(unavailable("the host socket canary"))
    : Promise.resolve(false as const);
  let caPath: string | undefined;
  const origins = wants("egress")
    ? makeCanaryCertificate(layout.base, layout.ca, [names.listed, names.unlisted, "localhost"])
        .then((tls) => {
          caPath = tls.certPath;
          return tls;
        }, unavailable("the HTTPS canary (no certificate)"))
        .then((tls) => startOrigins(token, tls || undefined, teardown))
    : undefined;
  const outside: Promise<OutsideHost | { skip: string }> = !wants("egress")
    ? Promise.resolve({ skip: "egress not selected" })
    : !root
      ? Promise.resolve({ skip: "the outside test host needs root (a network namespace and a veth pair)" })
      : startOutsideHost(token, teardown).catch((error) => {
          notes.push(`the outside test host: ${why(error)}`);
          return { skip: `the outside test host could not start: ${why(error)}` };
        });
  const started = [
    wants("isolation") ? "a host process" : "",
    wants("filesystem") ? "planted secrets, host sockets" : "",
    wants("egress")
      ? `HTTP/HTTPS/UDP origins, ${root ? "an outside host (netns)" : "no outside host (not root)"}`
      : "",
  ].filter(Boolean);
  options.progress(`starting canaries: ${started.join(", ")}`);

  const [processUp, socketUp, originsUp, outsideUp] = await Promise.all([
    hostProcess,
    socket,
    origins,
    outside,
  ]);
  return {
    names,
    hostProcessMarker: processUp && wants("isolation") ? hostProcessMarker(token) : undefined,
    socketPath: socketUp || undefined,
    abstractName: processUp && wants("filesystem") ? abstractSocketName(token) : undefined,
    origins: originsUp,
    caPath,
    outside: outsideUp,
    plantedEnv: plantedEnvironment(token, root),
    notes,
  };
}
