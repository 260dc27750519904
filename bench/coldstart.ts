/**
 * Cold start: what one `fourwall run -- true` costs from spawn to exit, against the floor (bare
 * `true`, bare bwrap), the runtime fourwall is written in (`node -e 0`) and the peer (`srt true`),
 * all measured in the same run. Targets (issues 2 and 7): at most 0.25 × srt, under 2 × node -e 0.
 */
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type DaemonSubject, daemonRun } from "./lib/daemon.js";
import { fourwallRun, USER_ID } from "./lib/fourwall.js";
import type { BenchContext, BenchGroup, ExtraTable, GroupResult, Row } from "./lib/group.js";
import { measureRows, ratio, target } from "./lib/group.js";
import type { Subject } from "./lib/measure.js";

/** The box uid the bare-bwrap baseline maps to when run as root (as fourwall's notes advise). */
const BOX_UID = "1000";

const node = process.execPath;

function subjects(ctx: BenchContext, daemons: DaemonSubject[]): Subject[] {
  const fourwall = path.join(ctx.repoRoot, "bin", "fourwall.js");
  const srt = path.join(ctx.repoRoot, "node_modules", ".bin", "srt");
  // fourwall and srt start in a scratch dir: a fourwall.yaml or other config lying in the checkout
  // must not change what is measured.
  const rootWork = ctx.tempDir();
  const peerWork = ctx.tempDir();

  const bwrap = [
    "bwrap",
    "--unshare-all",
    "--die-with-parent",
    // As root, bwrap keeps its capabilities unless told to drop them; a fair floor drops them too.
    ...(ctx.isRoot ? ["--unshare-user", "--uid", BOX_UID, "--gid", BOX_UID, "--cap-drop", "ALL"] : []),
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--",
    "true",
  ];

  return [
    { id: "true", label: "bare true", command: ["true"] },
    { id: "node", label: "bare node -e 0", command: [node, "-e", "0"], shown: "node -e 0" },
    { id: "bwrap", label: "bare bwrap … true", command: bwrap },
    fourwallRun(ctx, { id: "fourwall-root", as: "root", workdir: rootWork }),
    fourwallRun(ctx, { id: "fourwall-user", as: "user" }),
    ...daemons.map((d) => d.subject),
    {
      id: "srt",
      label: "srt true (peer)",
      command: [srt, "true"],
      shown: "node_modules/.bin/srt true",
      cwd: peerWork,
      skip: existsSync(srt)
        ? undefined
        : `${srt} is not installed (npm ci installs @anthropic-ai/sandbox-runtime)`,
    },
    {
      id: "cli",
      label: "fourwall --version (CLI start only)",
      command: [node, fourwall, "--version"],
      shown: "node bin/fourwall.js --version",
    },
    {
      id: "plan",
      label: "fourwall run --dry-run -- true (plan only)",
      command: [node, fourwall, "run", "--dry-run", "-w", rootWork, "--", "true"],
      shown: "node bin/fourwall.js run --dry-run -w <tmp workdir> -- true",
      cwd: rootWork,
    },
  ];
}

const ROLES: Record<string, Row["role"]> = {
  true: "baseline",
  node: "baseline",
  bwrap: "baseline",
  srt: "baseline",
  "fourwall-root": "subject",
  "fourwall-user": "subject",
  "daemon-root": "subject",
  "daemon-user": "subject",
  cli: "informative",
  plan: "informative",
};

const BASELINES = ["true", "bwrap", "node", "srt"];

/**
 * Where fourwall's time goes, from differences of medians (root mode). Approximate: each step's
 * noise adds up, and a difference can come out slightly negative on a noisy machine.
 */
