import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Row, ratio, target } from "../../../bench/lib/group.js";
import { failureReason, median, percentile, stats } from "../../../bench/lib/measure.js";

// The helpers only: numbers measured on a machine never belong in unit tests (issue 7).
describe("bench stats", () => {
  it("median: middle value for odd counts, mean of the two middle ones for even counts", () => {
    assert.equal(median([5]), 5);
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([10, 1, 9, 2, 8, 3, 7, 4, 6, 5]), 5.5);
  });

  it("median does not reorder its input", () => {
    const values = [3, 1, 2];
    median(values);
    assert.deepEqual(values, [3, 1, 2]);
  });

  it("p90 by nearest rank is an observed value: the 9th of 10, the 18th of 20, the only one of 1", () => {
    assert.equal(percentile([10, 1, 9, 2, 8, 3, 7, 4, 6, 5], 90), 9);
    assert.equal(
      percentile(
        Array.from({ length: 20 }, (_, i) => 20 - i),
        90,
      ),
      18,
    );
    assert.equal(percentile([42], 90), 42);
    assert.equal(percentile([1, 2, 3], 100), 3);
    assert.equal(percentile([1, 2, 3, 4], 50), 2);
  });

  it("refuses empty input and out-of-range percentiles", () => {
    assert.throws(() => median([]), RangeError);
    assert.throws(() => percentile([], 90), RangeError);
    assert.throws(() => percentile([1], 0), RangeError);
    assert.throws(() => percentile([1], 101), RangeError);
  });

  it("stats gathers median, p90, min, max and mean", () => {
    assert.deepEqual(stats([10, 1, 9, 2, 8, 3, 7, 4, 6, 5]), {
      runs: 10,
      median: 5.5,
      p90: 9,
      min: 1,
      max: 10,
      mean: 5.5,
    });
  });

  it("a failure reason names the status and stderr's last line; exit 0 is no failure", () => {
    assert.equal(failureReason({ ms: 1, code: 0, signal: null, stderr: "noise" }), undefined);
    assert.equal(
      failureReason({ ms: 1, code: 1, signal: null, stderr: "a\nbwrap: no permission\n" }),
      "exit 1: bwrap: no permission",
    );
    assert.equal(failureReason({ ms: 1, code: null, signal: "SIGKILL", stderr: "" }), "killed by SIGKILL");
  });

  it("ratios and targets use medians, and are undecided when a side failed", () => {
    const row = (id: string, values: number[] | string): Row => ({
      id,
      label: id,
      command: id,
      role: "subject",
      unit: "ms",
      result:
        typeof values === "string"
          ? { ok: false, reason: values }
          : { ok: true, stats: stats(values), samples: values },
    });
    const rows = [row("a", [100, 200, 300]), row("b", [800, 800]), row("broken", "exit 1")];
    assert.equal(ratio(rows, "a", "b").value, 0.25);
    assert.equal(target(rows, "a ≤ 0.25 × b", "a", "b", "<=", 0.25).met, true);
    assert.equal(target(rows, "a < 0.25 × b", "a", "b", "<", 0.25).met, false);
    const undecided = target(rows, "a ≤ 0.25 × broken", "a", "broken", "<=", 0.25);
    assert.equal(undecided.ratio, null);
    assert.equal(undecided.met, null);
  });
});
