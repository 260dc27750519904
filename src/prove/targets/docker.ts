/**
 * What prove does differently for the docker runtime. Docker 20.10 has no idmapped mounts: its box
 * runs as the workdir's owner and refuses a root-owned one. So, as root, the throwaway user's
 * files go to the box's uid first, as a real user's project would belong to that user (the host's
 * checks still run as root). And with no image named, the box is fourwall's "tools" image: the
 * probe program needs python3 and curl, which the tiny default image does not have.
 */
import { spawnSync } from "node:child_process";
import type { BoxPlan } from "../../plan/plan.js";
import { DockerRuntime } from "../../runtimes/docker.js";
import { runtimeFor } from "../../runtimes/index.js";
import type { Runtime } from "../../runtimes/runtime.js";
import type { ProveLayout } from "../layout.js";

/**
 * The throwaway user's uid: an ordinary user's, never a box uid. The plan's box uid is provisional
 * (the supervisor takes a free one from the range when the box starts), so a home handed to it ran
 * the box as another uid than the files' whenever a second root box was up (EACCES on the results).
 */
const PROVE_USER = { uid: 65534, gid: 65534 };

/** True when the home was handed over (the plan must then be made again: it records owners). */
export function handHomeToBox(plan: BoxPlan, layout: ProveLayout): boolean {
  if (plan.runtime !== "docker" || plan.identity.mode !== "root") return false;
  const r = spawnSync("chown", ["-R", `${PROVE_USER.uid}:${PROVE_USER.gid}`, layout.home]);
  return r.status === 0;
}

export const proveRuntime = (plan: BoxPlan): Runtime =>
  plan.runtime === "docker" ? new DockerRuntime({ defaultImage: "tools" }) : runtimeFor(plan.runtime);
