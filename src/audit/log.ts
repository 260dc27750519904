import { appendFileSync, closeSync } from "node:fs";
import { openOutputFile } from "../core/output-file.js";

export interface AuditEvent {
  time?: string;
  box: string;
  wall: string;
  event: string;
  [key: string]: unknown;
}

/**
 * The audit log: one JSON object per line, appended with O_APPEND so that several boxes can share
 * a file. Written synchronously: an audit line must not be lost when fourwall exits or is killed
 * right after a decision. Never through a symlink or into a file another user planted (output-file.ts).
 */
export class AuditLog {
  private fd: number | undefined;

  constructor(readonly file: string | undefined) {
    if (file) this.fd = openOutputFile(file, "append", 0o600);
  }

  write(event: AuditEvent): void {
    if (this.fd === undefined) return;
    appendFileSync(this.fd, `${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
