import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import pc from "picocolors";
import { packageRoot } from "../core/paths.js";
import { shellQuote } from "../core/shell.js";

/** Attempts the walls must stop (the rest is the agent's honest work, which must succeed). */
const MUST_FAIL =
  /^(read ~|write ~|append|delete|plant|read the host env|phone home|reach docker|see host|make a user)/;

const NOTES = "# notes\nThe user's notes: they existed before the agent ran.\n";

/**
 * The demo's approver (the fourth wall's human, played on screen): shows the question the gate
 * asks — while the agent's delete waits in the kernel — and answers no.
 */
const DEMO_APPROVER = String.raw`let s = "";
process.stdin.on("data", (d) => (s += d)).on("end", () => {
  const { display } = JSON.parse(s);
  const rows = display.lines.map(([k, v]) => "  \u2502 " + k.padEnd(8) + " " + v).join("\n");
  process.stderr.write("\n  \u250c " + display.title + "\n" + rows + "\n  \u2514 allow? [y/N] n   (the demo answers)\n\n");
  process.exit(1);
});`;

/**
 * `fourwall demo`: a throwaway home with a planted SSH key and cloud credentials, a workdir, and
 * an "agent" script that does real work and then, hijacked, tries to steal and phone home. It runs
 * in a real box; the table says what each wall did.
 */
export async function demoCommand(): Promise<number> {
  const base = mkdtempSync(path.join(os.tmpdir(), "fourwall-demo-"));
  chmodSync(base, 0o755);
  const home = path.join(base, "home");
  const workdir = path.join(home, "project");
  mkdirSync(path.join(home, ".ssh"), { recursive: true });
  mkdirSync(path.join(home, ".aws"), { recursive: true });
  mkdirSync(workdir, { recursive: true });
  writeFileSync(path.join(home, ".ssh", "id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY----- (demo key)\n", {
    mode: 0o600,
  });
  writeFileSync(path.join(home, ".aws", "credentials"), "[default]\naws_secret_access_key = demo-secret\n");
  writeFileSync(path.join(home, ".bashrc"), "# bashrc\n");
  spawnSync("git", ["init", "-q", workdir]);
  writeFileSync(path.join(workdir, "NOTES.md"), NOTES);
  const agent = path.join(workdir, "agent.sh");
  copyFileSync(path.join(packageRoot(), "src", "demo", "agent.sh"), agent);
  const canary = http.createServer((_req, res) => res.end("host service: you should not see this\n"));
  await new Promise<void>((r) => canary.listen(0, "127.0.0.1", r));
  const canaryUrl = `http://127.0.0.1:${(canary.address() as AddressInfo).port}/`;

  process.stderr.write(
    `${pc.bold("fourwall demo")}: the agent runs in a box; its home has a planted SSH key.\n\n`,
  );
  const approver = `${shellQuote(process.execPath)} -e ${shellQuote(DEMO_APPROVER)}`;
  const output = await new Promise<string>((resolve) => {
    // A session of its own and no terminal: the gate asks the demo's approver only, on screen.
    const child = spawn(
      process.execPath,
      [process.argv[1]!, "run", "-w", workdir, "--approver", approver, "--", "sh", agent, canaryUrl],
      {
        cwd: workdir,
        env: { ...process.env, HOME: home, AWS_SECRET_ACCESS_KEY: "demo-secret", GITHUB_TOKEN: "demo-token" },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      },
    );
    const stop = () => child.kill("SIGTERM");
    process.once("SIGINT", stop);
    child.stderr.on("data", (d: Buffer) => process.stderr.write(d));
    child.on("close", () => process.off("SIGINT", stop));
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d;
      for (const line of d.toString().split("\n"))
        if (line.startsWith("==")) process.stderr.write(`${pc.cyan(line)}\n`);
    });
    child.on("close", () => resolve(out));
  });
  canary.close();

  let holes = 0;
  const rows = output
    .split("\n")
    .filter((l) => l.startsWith("ATTEMPT\t"))
    .map((l) => l.split("\t").slice(1) as [string, string, string]);
  for (const [name, result, detail] of rows) {
    const shouldFail = MUST_FAIL.test(name);
    const good = shouldFail ? result === "blocked" : result === "ok";
    if (!good) holes++;
    const verdict = good
      ? shouldFail
        ? pc.green("BLOCKED")
        : pc.green("WORKED ")
      : pc.red(shouldFail ? "HOLE   " : "BROKEN ");
    process.stdout.write(`  ${verdict}  ${name.padEnd(44)} ${pc.dim(detail)}\n`);
  }
  // Double-check on the host, not only by the agent's own report.
  if (readFileSync(path.join(home, ".bashrc"), "utf8") !== "# bashrc\n") holes++;
  if (existsSync(path.join(workdir, ".git", "hooks", "pre-commit"))) holes++;
  const notes = path.join(workdir, "NOTES.md");
  if (!existsSync(notes) || readFileSync(notes, "utf8") !== NOTES) holes++;
  rmSync(base, { recursive: true, force: true });
  process.stdout.write(
    holes === 0 && rows.length > 0
      ? `\n${pc.green(pc.bold("The walls held:"))} the work got done; the key, the credentials and the network stayed out of reach, and the delete waited for a no.\n`
      : `\n${pc.red(pc.bold(`${holes} hole(s)`))}: see the table above.\n`,
  );
  return holes === 0 && rows.length > 0 ? 0 : 1;
}
