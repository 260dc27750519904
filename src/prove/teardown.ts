/**
 * The things one prove run must undo, undone in reverse order of making. Every step runs even if
 * an earlier one fails: a canary that outlives prove is exactly the kind of leftover it promises
 * not to leave.
 */
export class Teardown {
  private readonly steps: { what: string; undo: () => unknown }[] = [];

  add(what: string, undo: () => unknown): void {
    this.steps.push({ what, undo });
  }

  /** Runs every step once; returns what could not be undone. */
  async run(): Promise<string[]> {
    const problems: string[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step.undo();
      } catch (error) {
        problems.push(`${step.what}: ${(error as Error).message}`);
      }
    }
    return problems;
  }
}
