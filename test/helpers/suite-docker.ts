/**
 * One docker daemon and one "tools" image for a whole test run (scripts/test.sh starts this once):
 * every test file that needs docker (docker-box.ts's startDockerBoxes) then finds a daemon fit for
 * fourwall at DOCKER_HOST, with the image already in it, instead of starting a private daemon and
 * importing the image again (tens of seconds each on a loaded machine). Writes the DOCKER_HOST value
 * to the file named by the first argument (empty: no docker here), then stays until SIGTERM and
 * stops the daemon it started. Run by itself, each test file still starts its own.
 */
import { writeFileSync } from "node:fs";
import { dockerdUnavailable, startDockerBoxes } from "./docker-box.js";

const out = process.argv[2];
if (!out) throw new Error("usage: suite-docker.ts FILE");
if (dockerdUnavailable()) {
  writeFileSync(out, "");
  process.exit(0);
}
const boxes = await startDockerBoxes();
writeFileSync(out, boxes.host);
const stop = async () => {
  await boxes.stop();
  process.exit(0);
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
setInterval(() => {}, 60_000);
