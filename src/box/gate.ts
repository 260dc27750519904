import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import pc from "picocolors";
import type { AuditLog } from "../audit/log.js";
import { WallError } from "../core/errors.js";
import { shellQuote } from "../core/shell.js";
import type { BoxPlan } from "../plan/plan.js";
import { onKill } from "../plan/session.js";
import type { BoxSession } from "../runtimes/runtime.js";
import type { Approver, ScreenHold } from "../walls/gate/index.js";
import {
  CommandApprover,
  clearFromLayer,
  clearFromLayerScript,
  freezeLayer,
  type GateService,
  InboxApprover,
  type KeptChangeSet,
  keepLayer,
  keepOnKillLine,
  type Layer,
  type LiveSync,
  makeLayer,
  overlayHelperPath,
  type PauseSession,
  pauseHelperPath,
  removeLayer,
  renderAgentSettings,
  reviewChangeSet,
  type StoodInLayer,
  standInLayer,
  startGate,
  startLive,
  startPause,
  TerminalApprover,
} from "../walls/gate/index.js";

/** How a human (or a bot) is reached, from the command line. */
export interface GateOptions {
  /** --approver CMD */
  approver?: string;
  /** --inbox [PORT]: true for any free port. */
  inbox?: boolean | string;
  /** Ask on /dev/tty when there is one (default true; a daemon hosting boxes says no). */
  terminal?: boolean;
  /** Hold changes to pre-existing workdir files in the copy-on-write layer (default true). */
  layer?: boolean;
  /** Persistent boxes: the socket (in the box's 0700 state dir) where `fourwall exec` hands over its pause. */
  execPause?: string;
}

export interface GateSession {
  /** The egress proxy's ask hook. */
  askNet: GateService["askNet"];
  /** After the box has exited: review and apply its change-set; what was not applied is kept (store.ts). */
  finish(): Promise<KeptChangeSet | undefined>;
  close(): Promise<void>;
}

async function makeApprovers(
  options: GateOptions,
  notify: (line: string) => void,
  screen?: ScreenHold,
): Promise<Approver[]> {
  const approvers: Approver[] = [];
  if (options.approver) approvers.push(new CommandApprover(options.approver));
  if (options.inbox) {
    const inbox = new InboxApprover();
    const port = typeof options.inbox === "string" ? Number(options.inbox) : 0;
    const url = await inbox.start(Number.isInteger(port) ? port : 0);
    notify(`fourwall gate: approval inbox at ${url} (the link works once)`);
    approvers.push(inbox);
  }
  if (options.terminal !== false && TerminalApprover.available())
    approvers.push(new TerminalApprover(screen));
  return approvers;
}

/**
 * Opens the gate for one box: approvers, the broker and its socket (next to the proxy's, so the
 * box reaches it at /run/fourwall/gate.sock), the agents' hook settings, and the copy-on-write
 * layer's directories. Sets what the runtime needs on `session`.
 */
