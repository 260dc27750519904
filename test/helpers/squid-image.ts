/**
 * A base for k8s/squid.Dockerfile made from this host's own squid (no Debian mirror is reachable
 * from the tests): fourwall's tools image plus the files of the host's squid-openssl, squid-common
 * and openssl packages (docs left out), the error templates (squid-langpack), and the shared libraries ldd finds for squid and its
 * helpers, written into a container of the tools image (`docker cp -` of a tar stream) and
 * committed. The tag hashes the inputs (the tools tag, the package database, squid's binary), so
 * a daemon that has it already (scripts/test.sh's, or a rerun's) reuses it.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, statSync } from "node:fs";
import { hostMembers } from "../../src/runtimes/docker-image.js";

const PACKAGES = ["squid-openssl", "squid-common", "openssl"];
const SQUID = "/usr/sbin/squid";
/** Bump when what goes in changes. */
const VERSION = "3";

/** The tag, or why this host cannot make the base (no squid-openssl: scripts/setup.sh installs it). */
export function squidBaseTag(toolsTag: string): { tag: string } | { why: string } {
  if (!existsSync(SQUID)) return { why: "the host has no squid (apt-get install squid-openssl)" };
  const h = createHash("sha256").update(`${VERSION}:${toolsTag}:${PACKAGES.join(",")}\n`);
  for (const p of [SQUID, "/var/lib/dpkg/status"]) {
    const s = statSync(p);
    h.update(`${p}:${s.size}:${s.mtimeMs}\n`);
  }
  return { tag: `fourwall-squid-base:${h.digest("hex").slice(0, 12)}` };
}

/** The packages' files (regular files and links, no docs), squid and its helpers for ldd. */
function squidFiles(): { programs: string[]; files: string[] } {
  const r = spawnSync("dpkg", ["-L", ...PACKAGES], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`dpkg -L ${PACKAGES.join(" ")}: ${r.stderr}`);
  const files = r.stdout
    .split("\n")
    .filter((p) => p.startsWith("/") && !/^\/usr\/share\/(doc|man|lintian)\//.test(p))
    .filter((p) => existsSync(p) && !lstatSync(p).isDirectory());
  const programs = files.filter((p) => p === SQUID || p.startsWith("/usr/lib/squid/"));
  return { programs, files };
}

/** Builds `tag` on `toolsTag` in the daemon at `env.DOCKER_HOST` (the caller checked it is missing). */
export async function buildSquidBase(toolsTag: string, tag: string, env: NodeJS.ProcessEnv): Promise<void> {
  const { programs, files } = squidFiles();
  // the tools image has the merged-/usr links already: a tar member over them would replace them
  // the error templates (squid's errors/ links to squid-langpack, which squid-common depends on), whole
  const trees = ["/usr/share/squid", "/usr/share/squid-langpack"].filter(existsSync).map((dir) => ({ dir }));
  const members = hostMembers({ programs, trees, links: files }).filter(
    (m) => !["bin", "sbin", "lib", "lib64"].includes(m),
  );
  const docker = (...args: string[]) => {
    const r = spawnSync("/usr/bin/docker", args, { env, encoding: "utf8", timeout: 120_000 });
    if (r.status !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const id = docker("create", toolsTag, "true");
  try {
    await new Promise<void>((resolve, reject) => {
      const tar = spawn("tar", ["-cf", "-", "--no-recursion", "-C", "/", "--null", "-T", "-"], {
        stdio: ["pipe", "pipe", "pipe"],
      });
      const cp = spawn("/usr/bin/docker", ["cp", "-", `${id}:/`], {
        stdio: [tar.stdout, "ignore", "pipe"],
        env,
      });
      let errors = "";
      tar.stderr.on("data", (d) => (errors += d));
      cp.stderr!.on("data", (d) => (errors += d));
      tar.stdin.end(members.map((m) => `${m}\0`).join(""));
      cp.on("error", reject);
      cp.on("close", (code) =>
        code === 0 ? resolve() : reject(new Error(`docker cp: ${errors.slice(-500)}`)),
      );
    });
    docker("commit", "--message", `fourwall squid base ${tag}`, id, tag);
  } finally {
    docker("rm", "-f", id);
  }
}
