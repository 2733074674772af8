"""Read a shell launch script the way bash would: environment lines, $VARS, line continuations, and the
launcher (`accelerate launch`, `torchrun`, `python -m torch.distributed.launch`, `deepspeed`, `python`,
`uv run`, a tool's own console command such as `lerobot-train`, `$(which lerobot-train)`).

Its job is only "which tool, which flags": the tool is recognised by atlas/planning/launchers (each tool's
switches decide which flags take a value); what the flags mean is the launcher module's business.

The trap it exists for: `--flag=4 \\   # comment` — the backslash escapes the space, not the newline, so
the command ends on that line (with a stray ' ' argument) and every later flag runs as its own command.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

PYTHONS = ("python", "python3")
# Launcher options that take no value.
LAUNCHER_FLAGS = {"--multi_gpu", "--multi-gpu", "--use_deepspeed", "--use_fsdp", "--cpu", "--standalone", "--debug",
                  "--no_python", "--no-python", "--module", "-m", "--same_network", "--no_local_rank"}
_WHICH = re.compile(r"\$\(\s*(?:which|command -v)\s+([^)\s]+)\s*\)|`\s*(?:which|command -v)\s+([^`\s]+)\s*`")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_COMMENT_AFTER_BACKSLASH = re.compile(r"\\[ \t]+#")


@dataclass
class Issue:
    """Something the shell does that the author probably did not mean; `line` is 1-based."""

    kind: str
    line: int
    message: str
    dropped: list[str] = field(default_factory=list)


@dataclass
class LaunchCommand:
    launcher: str  # accelerate | torchrun | deepspeed | python
    launcher_args: dict[str, str | bool]
    script: str
    args: dict[str, str | bool]  # script flags without the leading dashes ('-' inside a name read as '_')
    positional: list[str]
    env: dict[str, str]
    first_line: int
    last_line: int
    tool: str = "unknown"  # the recognised tool's key (atlas/planning/launchers)
    prefix: str = ""  # words before the launcher that a corrected command keeps (`uv run`, `VAR=value` on the line)

    @property
    def world_size(self) -> int | None:
        """Processes this command starts, or None when the script does not say."""
        a = self.launcher_args
        nodes = int(a.get("nnodes") or a.get("num_machines") or a.get("num_nodes") or 1)
        if self.launcher == "python":
            return 1
        per_node = a.get("nproc_per_node") or a.get("num_processes") or a.get("num_gpus")
        if per_node and str(per_node).isdigit():
            return int(per_node) * (nodes if self.launcher != "accelerate" else 1)
        include = a.get("include")
        if isinstance(include, str) and ":" in include:
            return len(include.split(":", 1)[1].split(","))
        devices = self.visible_devices
        return len(devices) * nodes if devices else None

    @property
    def visible_devices(self) -> list[str] | None:
        value = self.env.get("CUDA_VISIBLE_DEVICES")
        return [d for d in value.split(",") if d.strip()] if value is not None else None


@dataclass
class LaunchScript:
    commands: list[LaunchCommand]
    env: dict[str, str]
    issues: list[Issue]
    unresolved: list[str]  # $VARS with no value in the script

    @property
    def training(self) -> LaunchCommand | None:
        return self.commands[-1] if self.commands else None


def logical_lines(text: str) -> tuple[list[tuple[int, int, str]], list[Issue]]:
    """Join continuation lines as bash does; report a comment after a trailing backslash."""
    out: list[tuple[int, int, str]] = []
    issues: list[Issue] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buf:
            start = number
        stripped = raw.rstrip("\n")
        if stripped.endswith("\\") and (len(stripped) - len(stripped.rstrip("\\"))) % 2 == 1:
            buf += stripped[:-1]
            continue
        if _COMMENT_AFTER_BACKSLASH.search(stripped) and not stripped.lstrip().startswith("#"):
            issues.append(Issue("comment_after_backslash", number,
                                f"line {number}: '\\' is followed by a comment, so it escapes a space instead of the "
                                "newline; the command ends here with a stray ' ' argument"))
        out.append((start, number, buf + stripped))
        buf = ""
    if buf:
        out.append((start, start, buf))
    return out, issues


def expand(token: str, env: dict[str, str], unresolved: list[str]) -> str:
    def sub(match: re.Match) -> str:
        name = match.group(1) or match.group(3)
        if name in env:
            return env[name]
        if match.group(2) is not None:
            return match.group(2)
        if name not in unresolved:
            unresolved.append(name)
        return match.group(0)

    return _VAR.sub(sub, token)


def parse_flags(tokens: list[str], switches: set[str]) -> tuple[dict[str, str | bool], list[str]]:
    """`--k=v`, `--k v` and `--switch` → {k: v}; other tokens are positional."""
    flags: dict[str, str | bool] = {}
    positional: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("-") and len(tok) > 1 and not _is_number(tok):
            key, eq, value = tok.lstrip("-").partition("=")
            key = key.replace("-", "_")
            if eq:
                flags[key] = value
            elif key in switches or tok in switches or i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                flags[key] = True
            else:
                flags[key] = tokens[i + 1]
                i += 1
        else:
            positional.append(tok)
        i += 1
    return flags, positional


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _split_launcher(tokens: list[str]) -> tuple[str, list[str], list[str]] | None:
    """(launcher, launcher tokens, script-and-args tokens) or None when this is not a launch."""
    if not tokens:
        return None
    head = tokens[0].rsplit("/", 1)[-1]
    if head == "uv" and len(tokens) > 1 and tokens[1] == "run":
        rest = [t for t in tokens[2:] if not t.startswith("-")][:1]
        return _split_launcher(tokens[tokens.index(rest[0]):]) if rest else None
    if head.endswith(".py"):
        return "python", [], tokens
    from atlas.planning.launchers import entry_points

    if head in entry_points():
        return "python", [], tokens
    if head == "accelerate" and len(tokens) > 1 and tokens[1] == "launch":
        return _until_script("accelerate", tokens[2:])
    if head == "torchrun":
        return _until_script("torchrun", tokens[1:])
    if head == "deepspeed":
        return _until_script("deepspeed", tokens[1:])
    if head.startswith(PYTHONS):
        rest = tokens[1:]
        if len(rest) >= 2 and rest[0] == "-m" and rest[1] in ("torch.distributed.launch", "torch.distributed.run"):
            return _until_script("torchrun", rest[2:])
        return "python", [], rest
    return None


def _until_script(launcher: str, tokens: list[str]) -> tuple[str, list[str], list[str]]:
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("-m", "--module") and i + 1 < len(tokens) and launcher != "torchrun":
            return launcher, tokens[:i], tokens[i:]
        if tok == "-m" and launcher == "torchrun" and i + 1 < len(tokens):
            return launcher, tokens[:i], tokens[i:]
        if not tok.startswith("-"):
            return launcher, tokens[:i], tokens[i:]
        if "=" in tok or tok in LAUNCHER_FLAGS:
            i += 1
        else:
            i += 2
    return launcher, tokens, []


def parse_launch_script(text: str, env: dict[str, str] | None = None) -> LaunchScript:
    """Every launch command in the script, its environment, and what bash would do differently."""
    lines, issues = logical_lines(text)
    scope = dict(env or {})
    unresolved: list[str] = []
    commands: list[LaunchCommand] = []
    for first, last, line in lines:
        try:
            # `$(which lerobot-train)` runs the tool's console command: read it as that command
            tokens = shlex.split(_WHICH.sub(lambda m: m.group(1) or m.group(2), line), comments=True)
        except ValueError as err:
            issues.append(Issue("syntax", first, f"line {first}: cannot be read as shell: {err}"))
            continue
        if not tokens:
            continue
        if tokens[0] == "export":
            tokens = tokens[1:]
        local: dict[str, str] = {}
        while tokens and _ASSIGN.match(tokens[0]):
            name, value = _ASSIGN.match(tokens[0]).groups()
            local[name] = expand(value, {**scope, **local}, unresolved)
            tokens = tokens[1:]
        if not tokens:
            scope.update(local)
            continue
        tokens = [expand(t, {**scope, **local}, unresolved) for t in tokens]
        if tokens[0].startswith("--"):
            issues.append(Issue("orphan_flags", first,
                                f"lines {first}-{last} start with '{tokens[0]}': bash runs them as a separate command "
                                "(command not found), so these flags never reach the training script",
                                [t for t in tokens if t.startswith("--")]))
            continue
        split = _split_launcher(tokens)
        if split is None:
            continue
        prefix = " ".join([f"{k}={shlex.quote(v)}" for k, v in local.items()] + (["uv", "run"] if tokens[:2] == ["uv", "run"]
                                                                                  or tokens[0].endswith("/uv") else []))
        launcher, launcher_tokens, script_tokens = split
        launcher_args, _ = parse_flags(launcher_tokens, LAUNCHER_FLAGS)
        script = ""
        if script_tokens and script_tokens[0] in ("-m", "--module") and len(script_tokens) > 1:
            script, script_tokens = "-m " + script_tokens[1], script_tokens[2:]
        elif script_tokens:
            script, script_tokens = script_tokens[0], script_tokens[1:]
        from atlas.planning.launchers import recognise

        tool = recognise(script, script_tokens)
        args, positional = parse_flags(script_tokens, set(tool.switches))
        stray = [p for p in positional if not p.strip()]
        if stray:
            issues.append(Issue("stray_argument", last, f"{script} receives {len(stray)} blank argument(s) ' ' from "
                                "an escaped space; argparse will stop with 'unrecognized arguments'"))
        commands.append(LaunchCommand(launcher, launcher_args, script, args, positional, {**scope, **local}, first, last,
                                      tool.key, prefix))
    return LaunchScript(commands, scope, issues, unresolved)


def repair_continuations(text: str) -> str:
    """What the author meant: drop comments that follow a line-continuation backslash."""
    return "\n".join(re.sub(r"\\[ \t]+#.*$", "\\\\", line) for line in text.splitlines())