export async function openGateSession(
  plan: BoxPlan,
  session: BoxSession,
  o: { audit: AuditLog; options?: GateOptions; screen?: ScreenHold; say?: (text: string) => void },
): Promise<GateSession> {
  const say = o.say ?? ((text: string) => process.stderr.write(text));
  const notify = (line: string) => say(`${pc.yellow(line)}\n`);
  const approvers = await makeApprovers(o.options ?? {}, notify, o.screen);
  const service = await startGate({
    box: plan.id,
    policy: plan.gate.policy,
    audit: o.audit,
    approvers,
    mounts: plan.filesystem.mounts,
    boxPath: plan.env.PATH ?? "/usr/bin:/bin",
    socketPath: path.join(session.netDir, "gate.sock"),
    notify,
  });

  // Whatever fails after the gate's socket is up closes it again: a half-opened gate must not keep
  // fourwall's process alive (the box never starts; the command exits 125).
  try {
    // Agent settings with fourwall's hook, bound read-only over the agents' own.
    session.gateFiles = [];
    // A settings file the agent does not have yet (~/.codex/hooks.json) gets a mount point that bwrap
    // creates on the host when its directory is writable: removed at exit (or by the reaper), so the
    // agent outside the box does not find an empty file it never had.
    const mountPoints: string[] = [];
    if (plan.gate.settings.length > 0) {
      const dir = path.join(session.runDir, "gate-files");
      mkdirSync(dir, { mode: 0o755 });
      plan.gate.settings.forEach((file, i) => {
        const base = existsSync(file.base) ? readFileSync(file.base, "utf8") : undefined;
        if (!existsSync(file.target)) {
          mountPoints.push(file.target);
          const q = shellQuote(file.target);
          onKill(session.runDir, `[ -f ${q} ] && [ ! -s ${q} ] && rm -f -- ${q}`);
        }
        const source = path.join(dir, `${i}-${path.basename(file.target)}`);
        writeFileSync(source, renderAgentSettings(file, base), { mode: 0o444 });
        session.gateFiles!.push({ source, target: file.target });
      });
    }

    // The copy-on-write layer lives outside the run dir, in fourwall's private layers directory
    // (layer.ts: nobody but fourwall can walk to it): if fourwall is killed, the reaper removes the
    // run dir but the box's work stays there, recoverable.
    let layer: Layer | undefined;
    let live: LiveSync | undefined;
    let stood: StoodInLayer | undefined;
    const workdirOwner = () => {
      const s = statSync(plan.filesystem.cwd);
      return plan.identity.mode === "root" ? { owner: { uid: s.uid, gid: s.gid } } : {};
    };
    const keptMeta = (reason: string) => ({
      box: plan.id,
      workdir: plan.filesystem.cwd,
      reason,
      ...workdirOwner(),
    });
    if (plan.gate.overlay && o.options?.layer === false) {
      o.audit.write({ box: plan.id, wall: "gate", event: "fs-not-held", why: "persistent box" });
    } else if (plan.gate.overlay) {
      if (!existsSync(overlayHelperPath())) {
        throw new WallError(
          "gate",
          `the copy-on-write helper ${overlayHelperPath()} is not built`,
          "npm run setup (compiles native/fourwall-overlay.c)",
        );
      }
      const id = plan.identity;
      layer = makeLayer({
        id: plan.id,
        lower: plan.filesystem.cwd,
        mode: id.mode,
        box: id.mode === "root" ? { uid: id.uid, gid: id.gid } : undefined,
      });
      session.overlay = layer;
      // Placeholders inside the workdir stand in the layer only: no trace on the host (placeholders.ts).
      stood = standInLayer({
        upper: layer.upper,
        workdir: plan.filesystem.cwd,
        placeholders: plan.filesystem.placeholders,
        box: id.mode === "root" ? { uid: id.uid, gid: id.gid } : undefined,
        ownLikeLower: id.mode === "root" && plan.runtime === "docker", // docker mounts it on the host, unmapped
      });
      // The live layer: new files reach the workdir while the box runs (walls/gate/live.ts).
      const owner = statSync(plan.filesystem.cwd);
      live = startLive({
        box: plan.id,
        audit: o.audit,
        upper: layer.upper,
        workdir: plan.filesystem.cwd,
        owner: id.mode === "root" ? { uid: owner.uid, gid: owner.gid } : undefined,
        hidden: stood.hidden,
      });
      // If fourwall is SIGKILLed, the reaper drops the layer when the box wrote nothing into it;
      // one with the box's work in it is frozen and kept as a change-set (after the runtime's own
      // on-kill lines, which go first: the container is gone, the host mount unmounted); the
      // placeholders standing in it are cleared first.
      onKill(
        session.runDir,
        `${clearFromLayerScript(layer.upper, stood, shellQuote) || ":"}; ${keepOnKillLine(layer, keptMeta("fourwall was killed before the review"))}`,
      );
    }
    // The pause at the action (namespaces runtime): destructive syscalls on pre-existing workdir files
    // wait for the answer; the layer stays underneath for everything else (other runtimes, races).
    let pause: PauseSession | undefined;
    if (layer && plan.runtime === "namespaces" && plan.gate.policy.pause && plan.gate.holds) {
      if (!existsSync(pauseHelperPath()))
        throw new WallError(
          "gate",
          `the pause helper ${pauseHelperPath()} is not built`,
          "npm run setup (compiles native/fourwall-pause.c)",
        );
      const owner = statSync(plan.filesystem.cwd);
      pause = await startPause({
        box: plan.id,
        helper: pauseHelperPath(),
        workdir: plan.filesystem.cwd,
        upper: layer.upper,
        netDir: session.netDir,
        execSocket: o.options?.execPause,
        policy: plan.gate.policy.fs,
        broker: service.broker,
        audit: o.audit,
        owner: plan.identity.mode === "root" ? { uid: owner.uid, gid: owner.gid } : undefined,
        notify,
        madeInRun: () => live?.made() ?? new Set(),
      }).catch((error: Error) => {
        throw new WallError(
          "gate",
          error.message,
          "run `fourwall doctor`; npm run setup rebuilds the helper",
        );
      });
      session.pause = { helper: pauseHelperPath(), execSocket: o.options?.execPause };
    }
    const dropLayer = () => {
      const failure = layer ? removeLayer(layer.dir) : undefined;
      if (failure) notify(`fourwall gate: ${failure}`);
      layer = undefined;
    };

    /** Nothing lost: the frozen layer goes to the change-set store (or, if it cannot, stays named). */
    const keep = (m: Pick<KeptChangeSet, "reason" | "changes" | "creates" | "unreviewed">) => {
      const l = layer!;
      layer = undefined;
      try {
        const kept = keepLayer(l.dir, { ...keptMeta(m.reason), ...m });
        o.audit.write({ box: plan.id, wall: "gate", event: "change-set-kept", id: kept.id, why: m.reason });
        return kept;
      } catch (error) {
        notify(
          `fourwall gate: could not keep the change-set (${(error as Error).message}); the box's changes stay in ${l.upper}`,
        );
        o.audit.write({
          box: plan.id,
          wall: "gate",
          event: "change-set-kept",
          upper: l.upper,
          why: m.reason,
        });
        return undefined;
      }
    };

    return {
      askNet: service.askNet,
      async finish() {
        await pause?.close(); // the box is gone: its open questions are withdrawn
        if (!layer) return undefined;
        const owner = statSync(plan.filesystem.cwd);
        let review: Awaited<ReturnType<typeof reviewChangeSet>>;
        try {
          // Every box process is dead (finish runs after the box's exit): nothing may change the
          // layer between the review and the apply.
          freezeLayer(layer);
          live?.stop();
          for (const f of stood ? clearFromLayer(layer.upper, stood) : [])
            notify(`fourwall gate: placeholder ${f}`);
          const last = live?.tick(true); // the box is dead: whatever it left flows as it is
          if (last && last.applied.length + last.removed.length + last.failures.length > 0)
            o.audit.write({ box: plan.id, wall: "gate", event: "live", final: true, ...last });
          review = await reviewChangeSet({
            box: plan.id,
            upper: layer.upper,
            workdir: plan.filesystem.cwd,
            helper: overlayHelperPath(),
            policy: plan.gate.policy.fs,
            gitHistory: plan.gate.gitHistory,
            broker: service.broker,
            audit: o.audit,
            owner: plan.identity.mode === "root" ? { uid: owner.uid, gid: owner.gid } : undefined,
            listDir: layer.dir,
            notify,
            made: live?.made(),
            approvedAtAction: pause?.approved,
            holds: plan.gate.holds,
          });
        } catch (error) {
          // The review itself failed: nothing more is applied, the box's work is kept (read again
          // from the layer by `fourwall changes`), the run's exit status is the box's own.
          notify(`fourwall gate: could not review the change-set (${(error as Error).message})`);
          return keep({
            reason: `the review failed: ${(error as Error).message}`,
            unreviewed: true,
            changes: [],
            creates: [],
          });
        }
        if (review.kept.length === 0 && review.keptCreates.length === 0 && review.failures.length === 0) {
          dropLayer();
          return undefined;
        }
        return keep({ reason: review.keptWhy, changes: review.kept, creates: review.keptCreates });
      },
      async close() {
        live?.stop();
        await pause?.close();
        await service.close();
        for (const p of mountPoints) removeEmptyFile(p);
        // finish() never ran (the box could not be built, or it failed on the way): a layer the box
        // never wrote into holds nothing to recover — leave nothing behind.
        if (layer && stood) clearFromLayer(layer.upper, stood);
        if (layer && readdirSync(layer.upper).length === 0) dropLayer();
      },
    };
  } catch (error) {
    await service.close();
    throw error;
  }
}

/** Removes `p` if it is an empty regular file (a mount point bwrap made), never anything else. */
function removeEmptyFile(p: string): void {
  const st = lstatSync(p, { throwIfNoEntry: false });
  if (st?.isFile() && st.size === 0) rmSync(p, { force: true });
}
