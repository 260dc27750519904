import { nativeHelperPath } from "../../core/paths.js";

/** The native helper that mounts the copy-on-write layer (compiled by scripts/setup.sh). */
export const overlayHelperPath = () => nativeHelperPath("overlay");

/** The gate's pause at the action (native/fourwall-pause.c): both halves, the box's and the host's. */
export const pauseHelperPath = () => nativeHelperPath("pause");
