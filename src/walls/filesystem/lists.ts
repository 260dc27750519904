/**
 * The built-in lists of the filesystem wall. Data, reviewed like code: a line added here is a
 * secret that no box can read, or a file that no box can turn into a way back onto the host.
 */

/** Secrets under the user's home, always invisible inside the box (relative to ~; * globs allowed). */
export const HOME_SECRETS = [
  // keys and cloud credentials
  ".ssh",
  ".gnupg",
  ".aws",
  ".azure",
  ".config/gcloud",
  ".kube",
  ".docker",
  ".oci",
  ".config/doctl",
  ".databrickscfg",
  ".boto",
  ".s3cfg",
  ".terraform.d",
  ".vault-token",
  // package-registry and forge tokens
  ".netrc",
  ".npmrc",
  ".yarnrc",
  ".yarnrc.yml",
  ".pypirc",
  ".gem/credentials",
  ".cargo/credentials",
  ".cargo/credentials.toml",
  ".git-credentials",
  ".config/git/credentials",
  ".config/gh",
  ".config/hub",
  ".config/glab-cli",
  // password stores and keyrings
  ".password-store",
  ".local/share/keyrings",
  ".config/op",
  ".pgpass",
  ".my.cnf",
  // browser profiles (cookies and saved logins)
  ".mozilla",
  ".thunderbird",
  ".config/google-chrome",
  ".config/chromium",
  ".config/BraveSoftware",
  ".config/microsoft-edge",
  ".config/vivaldi",
  // shell and REPL histories carry pasted secrets
  ".bash_history",
  ".zsh_history",
  ".history",
  ".python_history",
  ".node_repl_history",
  ".psql_history",
  ".mysql_history",
  ".lesshst",
  ".viminfo",
  // fourwall's own state (approvals, boxes)
  ".config/fourwall",
  ".local/state/fourwall",
  ".cache/fourwall",
] as const;

/**
 * What of HOME the box sees (read-only), relative to ~ (* globs allowed): an allowlist, because a
 * deny list of credentials always lags (~/.kaggle, ~/.cache/huggingface/token, ~/.m2, ...). Shell
 * rc files and config that tools read and that holds no secret by design; toolchains that live in
 * HOME (version managers); every PATH directory under HOME is added at plan time. ~/.gitconfig is
 * not here: the box gets a sanitised copy (no credential helpers, includes or tokens). HOME_SECRETS
 * stays the second net for what an allowlisted directory may hold. Presets and
 * `filesystem.homeVisible` add more (agents' own dirs).
 * Measured (docs/filesystem.md): git, node, npm, python3 and pip need nothing of HOME to run.
 */
/** Shells' start-up files: read-only wherever they are, a box cannot change what the next shell runs. */
export const SHELL_STARTUP_FILES = [
  ".bashrc",
  ".bash_profile",
  ".bash_login",
  ".bash_logout",
  ".profile",
  ".zshrc",
  ".zshenv",
  ".zprofile",
  ".zlogin",
  ".zlogout",
] as const;

export const HOME_VISIBLE = [
  // shells (read-only: a box cannot change what the host's next shell runs)
  ...SHELL_STARTUP_FILES,
  ".inputrc",
  ".editorconfig",
  // git's other global files (its config comes as a sanitised copy)
  ".config/git/ignore",
  ".config/git/attributes",
  ".gitignore_global",
  // toolchains and version managers (binaries and installed versions, no credentials)
  ".nvm",
  ".volta",
  ".fnm",
  ".pyenv",
  ".rbenv",
  ".asdf",
  ".rustup",
  ".cargo/bin",
  ".local/bin",
  ".local/lib/python3*",
  ".deno/bin",
  ".bun/bin",
  "go/bin",
  "go/pkg/mod",
] as const;

/**
 * Paths under HOME that make the host run something at a later login or session: guarded when
 * HOME itself is writable (HOME is the workdir or inside it), on top of the shell start-up files.
 */
export const HOME_PERSISTENCE: readonly { path: string; why: string }[] = [
  { path: ".config/autostart", why: "desktop sessions start these programs" },
  { path: ".config/systemd/user", why: "systemd --user runs these units" },
  { path: ".config/environment.d", why: "systemd --user sets this environment (PATH, LD_PRELOAD)" },
  { path: ".local/bin", why: "on PATH in the host's shells" },
  { path: ".config/fish", why: "fish runs config.fish and conf.d at start" },
];

/** Secrets outside any home. */
export const SYSTEM_SECRETS = ["/var/run/secrets", "/etc/ssh/ssh_host_*_key", "/root/.ssh"] as const;

