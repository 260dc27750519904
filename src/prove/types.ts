/**
 * The vocabulary of `fourwall prove`: probes, what the probe program reports, what the host sees
 * afterwards, and the verdicts. Plain data only, so judging and rendering stay pure.
 */
import type { Rlimit } from "../walls/isolation/index.js";

export const PROVE_WALLS = ["isolation", "filesystem", "egress", "gate"] as const;
export type ProveWall = (typeof PROVE_WALLS)[number];

/**
 * PASS: the wall held. HOLE: an attack got through. FAIL: something that must work inside the box
 * did not (the listed canary, writing the workdir) or a probe gave no usable report: either way
 * nothing is proven. SKIP: the probe does not apply here (with the reason); never counted as PASS.
 */
export type Status = "PASS" | "HOLE" | "FAIL" | "SKIP";

/** One JSON line of the probe program: raw facts about one attack, or why it did not run. */
export type ProbeReport =
  | { id: string; data: Record<string, unknown> }
  | { id: string; skip: string }
  | { id: string; error: string };

export interface Verdict {
  status: Status;
  /** What was seen, in a few words (an errno, a status code, a path that appeared on the host). */
  observed: string;
}

/** What the box under test is, as far as judging is concerned. */
export type ProveTarget =
  | {
      kind: "box";
      runtime: string;
      rlimits: Rlimit[];
      /** Bindings the box was given for probes (the credential canary): a probe that needs one must run. */
      bound?: string[];
    }
  | { kind: "against"; wrapper: string };

/** What prove checks on the host itself after the probe program has ended. */
export interface HostEvidence {
  /** Per probe id: paths that the probe tried to create or change and that did change on the host. */
  landed: Record<string, string[]>;
  /** The file the probe must be able to write in the workdir, as the host sees it (undefined: absent). */
  workdirWrite: string | undefined;
  /** Datagrams the host's loopback UDP canary received that carry this run's token. */
  udpReceived: number;
  /** The outside test host (a network namespace of prove's own); undefined when there is none. */
  outside: { tcp: number; udp: number } | undefined;
  /** The host's pid 1, to tell "the box has its own pid 1" from "the box is the host". */
  hostInit: { comm: string; start: string };
  /** The host's /proc/version: a box with a kernel of its own (gVisor, a VM) shows another. */
  hostKernel: string;
  /** The approval gate: requests prove's denying approver received, and the precious file on the host. */
  gate: {
    name: string;
    requests: string[];
    precious: string | undefined;
    /** The history probe's files that are not, on the host, what they were before the run. */
    historyChanged: string[];
    /** The mode of the file the box made 6755, as it landed on the host (undefined: it did not). */
    setuidMode?: number;
  };
}

export interface JudgeContext {
  target: ProveTarget;
  evidence: HostEvidence;
  /** Whether prove itself runs as root (some canaries need it). */
  root: boolean;
}

/** One probe: an attack on one wall, its expected outcome, and how the host judges the report. */
export interface ProbeSpec {
  id: string;
  wall: ProveWall;
  /** What the probe tries, as a hijacked agent would put it. */
  title: string;
  /** The outcome the wall must produce. */
  expect: string;
  /** Set when the probe is judged without running anything (e.g. a wall that does not exist yet). */
  skipAlways?: string;
  /** A binding the probe needs (the target's `bound`): when the target has it, a SKIP is a FAIL. */
  needs?: string;
  judge(data: Record<string, unknown>, ctx: JudgeContext): Verdict;
}

export interface ProbeResult extends Verdict {
  id: string;
  wall: ProveWall;
  title: string;
  expect: string;
}

export interface Tally {
  pass: number;
  hole: number;
  fail: number;
  skip: number;
}

export interface ProveReport {
  version: 1;
  /** This run's token: in the names of everything it made (temp dir, sockets, netns), all removed at exit. */
  runId: string;
  /** What was attacked: a fourwall box (runtime, policy) or another wrapper. */
  target:
    | { kind: "box"; runtime: string; policy: string; presets: string[] }
    | { kind: "against"; wrapper: string };
  /** The launching user: "root" or "uid N". */
  launchedAs: string;
  startedAt: string;
  /** Wall-clock time of the whole run, canaries included. */
  durationMs: number;
  results: ProbeResult[];
  tally: Tally;
  /** True when no probe found a hole or failed and at least one passed. */
  ok: boolean;
  /** Problems outside any single probe (a canary that could not start, the box not built). */
  notes: string[];
}
