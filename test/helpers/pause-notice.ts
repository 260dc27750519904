import type { PauseNotice, PauseTarget } from "../../src/walls/gate/pause.js";

/** A paused call as the supervisor reports it: the call, its paths, everything else zero. */
export const pauseNotice = (
  sys: PauseNotice["sys"],
  paths: PauseTarget[],
  extra: Partial<PauseNotice> = {},
): PauseNotice => ({
  id: "1",
  pid: 1,
  sys,
  flags: 0,
  mode: 0,
  length: 0,
  paths,
  ...extra,
});
