"""examples/notebook.ipynb in a real JupyterLab, run cell by cell from headless Chromium.

JupyterLab sends each cell's id with its execute request, so this is the re-run rule as
users meet it: the test runs the notebook top to bottom as a reader does, running the
subscribing cell a second time where the notebook asks, and reads the outputs in the page.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebook.ipynb"

_WAIT_SECONDS = 60.0
_DONE_PROMPT = re.compile(r"\[(\d+)\]:")


class Page:
    """The notebook open in JupyterLab, in the browser, with the waits its DOM needs."""

    def __init__(self, driver: Any) -> None:
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.by = By
        self.wait = WebDriverWait(
            driver,
            _WAIT_SECONDS,
            poll_frequency=0.1,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )

    def until(self, condition: Any, what: str) -> None:
        """Wait for ``condition``; on time-out, fail saying what the page shows."""
        from selenium.common.exceptions import TimeoutException

        try:
            self.wait.until(condition)
        except TimeoutException:
            pytest.fail(f"{what} within {_WAIT_SECONDS:.0f} s; the page shows:\n{self.describe()}")

    def describe(self) -> str:
        """Each cell's prompt and outputs, and any dialog: what a person would look at."""
        shown = []
        for cell in self.cells():
            prompts = cell.find_elements(self.by.CSS_SELECTOR, ".jp-InputPrompt")
            prompt = prompts[0].text if prompts else "(markdown)"
            shown.append(f"{prompt} {self.output_text(cell)[:300]!r}")
        dialogs = self.driver.find_elements(self.by.CSS_SELECTOR, ".jp-Dialog")
        shown.extend(f"dialog: {d.text[:300]!r}" for d in dialogs)
        indicator = self.driver.find_elements(
            self.by.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator"
        )
        shown.extend(f"kernel: {i.get_attribute('data-status')}" for i in indicator)
        return "\n".join(shown)

    def cells(self) -> list[Any]:
        return list(self.driver.find_elements(self.by.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell"))

    def code_cells(self) -> list[Any]:
        return [c for c in self.cells() if "jp-CodeCell" in (c.get_attribute("class") or "")]

    def prompt(self, cell: Any) -> str:
        return str(cell.find_element(self.by.CSS_SELECTOR, ".jp-InputPrompt").text.strip())

    def outputs(self, cell: Any) -> list[Any]:
        return list(cell.find_elements(self.by.CSS_SELECTOR, ".jp-OutputArea-output"))

    def output_text(self, cell: Any) -> str:
        return "\n".join(str(o.text) for o in self.outputs(cell))

    def kernel_ready(self, lab: Any) -> None:
        """Wait for the notebook's kernel: started, connected to this page, and idle.

        A cell run before the page has its kernel is silently dropped, so the server is
        asked (its kernel has a connection) and the page too (its indicator says idle).
        """

        def ready(_driver: Any) -> bool:
            try:
                kernels = lab.api("kernels")
            except OSError:  # an error status (seen: 500) while the kernel starts: ask again
                return False
            indicator = self.driver.find_elements(
                self.by.CSS_SELECTOR, '.jp-Notebook-ExecutionIndicator[data-status="idle"]'
            )
            return bool(indicator) and any(
                k["connections"] > 0 and k["execution_state"] == "idle" for k in kernels
            )

        self.until(ready, "the notebook's kernel did not become ready")

    def run(self, index: int) -> int:
        """Run code cell ``index`` (select it, Shift+Enter); wait for it; its run number."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import WebDriverWait

        before = self.prompt(self.code_cells()[index])

        def started(_driver: Any) -> bool:
            return self.prompt(self.code_cells()[index]) != before

        for _attempt in range(3):  # a key press that reached no cell is pressed again
            self.code_cells()[index].find_element(self.by.CSS_SELECTOR, ".jp-InputPrompt").click()
            keys = ActionChains(self.driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER)
            keys.key_up(Keys.SHIFT).perform()
            try:
                WebDriverWait(self.driver, 10, poll_frequency=0.1).until(started)
                break
            except TimeoutException:
                continue

        def finished(_driver: Any) -> bool:
            now = self.prompt(self.code_cells()[index])
            return bool(_DONE_PROMPT.fullmatch(now)) and now != before

        self.until(finished, f"code cell {index} did not finish running")
        cell = self.code_cells()[index]
        done = _DONE_PROMPT.fullmatch(self.prompt(cell))
        assert done is not None
        errors = cell.find_elements(
            self.by.CSS_SELECTOR, '.jp-OutputArea-output[data-mime-type*="stderr"]'
        )
        assert not [e.text for e in errors if "Error" in e.text], self.output_text(cell)
        return int(done[1])


def _login(driver: Any, lab: Any, path: str) -> None:
    """Log in with the token typed into the login form, so no URL ever carries it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{lab.url}login?next=/{path}")
    wait = WebDriverWait(driver, _WAIT_SECONDS, poll_frequency=0.1)
    field = wait.until(ec.presence_of_element_located((By.ID, "password_input")))
    field.send_keys(lab.token)
    driver.find_element(By.ID, "login_submit").click()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_example_notebook_in_jupyterlab_rerun_cell_replaces(
    chromium: Any,  # first: without a browser, skip before starting a server
    jupyterlab: Any,
) -> None:
    shutil.copy(NOTEBOOK, jupyterlab.root / "notebook.ipynb")
    _login(chromium, jupyterlab, "lab/tree/notebook.ipynb")
    page = Page(chromium)
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    count = sum(c["cell_type"] == "code" for c in cells)
    page.until(lambda _d: len(page.code_cells()) == count, "the notebook did not open")
    page.kernel_ready(jupyterlab)
    sources = [
        str(c.find_element(page.by.CSS_SELECTOR, ".jp-InputArea-editor").text)
        for c in page.code_cells()
    ]
    subscribing = next(i for i, s in enumerate(sources) if "client.subscribe(" in s)

    runs = {}
    for index in range(len(sources)):
        runs[index] = page.run(index)
        if index == subscribing:  # "Now run the cell above again"
            first = runs[index]
            runs[index] = page.run(index)
            assert runs[index] > first

    code = page.code_cells()
    page_html = [o.get_attribute("innerHTML") for o in page.outputs(code[1])]
    assert any("<table>" in h and "hello 2" in h for h in page_html), page_html
    assert "ConversationChatMessage(" not in page.output_text(code[1])
    everything = "\n".join(page.output_text(c) for c in code)
    assert everything.count("Alice: live!") == 1  # the re-run cell replaced, not doubled
    assert "1 delivered" in page.output_text(code[5])
    assert "Traceback" not in everything
