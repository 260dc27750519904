import path from "node:path";
import { packageRoot } from "../../core/paths.js";

/** The native helper that mounts the copy-on-write layer (compiled by scripts/setup.sh). */
export const overlayHelperPath = () => path.join(packageRoot(), "native", "build", "fourwall-overlay");
