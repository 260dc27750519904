import type { Socket } from "node:net";

// Idle detection for tunnels without per-chunk work: socket.setTimeout() re-arms a timer on every read
// and write, which showed up in bulk-transfer profiles. Instead one unref'd interval per proxy compares
// each tunnel's byte counters with what it saw last time and closes tunnels that have not moved.

interface Watched {
  sockets: Socket[];
  onIdle: () => void;
  last: number;
  since: number;
}

export class IdleSweeper {
  private readonly watched = new Set<Watched>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly idleMs: number) {}

  /** Watches a group of sockets as one: any byte moving on any of them counts as activity. */
  watch(sockets: Socket[], onIdle: () => void): () => void {
    const entry: Watched = { sockets, onIdle, last: -1, since: Date.now() };
    this.watched.add(entry);
    if (!this.timer) {
      // Checking four times per idle period closes an idle tunnel between 1x and 1.25x the limit.
      const every = Math.max(20, Math.min(5000, Math.floor(this.idleMs / 4)));
      this.timer = setInterval(() => this.sweep(), every);
      this.timer.unref();
    }
    // The interval stays while the proxy lives (unref'd, so it holds nothing open): re-arming it for
    // every short tunnel cost each new tunnel a timer set-up and tear-down.
    return () => {
      this.watched.delete(entry);
    };
  }

  private sweep(): void {
    const now = Date.now();
    for (const entry of this.watched) {
      let total = 0;
      for (const s of entry.sockets) total += s.bytesRead + s.bytesWritten;
      if (total !== entry.last) {
        entry.last = total;
        entry.since = now;
      } else if (now - entry.since >= this.idleMs) {
        this.watched.delete(entry);
        entry.onIdle();
      }
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.watched.clear();
  }
}
