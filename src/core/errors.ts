/** The walls, as named in messages, the audit log and `prove`. */
export type WallName = "isolation" | "filesystem" | "egress" | "gate" | "policy";

/** fourwall's own exit status when the box could not be built: nothing was run. */
export const EXIT_BOX_FAILED = 125;

/** A wall could not be set up. The message names the wall and the fix; the command never runs. */
export class WallError extends Error {
  constructor(
    readonly wall: WallName,
    message: string,
    readonly fix: string,
  ) {
    super(message);
    this.name = "WallError";
  }

  describe(): string {
    return `fourwall: the ${this.wall} wall could not be built: ${this.message}\n  fix: ${this.fix}`;
  }
}
