"""``Doc``: a tiny document model rendered to both Markdown and HTML, so both say the same words.

Blocks: headings, paragraphs, the answer paragraph, bullet lists, tables, figures (embedded as base64 in
the HTML) and collapsible sections (``details`` ... ``end``; a heading in Markdown).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any


class Doc:
    """A tiny document model rendered to both Markdown and HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def answer(self, text: str) -> None:
        """The report's plain-language answer: a paragraph set apart at the top."""
        self.blocks.append(("answer", text))

    def items(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def table(self, head: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", head, [[str(c) for c in r] for r in rows]))

    def img(self, name: str, caption: str) -> None:
        self.blocks.append(("img", name, caption))

    def details(self, title: str) -> None:
        """Opens a collapsible section (HTML ``<details>``; a level-2 heading in Markdown) until ``end``."""
        self.blocks.append(("details", title))

    def end(self) -> None:
        self.blocks.append(("end",))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] in ("p", "answer"):
                out.append(b[1])
            elif b[0] == "ul":
                out.append("\n".join(f"- {x}" for x in b[1]))
            elif b[0] == "table":
                out.append("\n".join(["| " + " | ".join(b[1]) + " |", "|" + "---|" * len(b[1])]
                                     + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in b[2]]))
            elif b[0] == "img":
                out.append(f"![{b[2]}]({b[1]})\n\n*{b[2]}*")
            elif b[0] == "details":
                out.append("## " + b[1])
        return "\n\n".join(out) + "\n"

    def html(self, folder: Path, title: str) -> str:
        e = html.escape
        out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
               "body{font-family:sans-serif;max-width:1200px;margin:2em auto;line-height:1.4}"
               "table{border-collapse:collapse;font-size:0.82em;margin:0.5em 0}"
               "td,th{border:1px solid #bbb;padding:3px 6px;vertical-align:top}th{background:#eee}"
               "img{max-width:100%}figcaption{font-style:italic;font-size:0.9em}"
               "details{margin:0.4em 0;border-top:1px solid #ccc}summary{font-weight:bold;font-size:1.15em;"
               "cursor:pointer;padding:0.3em 0}.answer{font-size:1.08em;background:#f4f7fb;padding:0.6em 0.9em;"
               "border-left:4px solid #4a7ab5}</style></head><body>"]
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                out.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "ul":
                out.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in b[1]) + "</ul>")
            elif b[0] == "table":
                out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in b[1]) + "</tr>"
                           + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b[2])
                           + "</table>")
            elif b[0] == "details":
                out.append(f"<details><summary>{e(b[1])}</summary>")
            elif b[0] == "end":
                out.append("</details>")
            elif b[0] == "answer":
                out.append(f"<p class='answer'>{e(b[1])}</p>")
            elif b[0] == "img":
                data = base64.b64encode((folder / b[1]).read_bytes()).decode()
                out.append(f"<figure><img alt='{e(b[2])}' src='data:image/png;base64,{data}'>"
                           f"<figcaption>{e(b[2])}</figcaption></figure>")
        return "\n".join(out) + "</body></html>\n"
