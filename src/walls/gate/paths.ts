import { nativeHelperPath } from "../../core/paths.js";

/** The native helper that mounts the copy-on-write layer (compiled by scripts/setup.sh). */
export const overlayHelperPath = () => nativeHelperPath("overlay");
