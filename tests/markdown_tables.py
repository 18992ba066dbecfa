"""Markdown tables as the project's pages write them (`| a | b |`, a `|---|` rule under the header)."""


def table_cells(text: str, section: str) -> list[list[str]]:
    """The cells of each row of the table in `section` (its heading, e.g. "## Runs", up to the next
    "## "): the header first, the rule left out."""
    body = text.split(section + "\n", 1)[1].split("\n## ", 1)[0]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in body.splitlines()
            if line.startswith("|") and not set(line.strip()) <= set("|-: ")]
