/**
 * The mount plan: a runtime-neutral list of what the box sees where. The namespaces runtime turns
 * it into bwrap arguments; other runtimes into OCI mounts. Order matters: later mounts cover
 * earlier ones.
 */
export type Mount =
  | { type: "bind"; source: string; target: string; writable: boolean; why: string }
  | { type: "tmpfs"; target: string; sizeBytes?: number; readOnly?: boolean; why: string }
  /** An empty, read-only file over `target` (hides a file's contents; reads return nothing). */
  | { type: "empty-file"; target: string; why: string }
  | { type: "symlink"; target: string; linkTo: string; why: string }
  /**
   * A file fourwall generates (the box's /etc/passwd, a sanitised ~/.gitconfig), read-only over
   * `target`. The supervisor writes `content` into the run dir as files/<name> (generatedFile()).
   */
  | { type: "file"; name: string; target: string; content: string; why: string }
  | { type: "proc"; target: "/proc" }
  | { type: "dev"; target: "/dev" };

/**
 * A host path fourwall must create before the box starts (and remove after), so that a mount can
 * stand on it: a persistence file that does not exist yet must not be creatable in the box.
 */
export interface Placeholder {
  path: string;
  kind: "file" | "dir";
  /** What a file placeholder holds ("{}" for JSON settings, so their readers do not choke). */
  content: string;
}

export interface FilesystemPlan {
  mounts: Mount[];
  placeholders: Placeholder[];
  /** Host paths the box writes (the workdir first). In root mode, each gets an idmapped mount. */
  writable: string[];
  /** The box's HOME and working directory. */
  home: string;
  cwd: string;
  /**
   * The `.git` entries (git dirs and pointer files) the plan found and guards. One that appears
   * during the run is a repository the box made: the wall cannot guard it (docs/filesystem.md),
   * the supervisor names it at exit.
   */
  gitEntries: string[];
  /** Git dirs by their shape (bare repositories, no `.git` in the path) the plan found and guards. */
  bareGitDirs: string[];
  /** Tool config that runs code on the host (lists.ts TOOL_CONFIG) the plan found: read-only. */
  toolConfigs: string[];
  /** Things the plan chose not to do, for --verbose and the audit log (never a security hole). */
  notes: string[];
}
