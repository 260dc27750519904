import type { Server } from "node:net";
import type { AuditLog } from "../../audit/log.js";
import type { Mount } from "../filesystem/index.js";
import { Broker } from "./broker.js";
import { boxWritableFrom, decideExec, hostClassifyContext } from "./exec.js";
import { decideNet } from "./rules.js";
import type { GatePolicy } from "./schema.js";
import { classifyCommand } from "./shell/classify.js";
import { loadShellParser } from "./shell/parser.js";
import { type SocketAnswer, type SocketRequest, serveGateSocket } from "./socket.js";
import type { Approver, GateAnswer } from "./types.js";

export interface GateServiceOptions {
  box: string;
  policy: GatePolicy;
  audit: AuditLog;
  approvers: Approver[];
  /** The box's mounts (to know which directories it can write) and PATH. */
  mounts: readonly Mount[];
  boxPath: string;
  /** Where to listen for the box's questions (host path of the socket bound into the box). */
  socketPath?: string;
  notify?: (line: string) => void;
}

export interface GateService {
  broker: Broker;
  /** Classifies and decides one command (what the socket does for the box). */
  exec(request: SocketRequest): Promise<SocketAnswer>;
  /** The egress proxy's ask hook (egress.unknown: ask). */
  askNet(request: {
    host: string;
    port: number;
    method?: string | undefined;
    kind: string;
  }): Promise<boolean>;
  close(): Promise<void>;
}

/** The host side of the gate for one box: broker, socket, and the hooks the other walls call. */
export async function startGate(options: GateServiceOptions): Promise<GateService> {
  const broker = new Broker({
    box: options.box,
    audit: options.audit,
    approvers: options.approvers,
    timeoutMs: options.policy.timeoutSeconds * 1000,
    always: options.policy.always,
    notify: options.notify,
  });
  const boxWritable = boxWritableFrom(options.mounts);
  const exec = async (request: SocketRequest): Promise<SocketAnswer> => {
    const parser = await loadShellParser();
    const ctx = hostClassifyContext({ cwd: request.cwd, pathEnv: options.boxPath, boxWritable });
    const decided = decideExec(options.policy.exec, classifyCommand(parser, request.command, ctx));
    const answer: GateAnswer = await broker.decide(
      {
        kind: "exec",
        summary: request.command.length > 200 ? `${request.command.slice(0, 200)}…` : request.command,
        command: request.command,
        cwd: request.cwd,
        why: decided.why.length > 0 ? decided.why : ["read-only"],
        via: request.via,
      },
      decided.decision,
    );
    return answer;
  };
  let server: Server | undefined;
  if (options.socketPath) server = await serveGateSocket(options.socketPath, exec);
  return {
    broker,
    exec,
    async askNet(r) {
      const decision = decideNet(options.policy.net.rules, r.host, r.method);
      const answer = await broker.decide(
        {
          kind: "net",
          summary: `${r.method ?? r.kind.toUpperCase()} ${r.host}:${r.port}`,
          host: r.host,
          port: r.port,
          method: r.method,
          cwd: "-",
          why: ["no egress rule allows this host (egress.unknown: ask)"],
          via: "egress",
        },
        decision,
      );
      return answer.decision === "allow";
    },
    async close() {
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      await broker.close();
    },
  };
}
