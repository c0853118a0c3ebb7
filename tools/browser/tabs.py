"""Tabs and downloads of a BrowserExecutor's context: what the agent has open, and what
it has saved.

A tab's index is its position among the context's open pages, oldest first, as in a
browser's tab strip; indices shift left when a tab before them closes.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tools.errors import ExecutorError

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Download, Page

__all__ = ["DownloadKeeper", "TabInfo", "open_pages", "pick_tab", "tab_infos"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TabInfo:
    """One open tab. `active` marks the tab that observe() and execute() drive."""

    index: int
    url: str
    title: str
    active: bool


def open_pages(context: BrowserContext) -> list[Page]:
    return [p for p in context.pages if not p.is_closed()]


def tab_infos(context: BrowserContext, active: Page | None) -> list[TabInfo]:
    from playwright.sync_api import Error

    infos = []
    for index, page in enumerate(open_pages(context)):
        title = ""
        # A crashed or mid-navigation tab has no title to give; it is still a tab.
        with contextlib.suppress(Error):
            title = page.title()
        infos.append(TabInfo(index=index, url=page.url, title=title, active=page is active))
    return infos


def pick_tab(context: BrowserContext, index: int) -> Page:
    pages = open_pages(context)
    if not 0 <= index < len(pages):
        raise ExecutorError(
            f"there is no tab {index}: {len(pages)} tab(s) are open, numbered 0 to {len(pages) - 1}; "
            "tabs() lists them"
        )
    return pages[index]


class DownloadKeeper:
    """Saves each download under its suggested file name in one directory.

    Playwright announces a download as an event; saving waits for the file to finish, so
    the executor calls `save_pending()` after an action has settled, not inside the event.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.saved: list[Path] = []
        self._pending: list[Download] = []

    def watch(self, page: Page) -> None:
        page.on("download", self._arrived)

    def _arrived(self, download: Download) -> None:
        self._pending.append(download)

    def save_pending(self) -> list[str]:
        """Save what has arrived; one output line per download (its path, or why it failed)."""
        from playwright.sync_api import Error

        lines = []
        while self._pending:
            download = self._pending.pop(0)
            name = download.suggested_filename
            try:
                failure = download.failure()
                if failure is not None:
                    lines.append(f"download of {name!r} failed: {failure}")
                    continue
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self._free_path(name)
                download.save_as(path)
            except Error as exc:
                lines.append(f"download of {name!r} failed: {str(exc).splitlines()[0]}")
                continue
            self.saved.append(path)
            log.info("saved download %s", path)
            lines.append(f"downloaded {path}")
        return lines

    def _free_path(self, suggested: str) -> Path:
        # The name comes from the web: keep only its last component, so it cannot escape.
        name = Path(suggested.replace("\\", "/")).name.strip() or "download"
        if name in (".", ".."):
            name = "download"
        path = self.directory / name
        stem, suffix = path.stem, path.suffix
        counter = 1
        while path.exists():
            path = self.directory / f"{stem} ({counter}){suffix}"
            counter += 1
        return path
