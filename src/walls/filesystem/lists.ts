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