function phases(rows: Row[]): ExtraTable | undefined {
  const m = (id: string) => {
    const row = rows.find((r) => r.id === id);
    return row?.result.ok ? row.result.stats.median : undefined;
  };
  const [t, nodeMs, bw, cli, plan, run] = ["true", "node", "bwrap", "cli", "plan", "fourwall-root"].map(m);
  if ([t, nodeMs, bw, cli, plan, run].some((v) => v === undefined)) return undefined;
  const share = (v: number) => `${((v / run!) * 100).toFixed(0)} %`;
  const line = (what: string, how: string, v: number) => [what, how, v.toFixed(1), share(v)];
  return {
    title: "Where fourwall's cold start goes (root mode, derived)",
    header: ["phase", "computed as", "ms", "share of run"],
    rows: [
      line("Node starts", "node -e 0", nodeMs!),
      line("CLI loads (bundle entry, commander)", "--version − node -e 0", cli! - nodeMs!),
      line("policy load + box plan (+ printing it)", "--dry-run − --version", plan! - cli!),
      line("box launch, run, teardown", "run − --dry-run", run! - plan!),
      line("… of which the kernel's part (namespaces, mounts)", "bare bwrap − bare true", bw! - t!),
    ],
    note: "Differences of medians measured in this run; approximate, each step carries the noise of two rows.",
  };
}

function notes(ctx: BenchContext): string[] {
  const out: string[] = [];
  if (ctx.isRoot) {
    out.push(
      `The user-mode row runs fourwall through \`setpriv\` as uid/gid ${USER_ID}, with HOME a temp dir it owns; setpriv's own exec is in its time.`,
    );
  }
  out.push(
    "The `warm box daemon` rows are `fourwall run -- true` as bin/fourwall runs it once a daemon is up (native client, no Node start-up; the daemon plans afresh and supervises the box). The `node bin/fourwall.js run` rows are the Node path: what a run costs with no daemon (the first run after boot, which also starts one, or any run the daemon does not take).",
  );
  out.push(
    "The warm-up round also fills fourwall's per-user caches (e.g. validated policies under ~/.cache/fourwall), so the rows show the steady state an agent sees from its second command on.",
  );
  const settings = path.join(os.homedir(), ".srt-settings.json");
  out.push(
    existsSync(settings)
      ? `srt read its settings from ${settings}.`
      : `srt ran with its built-in defaults (no ${settings}), as ${ctx.isRoot ? "root" : "the current user"}.`,
  );
  return out;
}

export const coldstart: BenchGroup = {
  id: "coldstart",
  title: "Cold start (whole process, spawn to exit)",
  async run(ctx): Promise<GroupResult> {
    // The daemon path's daemons are up before the rounds: the rows show a warm daemon.
    const daemons = [daemonRun(ctx, "root"), daemonRun(ctx, "user")];
    for (const d of daemons)
      if (!d.subject.skip && !(await d.start())) d.subject.skip = "its box daemon did not start";
    let rows: Row[];
    try {
      rows = await measureRows(ctx, "coldstart", subjects(ctx, daemons), (id) => ROLES[id] ?? "informative");
    } finally {
      for (const d of daemons) d.stop();
    }
    const fourwalls = ["fourwall-root", "fourwall-user"];
    const viaDaemon = ["daemon-root", "daemon-user"];
    const ratios = [...viaDaemon, ...fourwalls].flatMap((s) => BASELINES.map((b) => ratio(rows, s, b)));
    const label = (id: string) => rows.find((r) => r.id === id)!.label;
    const targets = [
      ...viaDaemon.flatMap((s) => [
        target(rows, `${label(s)} ≤ 0.15 × srt true`, s, "srt", "<=", 0.15),
        target(rows, `${label(s)} ≤ 1 × node -e 0`, s, "node", "<=", 1),
      ]),
      ...fourwalls.flatMap((s) => [
        target(rows, `${label(s)} ≤ 0.25 × srt true`, s, "srt", "<=", 0.25),
        target(rows, `${label(s)} < 2 × node -e 0`, s, "node", "<", 2),
      ]),
    ];
    const breakdown = phases(rows);
    return {
      id: this.id,
      title: this.title,
      method:
        `Each command is spawned by the bench's own (warm) Node process; the time runs from spawn() to the exit event. ` +
        `${ctx.warmup} warm-up round(s), then ${ctx.runs} measured round(s); each round runs every subject once, ` +
        "round-robin with a rotating start, so machine noise spreads evenly over the subjects. " +
        "fourwall runs from dist/ (the bundle), with the built-in default policy and a fresh temp workdir.",
      rows,
      ratios,
      targets,
      extraTables: breakdown ? [breakdown] : [],
      notes: notes(ctx),
    };
  },
};
