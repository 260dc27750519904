import type { ProveReport } from "../types.js";

/** The machine-readable result (`--json`): the report as is, one stable shape (version 1). */
export const renderJson = (report: ProveReport): string => `${JSON.stringify(report, null, 2)}\n`;