/** Files in the workdir whose contents are secrets (relative to the workdir). */
export const WORKDIR_SECRETS = [".env", ".env.*", "*.env"] as const;

/**
 * Paths in the workdir that would let code in the box run later on the host, outside the box
 * (git hooks and config, editor tasks, direnv, agent settings and MCP servers). They stay
 * read-only, and when they do not exist yet they cannot be created.
 */
export const PERSISTENCE_PATHS: readonly {
  path: string;
  kind: "file" | "dir";
  why: string;
  gitOnly?: true;
}[] = [
  { path: ".git/hooks", kind: "dir", why: "git runs hooks on the host's next commit", gitOnly: true },
  {
    path: ".git/config",
    kind: "file",
    why: "core.hooksPath, fsmonitor, aliases and filters run commands",
    gitOnly: true,
  },
  { path: ".gitmodules", kind: "file", why: "submodule URLs and update commands", gitOnly: true },
  { path: ".envrc", kind: "file", why: "direnv runs it on cd" },
  { path: ".vscode", kind: "dir", why: "tasks and settings run commands in the editor" },
  { path: ".idea", kind: "dir", why: "run configurations and tool settings" },
  { path: ".devcontainer", kind: "dir", why: "postCreate commands" },
  { path: ".mcp.json", kind: "file", why: "MCP servers the agent starts on the host" },
  { path: ".claude/settings.json", kind: "file", why: "Claude Code hooks run commands" },
  { path: ".claude/settings.local.json", kind: "file", why: "Claude Code hooks run commands" },
  { path: ".codex/config.toml", kind: "file", why: "Codex settings" },
  {
    path: ".pre-commit-config.yaml",
    kind: "file",
    why: "pre-commit runs its hooks on the host",
    gitOnly: true,
  },
  // tool config at the project's root that makes an ordinary command run a program it names
  // (TOOL_CONFIG below; nested copies and the rarer names are asked about by the gate instead).
  // Not here: names whose empty placeholder changes what the box's tools do (an empty
  // rust-toolchain.toml is an error to rustup; a .pnpmfile.cjs adds pnpmfileChecksum to the lockfile).
  { path: ".npmrc", kind: "file", why: "npm: script-shell, node-options run on `npm test`" },
  { path: ".yarnrc", kind: "file", why: "yarn 1: yarn-path runs on every `yarn`" },
  { path: ".yarnrc.yml", kind: "file", why: "yarn: yarnPath and plugins run on every `yarn`" },
  { path: "bunfig.toml", kind: "file", why: "bun: preload scripts run on `bun run`/`bun test`" },
  { path: ".cargo", kind: "dir", why: "cargo config: rustc-wrapper, runners run on `cargo build`" },
  { path: "mise.toml", kind: "file", why: "mise: env scripts, hooks and tool paths run on cd" },
  { path: ".mise.toml", kind: "file", why: "mise: env scripts, hooks and tool paths run on cd" },
  { path: ".tool-versions", kind: "file", why: "asdf/mise: a `path:` version runs on `node`, `python`" },
  { path: ".devcontainer.json", kind: "file", why: "initializeCommand runs on the host" },
];

/**
 * Project-local tool config that makes a host tool run a program of its choosing on its own, when
 * the user runs an ordinary command in the project (`npm test`, `cargo build`, `cd`, opening the
 * editor): the class, as name patterns matched against a path's last components (`*` within one
 * name). Anywhere in a tree the box writes, because most of these tools also read them from
 * subdirectories or parent directories (cargo, rustup, mise, asdf: every parent; npm, yarn, pnpm,
 * bun: a nested package's root). Existing ones are read-only in the box wherever the plan's walk
 * finds them; the gate asks about new ones (never applied unasked, never let through early). The
 * root-level PERSISTENCE_PATHS above are the same names with a placeholder, so they cannot be
 * created at all. Not here, on purpose: code the user runs by asking for it (`package.json`
 * scripts, Makefile, setup.py, conftest.py), version pins that name no path (.nvmrc,
 * .python-version), configs their tool will not load until trusted (.envrc needs `direnv allow`,
 * nvim's .nvim.lua and vim's exrc, gdb/lldb init files in the cwd).
 */
