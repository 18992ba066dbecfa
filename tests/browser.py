"""Debian's headless Chromium, driven by Selenium: what the browser tests share."""

import shutil
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

DRIVER = "chromedriver"  # Debian's chromium-driver; Selenium is told where it is (nothing is fetched)
# Offline: no name resolves and every request goes to a proxy that is not there.
OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9")


@contextmanager
def chromium(*arguments: str, console_log: bool = False):
    """A headless Chromium at 1280 x 760 with these extra arguments; `console_log`: keep the
    page's console messages for driver.get_log("browser")."""
    driver = shutil.which(DRIVER)
    assert driver, f"no {DRIVER} on PATH: apt-get install -y chromium chromium-driver (.ci/run does)"
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,760", *arguments):
        options.add_argument(argument)
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()
