"""Help → About: the version, the bundled data sets and libraries with their licences, as markdown."""
from __future__ import annotations

from services.core.about import about


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def about_markdown() -> str:
    info = about()
    lines = [f"## {info['product']} {info['version']}", "", info["summary"], "",
             "### Data sets", "", "| Data set | Used for | Source | Licence |", "| --- | --- | --- | --- |"]
    lines += [f"| {_cell(d.name)} | {_cell(d.use)} | {_cell(d.source)} | {_cell(d.licence)} |" for d in info["data"]]
    lines += ["", "### Libraries", "", "| Library | Version | Licence |", "| --- | --- | --- |"]
    lines += [f"| {_cell(c.name)} | {_cell(c.version)} | {_cell(c.licence)} |" for c in info["libraries"]]
    lines += ["", "The model cards (Models page, **Model card…**) say how each bundled model was trained and tested."]
    return "\n".join(lines)
