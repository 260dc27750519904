import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
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
  freezeLayer,
  type GateService,
  InboxApprover,
  type Layer,
  makeLayer,
  overlayHelperPath,
  removeLayer,
  renderAgentSettings,
  reviewChangeSet,
  startGate,
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
}

export interface GateSession {
  /** The egress proxy's ask hook. */
  askNet: GateService["askNet"];
  /** After the box has exited: review and apply its change-set. */
  finish(): Promise<void>;
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

  // Agent settings with fourwall's hook, bound read-only over the agents' own.
  session.gateFiles = [];
  if (plan.gate.settings.length > 0) {
    const dir = path.join(session.runDir, "gate-files");
    mkdirSync(dir, { mode: 0o755 });
    plan.gate.settings.forEach((file, i) => {
      const base = existsSync(file.base) ? readFileSync(file.base, "utf8") : undefined;
      const source = path.join(dir, `${i}-${path.basename(file.target)}`);
      writeFileSync(source, renderAgentSettings(file, base), { mode: 0o444 });
      session.gateFiles!.push({ source, target: file.target });
    });
  }

  // The copy-on-write layer lives outside the run dir, in fourwall's private layers directory
  // (layer.ts: nobody but fourwall can walk to it): if fourwall is killed, the reaper removes the
  // run dir but the box's work stays there, recoverable.
  let layer: Layer | undefined;
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
    // If fourwall is SIGKILLed, the reaper drops the layer when the box wrote nothing into it;
    // a layer with the box's work in it stays, to be recovered.
    onKill(
      session.runDir,
      `rmdir -- ${shellQuote(layer.upper)} 2>/dev/null && chmod -R u+rwx -- ${shellQuote(layer.dir)} && rm -rf --one-file-system -- ${shellQuote(layer.dir)}`,
    );
  }
  const dropLayer = () => {
    const failure = layer ? removeLayer(layer.dir) : undefined;
    if (failure) notify(`fourwall gate: ${failure}`);
    layer = undefined;
  };

  return {
    askNet: service.askNet,
    async finish() {
      if (!layer) return;
      const owner = statSync(plan.filesystem.cwd);
      try {
        // Every box process is dead (finish runs after the box's exit): nothing may change the
        // layer between the review and the apply.
        freezeLayer(layer);
        await reviewChangeSet({
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
        });
      } catch (error) {
        // The review itself failed: nothing more is applied, the box's work is kept, the run's
        // exit status is the box's own.
        notify(
          `fourwall gate: could not review the change-set (${(error as Error).message}); the box's changes are kept in ${layer.upper}`,
        );
        o.audit.write({
          box: plan.id,
          wall: "gate",
          event: "change-set-kept",
          upper: layer.upper,
          why: String(error),
        });
        layer = undefined;
        return;
      }
      dropLayer();
    },
    async close() {
      await service.close();
      // finish() never ran (the box could not be built, or it failed on the way): a layer the box
      // never wrote into holds nothing to recover — leave nothing behind.
      if (layer && readdirSync(layer.upper).length === 0) dropLayer();
    },
  };
}
