/**
 * `fourwall prove` (issue 4): the whole pen-test suite, canaries to teardown, as root and as an
 * ordinary user, against the same probes run with no box (`--against 'sh -c'`) to show what the
 * box itself costs. Target: the whole suite under 3 s (median) on the namespaces runtime.
 */
import type { BenchGroup, ExtraTable, GroupResult } from "./lib/group.js";
import { measureRows, ratio } from "./lib/group.js";
import type { Subject } from "./lib/measure.js";

const TARGET_MS = 3000;
/** nobody/nogroup: an ordinary uid that exists on every Debian host. */
const USER_ID = 65534;

export const prove: BenchGroup = {
  id: "prove",
  title: "fourwall prove (the whole suite, canaries to teardown)",
  async run(ctx): Promise<GroupResult> {
    const entry = `${ctx.repoRoot}/bin/fourwall.js`;
    const node = process.execPath;
    // A neutral directory: no fourwall.yaml of the checkout's changes what is proven.
    const work = ctx.tempDir({ uid: USER_ID, gid: USER_ID });
    const asUser = ["setpriv", "--reuid", String(USER_ID), "--regid", String(USER_ID), "--clear-groups"];
    const userEnv = { ...process.env, HOME: work, USER: "nobody", LOGNAME: "nobody" };
    const subjects: Subject[] = [
      {
        id: "prove-root",
        label: "fourwall prove (as root)",
        command: [node, entry, "prove"],
        shown: "node bin/fourwall.js prove",
        cwd: work,
        skip: ctx.isRoot ? undefined : "the bench is not running as root",
      },
      {
        id: "prove-user",
        label: `fourwall prove (as uid ${ctx.isRoot ? USER_ID : process.getuid!()})`,
        command: [...(ctx.isRoot ? asUser : []), node, entry, "prove"],
        shown: `${ctx.isRoot ? `${asUser.join(" ")} ` : ""}node bin/fourwall.js prove`,
        cwd: work,
        env: ctx.isRoot ? userEnv : process.env,
      },
      {
        id: "prove-no-box",
        label: "the same probes with no box (--against 'sh -c')",
        // With no box prove finds holes and exits 1, by design: only that outcome counts as a run.
        command: ["/bin/sh", "-c", `"$0" "$1" prove --against 'sh -c' >/dev/null; [ $? -eq 1 ]`, node, entry],
        shown: "node bin/fourwall.js prove --against 'sh -c' (expected to exit 1)",
        cwd: work,
      },
    ];
    const rows = await measureRows(ctx, "prove", subjects, (id) =>
      id === "prove-no-box" ? "baseline" : "subject",
    );
    const median = (id: string) => {
      const row = rows.find((r) => r.id === id);
      return row?.result.ok ? row.result.stats.median : undefined;
    };
    const verdict: ExtraTable = {
      title: "prove target",
      header: ["target", "measured (median)", "met"],
      rows: ["prove-root", "prove-user"].map((id) => {
        const ms = median(id);
        return [
          `${rows.find((r) => r.id === id)!.label} < ${TARGET_MS / 1000} s`,
          ms === undefined ? "n/a" : `${(ms / 1000).toFixed(2)} s`,
          ms === undefined ? "unknown" : ms < TARGET_MS ? "yes" : "no",
        ];
      }),
    };
    return {
      id: this.id,
      title: this.title,
      method:
        "Each run starts the canaries (HTTP/HTTPS/UDP origins, a throwaway home with planted secrets, host sockets, " +
        "and as root an outside host in a network namespace), builds a box from the default policy exactly as `run` does, " +
        "runs every probe inside, checks the host and tears everything down. Timed from spawn to exit of `fourwall prove`.",
      rows,
      ratios: [ratio(rows, "prove-root", "prove-no-box"), ratio(rows, "prove-user", "prove-no-box")],
      targets: [],
      extraTables: [verdict],
      notes: [
        "The no-box row runs the same probe program under `sh -c`; it reports holes (exit 1) by design.",
      ],
    };
  },
};
