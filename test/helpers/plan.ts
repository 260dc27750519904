/**
 * A BoxPlan for pure unit tests: planned exactly as `fourwall run` plans, against a fake host
 * (test/helpers/fake-host.ts) with alice's home and her project as the workdir.
 */
import { type BoxPlan, planBox } from "../../src/plan/plan.js";
import { policySchema } from "../../src/policy/schema.js";
import type { BoxSession } from "../../src/runtimes/runtime.js";
import { compileEgressPlan } from "../../src/walls/egress/rules/rules.js";
import { fakeHost } from "./fake-host.js";

export const HOME = "/home/alice";
export const WORK = `${HOME}/proj`;

/** A run dir's session, by path only (nothing is created). */
export const TEST_SESSION: BoxSession = {
  runDir: "/tmp/fourwall-x",
  emptyFile: "/tmp/fourwall-x/empty",
  netDir: "/tmp/fourwall-x/net",
  cgroupDirs: [],
};

export function testPlan(options: {
  /** The fake host's paths (fakeHost's notation). */
  host: string[];
  policy?: object;
  /** Who launches fourwall (0: root mode). */
  hostUid?: number;
  /** Who owns HOME and the workdir. */
  owner?: number;
  command?: string[];
}): BoxPlan {
  const policy = policySchema.parse(options.policy ?? {});
  const hostUid = options.hostUid ?? 1000;
  const owner = options.owner ?? 1000;
  return planBox(policy, {
    egress: compileEgressPlan(policy.egress),
    command: options.command ?? ["claude", "--help"],
    workdir: WORK,
    home: HOME,
    hostUid,
    hostGid: hostUid,
    hostEnv: { PATH: "/usr/bin:/bin", HOME, GITHUB_TOKEN: "secret", LANG: "C.UTF-8" },
    host: fakeHost(options.host, { [HOME]: owner, [WORK]: owner }),
    id: "abcd1234",
  });
}
