import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { WallError } from "../../../src/core/errors.js";
import { checkCommand, shebang } from "../../../src/plan/command.js";
import { fakeHost } from "../../helpers/fake-host.js";
import { HOME, testPlan, WORK } from "../../helpers/plan.js";

// The command is found the way the box's shell will find it, before launch.
const HOST = [
  `${WORK}/`,
  "/usr/bin/",
  "/bin/sh",
  "/usr/bin/env",
  "/usr/bin/node",
  "/tmp/agent/bin/",
  "/var/cache/agents/bin/",
];

function check(
  command: string[],
  extra: string[] = [],
  contents: Record<string, string> = {},
  policy: object = {},
) {
  const host = [...HOST, ...extra];
  const plan = testPlan({ host, policy, command: ["/bin/sh"] });
  return () =>
    checkCommand(command, {
      filesystem: plan.filesystem,
      boxPath: "/tmp/agent/bin:/var/cache/agents/bin:/usr/bin:/bin",
      host: fakeHost(host, {}, contents),
    });
}

describe("checkCommand", () => {
  it("finds a command on the box's PATH, by path, or relative to the workdir", () => {
    check(["sh"])();
    check(["/usr/bin/node", "-e", "0"])();
    check(["./run.sh"], [`${WORK}/run.sh`])();
    check(["claude"], ["/var/cache/agents/bin/claude"])();
  });

  it("names a command under /tmp as not visible (private /tmp) with the --ro fix", () => {
    assert.throws(check(["claude"], ["/tmp/agent/bin/claude"]), (e: WallError) => {
      assert.equal(e.wall, "filesystem");
      assert.match(e.message, /\/tmp\/agent\/bin\/claude is not visible in the box: \/tmp is private/);
      assert.match(e.fix, /--ro \/tmp\/agent\/bin/);
      return true;
    });
  });

  it("finds it once --ro shows its directory", () => {
    check(["claude"], ["/tmp/agent/bin/claude"], {}, { filesystem: { readOnly: ["/tmp/agent"] } })();
  });

  it("says 'not found in the box' for a missing command", () => {
    assert.throws(check(["nosuch"]), /nosuch not found in the box \(PATH=/);
    assert.throws(check(["/no/such/program"]), /\/no\/such\/program not found in the box/);
  });

  it("follows a symlink to a target the box cannot see", () => {
    assert.throws(
      check(["claude"], ["/var/cache/agents/bin/claude->/tmp/agent/bin/real", "/tmp/agent/bin/real"]),
      /\/tmp\/agent\/bin\/real is not visible/,
    );
  });

  it("checks a script's interpreter, through env too", () => {
    const script = "/var/cache/agents/bin/tool";
    check(["tool"], [], { [script]: "#!/usr/bin/env node\n" })();
    assert.throws(
      check(["tool"], ["/tmp/agent/bin/node24"], { [script]: "#!/tmp/agent/bin/node24\n" }),
      /is a script for \/tmp\/agent\/bin\/node24, and .* is not visible/,
    );
    assert.throws(
      check(["tool"], [], { [script]: "#!/usr/bin/env deno\n" }),
      /a script for deno, and deno not found/,
    );
  });

  it("reads a shebang line as words", () => {
    assert.deepEqual(shebang("#!/usr/bin/env -S node --x\nrest"), ["/usr/bin/env", "-S", "node", "--x"]);
    assert.equal(shebang("\x7fELF"), undefined);
  });

  it("a HOME entry outside the allowlist is hidden until --ro shows it", () => {
    const host = [...HOST, `${HOME}/tools/agent`];
    const plan = testPlan({ host, command: ["/bin/sh"] });
    assert.throws(
      () =>
        checkCommand([`${HOME}/tools/agent`], {
          filesystem: plan.filesystem,
          boxPath: "/usr/bin",
          host: fakeHost(host),
        }),
      /not visible in the box: \/home\/alice is private/,
    );
  });
});
