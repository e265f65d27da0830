"""examples/notebook.ipynb, executed cell by cell in a real kernel (nbclient + ipykernel).

nbclient sends no cell ids: the re-run of the subscribing cell is recognised by its code.
JupyterLab's way (with cell ids) is tests/jupyter/test_jupyterlab.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebook.ipynb"


def outputs_of(cell: Any) -> list[dict[str, Any]]:
    return list(cell.get("outputs", []))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_example_notebook_runs_and_displays_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    subscribing = code[3]
    assert "client.subscribe(" in subscribing.source
    with client.setup_kernel():
        # Cell by cell, as a reader does, running the subscribing cell twice as the notebook
        # asks; raises CellExecutionError when any cell fails, its asserts included.
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
            if cell is subscribing:
                client.execute_cell(cell, index)
    page_html = [
        o["data"]["text/html"] for o in outputs_of(code[1]) if "text/html" in o.get("data", {})
    ]
    assert page_html, outputs_of(code[1])
    assert "<table>" in page_html[0]
    assert "hello 2" in page_html[0]
    assert "ConversationChatMessage(" not in page_html[0]
    streams = "".join(
        o.get("text", "") for c in code for o in outputs_of(c) if o["output_type"] == "stream"
    )
    assert streams.count("Alice: live!") == 1  # the re-run cell replaced, not doubled
    last_sub = [
        o["data"]["text/html"] for o in outputs_of(code[5]) if "text/html" in o.get("data", {})
    ]
    assert "1 delivered" in last_sub[0]
    assert not any(o["output_type"] == "error" for c in code for o in outputs_of(c))
