/**
 * Step timings of one box's start and end, for profiling (docs/benchmarks.md): with
 * FOURWALL_TRACE=1 in fourwall's environment (the daemon's and its callers' alike), each run writes
 * one line per step to fourwall's stderr (the daemon's, not the caller's): milliseconds since the
 * run began, and since the step before. Off, it costs one property read per step.
 */
const enabled = Boolean(process.env.FOURWALL_TRACE);

export interface Trace {
  step(label: string): void;
  /** Writes the steps (nothing when tracing is off). */
  end(): void;
}

const off: Trace = { step() {}, end() {} };

export function startTrace(name: string): Trace {
  if (!enabled) return off;
  const t0 = process.hrtime.bigint();
  const steps: [string, bigint][] = [];
  return {
    step(label) {
      steps.push([label, process.hrtime.bigint()]);
    },
    end() {
      let last = t0;
      const ms = (ns: bigint) => (Number(ns) / 1e6).toFixed(1).padStart(7);
      const lines = steps.map(([label, t]) => {
        const line = `fourwall-trace ${name} ${ms(t - t0)} ${ms(t - last)}  ${label}`;
        last = t;
        return line;
      });
      process.stderr.write(`${lines.join("\n")}\n`);
    },
  };
}
