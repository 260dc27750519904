/**
 * The docker runtime for the integration tests: the host's daemon when fourwall can use it, else a
 * private one (test/helpers/dockerd.ts), and fourwall's "tools" image (python3, curl, git, node,
 * npm, openssl on busybox) built in it once, so the same real-client tests run in every runtime.
 * `env` is what a launch needs (DOCKER_HOST) and `flags` the image to run (`--image`, taken by
 * `fourwall run` and weak-box.ts alike); `fixture` gives the workdir
 * an unprivileged owner, as the runtime requires (Docker 20.10 has no idmapped mounts).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { DockerRuntime } from "../../src/runtimes/docker.js";
import { buildImage, imageTag } from "../../src/runtimes/docker-image.js";
import { type Fixture, type Mode, makeFixture, USER_UID } from "./box.js";
import { startDockerd } from "./dockerd.js";

export { dockerdUnavailable } from "./dockerd.js";

export interface DockerBoxes {
  host: string;
  /** The tools image's tag. */
  image: string;
  env: { DOCKER_HOST: string };
  /** `--image TAG`: the tools image. */
  imageFlags: string[];
  stop(): Promise<void>;
}

const client = (host: string) => ({ PATH: "/usr/bin:/bin", DOCKER_HOST: host });

/**
 * Names of fourwall's containers the daemon still has (none may be left after a test). With
 * `prefixes`, only those whose working directory (the box's workdir on the host) starts with one
 * of them: the daemon may be the whole run's (scripts/test.sh), with other files' boxes on it.
 */
export function fourwallContainers(host: string, prefixes?: string[]): string[] {
  const r = spawnSync("/usr/bin/docker", ["ps", "-a", "--format", "{{.Names}}"], {
    env: client(host),
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`docker ps: ${r.stderr}`);
  const names = r.stdout.split("\n").filter((n) => n.startsWith("fourwall-"));
  if (!prefixes) return names;
  // one at a time, briefly: a container the daemon is stuck on must not hold the test
  return names.filter((name) => {
    const workdir = spawnSync("/usr/bin/docker", ["inspect", "--format", "{{.Config.WorkingDir}}", name], {
      env: client(host),
      encoding: "utf8",
      timeout: 10_000,
    }).stdout?.trim();
    return workdir !== undefined && prefixes.some((p) => workdir.startsWith(p));
  });
}

export async function startDockerBoxes(): Promise<DockerBoxes> {
  const existing = new DockerRuntime().check().available;
  const daemon = existing ? undefined : await startDockerd();
  const host = daemon?.host ?? process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock";
  try {
    const tag = imageTag("tools");
    if ("why" in tag) throw new Error(`fourwall's tools image: ${tag.why}`);
    const have =
      spawnSync("/usr/bin/docker", ["image", "inspect", tag.tag], { env: client(host) }).status === 0;
    if (!have) await buildImage("tools", tag.tag, "/usr/bin/docker", client(host));
    return {
      host,
      image: tag.tag,
      env: { DOCKER_HOST: host },
      imageFlags: ["--image", tag.tag],
      stop: async () => daemon?.stop(),
    };
  } catch (error) {
    await daemon?.stop();
    throw error;
  }
}

/** A fixture whose home (and workdir) belong to an unprivileged user; fourwall itself runs as `mode`'s user. */
export function dockerFixture(mode: Mode = "root"): Fixture {
  const fx = makeFixture(mode);
  spawnSync("chown", ["-R", `${USER_UID}:${USER_UID}`, fx.home]);
  return fx;
}

/** The docker CLI against one daemon: `docker` gives the status and output, `must` fails the test on an error. */
export function dockerCli(host: string) {
  const docker = (...args: string[]) => {
    const r = spawnSync("/usr/bin/docker", args, {
      env: { ...process.env, DOCKER_HOST: host },
      encoding: "utf8",
      timeout: 240_000,
    });
    return { code: r.status ?? -1, out: `${r.stdout}`, err: `${r.stderr}` };
  };
  const must = (...args: string[]) => {
    const r = docker(...args);
    assert.equal(r.code, 0, `docker ${args.join(" ")}: ${r.err}`);
    return r.out.trim();
  };
  return { docker, must };
}

/**
 * Takes the default route out of a container's network namespace, from outside (the agent holds no
 * CAP_NET_ADMIN). docker 20.10 still gives an --internal network a default route and leaves the
 * drop to iptables, which the test daemon does not touch; a pod under the NetworkPolicy has no way
 * out but the proxy.
 */
export function cutDefaultRoute(pid: string): void {
  const cut = spawnSync("nsenter", ["-t", pid, "-n", "ip", "route", "del", "default"], { encoding: "utf8" });
  assert.equal(cut.status, 0, cut.stderr);
}
