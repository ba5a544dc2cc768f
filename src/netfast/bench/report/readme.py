"""The README's measured tables, generated from a report's ``run.json``.

A block in the README is delimited by two HTML comments::

    <!-- report:SECTION -->
    ... generated ...
    <!-- /report:SECTION -->

where SECTION is a key of :data:`netfast.bench.report.sections.SECTIONS`, or ``verdicts`` for the
report's numbered list of verdicts.  :func:`update`
replaces the text between them with that section's tables and verdict, followed by the date,
machine and command of the run; everything outside the blocks is left as it is.  All blocks are
computed before the file is touched, and the file is replaced in one step, so an error (an
unknown section, a block left open, a section the run could not measure) leaves the README
unchanged and names the line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from netfast.bench.report.render import section_body, verdict_lines
from netfast.bench.report.sections import SECTIONS, Body, Run

_OPEN = re.compile(r"^<!-- report:([a-z0-9_]+) -->$")
_CLOSE = re.compile(r"^<!-- /report:([a-z0-9_]+) -->$")


def block_text(run: Run, key: str) -> list[str]:
    """The generated lines of one block (without its delimiters)."""
    h = run["header"]
    m = h["machine"]
    if key == "verdicts":
        lines = verdict_lines([(sec, section_body(run, sec)) for sec in SECTIONS])
    else:
        sec = next((s for s in SECTIONS if s.key == key), None)
        if sec is None:
            raise KeyError(key)
        body = section_body(run, sec)
        if not isinstance(body, Body):
            raise LookupError(body)
        lines = [*body.lines, "", body.verdict]
    return [
        "",
        *lines,
        "",
        f"*Generated from `report/run.json`: `{h['command']}` on {h['date'][:10]}, {m['cpu']}, "
        f"{m['cores']} cores, commit `{(h['commit'] or 'unknown')[:12]}`.*",
        "",
    ]


def render_readme(text: str, run: Run, name: str = "README") -> tuple[str, list[str]]:
    """``text`` with every block regenerated, and the keys of the blocks written."""
    out: list[str] = []
    keys: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _OPEN.match(line.strip())
        if m is None:
            if _CLOSE.match(line.strip()):
                raise ValueError(f"{name}:{i + 1}: a block closes that was not opened")
            out.append(line)
            i += 1
            continue
        key = m.group(1)
        end = next(
            (j for j in range(i + 1, len(lines)) if lines[j].strip() == f"<!-- /report:{key} -->"),
            None,
        )
        if end is None:
            raise ValueError(f"{name}:{i + 1}: block {key!r} is not closed")
        try:
            generated = block_text(run, key)
        except KeyError:
            known = ", ".join(["verdicts", *(s.key for s in SECTIONS)])
            raise ValueError(f"{name}:{i + 1}: unknown section {key!r}; known: {known}") from None
        except LookupError as exc:
            raise ValueError(f"{name}:{i + 1}: section {key!r} is not in the run: {exc}") from None
        out += [line, *generated, lines[end]]
        keys.append(key)
        i = end + 1
    return "\n".join(out), keys


def update(path: Path, run: Run) -> list[str]:
    """Regenerate ``path``'s blocks in place; return their keys."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    new, keys = render_readme(text, run, str(path))
    if new != text:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(new)
        os.replace(tmp, path)
    return keys