export const TOOL_CONFIG: readonly { pattern: string; why: string }[] = [
  { pattern: ".npmrc", why: "npm: script-shell, node-options run on `npm test`" },
  { pattern: ".yarnrc", why: "yarn 1: yarn-path runs on every `yarn`" },
  { pattern: ".yarnrc.yml", why: "yarn: yarnPath and plugins run on every `yarn`" },
  { pattern: ".pnpmfile.cjs", why: "pnpm runs its hooks on `pnpm install`" },
  { pattern: ".pnpmfile.mjs", why: "pnpm runs its hooks on `pnpm install`" },
  { pattern: "bunfig.toml", why: "bun: preload scripts run on `bun run`/`bun test`" },
  { pattern: ".cargo/config", why: "cargo (every parent dir): rustc-wrapper, runners, aliases" },
  { pattern: ".cargo/config.toml", why: "cargo (every parent dir): rustc-wrapper, runners, aliases" },
  { pattern: "rust-toolchain", why: "rustup (every parent dir): a toolchain path runs its cargo/rustc" },
  { pattern: "rust-toolchain.toml", why: "rustup (every parent dir): a toolchain path runs its cargo/rustc" },
  { pattern: "mise.toml", why: "mise (every parent dir): env scripts, hooks, tool paths" },
  { pattern: "mise.*.toml", why: "mise (every parent dir): env scripts, hooks, tool paths" },
  { pattern: ".mise.toml", why: "mise (every parent dir): env scripts, hooks, tool paths" },
  { pattern: ".mise.*.toml", why: "mise (every parent dir): env scripts, hooks, tool paths" },
  { pattern: ".mise/config*.toml", why: "mise (every parent dir): env scripts, hooks, tool paths" },
  { pattern: "mise/config*.toml", why: "mise (every parent dir): env scripts, hooks, tool paths" },
  { pattern: ".config/mise.toml", why: "mise (every parent dir): env scripts, hooks, tool paths" },
  { pattern: ".config/mise.*.toml", why: "mise (every parent dir): env scripts, hooks, tool paths" },
  { pattern: ".config/mise/config*.toml", why: "mise (every parent dir): env scripts, hooks, tool paths" },
  { pattern: ".tool-versions", why: "asdf/mise (every parent dir): a `path:` version runs as `node`" },
  { pattern: ".devcontainer.json", why: "dev containers: initializeCommand runs on the host" },
  { pattern: ".devcontainer/devcontainer.json", why: "dev containers: initializeCommand runs on the host" },
  { pattern: "lefthook*.yml", why: "lefthook's git hooks run its commands on the next commit" },
  { pattern: "lefthook*.yaml", why: "lefthook's git hooks run its commands on the next commit" },
  { pattern: "lefthook*.toml", why: "lefthook's git hooks run its commands on the next commit" },
  { pattern: "lefthook*.json", why: "lefthook's git hooks run its commands on the next commit" },
  { pattern: ".lefthook*.yml", why: "lefthook's git hooks run its commands on the next commit" },
  { pattern: ".lefthook*.yaml", why: "lefthook's git hooks run its commands on the next commit" },
  { pattern: ".lefthook*.toml", why: "lefthook's git hooks run its commands on the next commit" },
  { pattern: ".lefthook*.json", why: "lefthook's git hooks run its commands on the next commit" },
  { pattern: ".bazelrc", why: "bazel: --workspace_status_command, --run_under run on `bazel build`" },
  { pattern: ".mvn/extensions.xml", why: "maven loads these extensions' code on every `mvn`" },
  { pattern: ".mvn/jvm.config", why: "maven: JVM options (-javaagent) on every `mvn`" },
  { pattern: ".mvn/maven.config", why: "maven: options on every `mvn`" },
  { pattern: ".irbrc", why: "irb loads ./.irbrc at start" },
  { pattern: ".pryrc", why: "pry loads ./.pryrc at start" },
  { pattern: ".Rprofile", why: "R runs ./.Rprofile at start" },
  { pattern: ".zed/settings.json", why: "Zed: language server commands run when the project opens" },
  { pattern: ".helix/languages.toml", why: "Helix: language server commands run when a file opens" },
  { pattern: ".cursor/mcp.json", why: "Cursor starts these MCP servers" },
  { pattern: ".gemini/settings.json", why: "Gemini CLI: MCP servers and hooks" },
];

/** Directories that hold host sockets (docker.sock, D-Bus, ssh-agent, X11): replaced by empty tmpfs. */
export const SOCKET_DIRS = ["/run", "/var/run", "/tmp", "/var/tmp", "/dev/shm", "/run/user"] as const;

/** Variables that pass into the box by default; everything else is dropped. */
export const DEFAULT_ENV_PASS = [
  "PATH",
  "HOME",
  "LANG",
  "LANGUAGE",
  "LC_*",
  "TERM",
  "TZ",
  "USER",
  "LOGNAME",
] as const;
