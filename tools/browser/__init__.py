"""The browser executor: Chromium driven through Playwright, one module per job.

    executor  BrowserExecutor: observe, execute, tabs, downloads, element_at
    runtime   the live tab, and recovery from one crashed tab or dead browser
    session   launching Chromium: the per-thread driver, the sandbox, the PID
    settle    waiting for a page to be quiet after an action, and capture-ahead
    input     how each GUI action becomes Playwright input on one page
    tabs      the context's tabs and saved downloads
    dom       what is under a point: tag, role, accessible name, box
    text      the text a page shows (expect_text steps)
    guard     Chromium refusing navigations off the allowlist (and, strict, every request)
    redirects each redirect hop of a tab checked before Chromium follows it
    hops      a new tab's first page fetched hop by hop, each Location checked
    domains   the allowlist itself (also used by agent.safety)

Nothing here imports Playwright at module level: `import tools.browser` is cheap.
"""

from tools.browser.executor import (
    CHROMIUM_ARGS,
    DEFAULT_CHROMIUM,
    DRAG_STEPS,
    NOTCH_PX,
    SETTLE_MAX_MS,
    SETTLE_QUIET_MS,
    BrowserExecutor,
    ElementInfo,
    TabInfo,
)

__all__ = [
    "CHROMIUM_ARGS",
    "DEFAULT_CHROMIUM",
    "DRAG_STEPS",
    "NOTCH_PX",
    "SETTLE_MAX_MS",
    "SETTLE_QUIET_MS",
    "BrowserExecutor",
    "ElementInfo",
    "TabInfo",
]
