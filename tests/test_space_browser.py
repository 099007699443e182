"""The Space in a real browser (opt-in: `make test-browser`, or `pytest -m browser tests/test_space_browser.py -s`).

Headless Chromium (Debian's `chromium`, driven by Selenium through Debian's `chromium-driver`) opens the app served
on a local port with a tiny pipeline of each system, types a sentence, presses Generate and waits until the video
element has a source that the browser has loaded; the screenshot's path is printed.
"""

from __future__ import annotations

import shutil

import pytest
from test_space import running_space

from hf_sign.space import load_models

pytestmark = pytest.mark.browser
webdriver = pytest.importorskip("selenium.webdriver")

SENTENCE = "where was the brother yesterday?"


def _find(*names):
    return next((path for path in map(shutil.which, names) if path), None)


@pytest.fixture(scope="module")
def driver():
    chromium, chromedriver = _find("chromium", "chromium-browser"), _find("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("needs Debian's chromium and chromium-driver (`make test-browser` installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(arg)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))
    yield browser
    browser.quit()


def test_typing_a_sentence_and_pressing_generate_shows_a_video(driver, tiny_pipeline_folders, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    models = load_models({name: str(folder) for name, folder in tiny_pipeline_folders.items()})
    with running_space(models) as url:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#text textarea")))
        box.clear()
        box.send_keys(SENTENCE)
        driver.find_element(By.CSS_SELECTOR, "#generate").click()
        video = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#video video[src]")))
        assert video.get_attribute("src")
        # the browser decoded it: metadata (duration, size) is known
        wait.until(lambda d: d.execute_script("return arguments[0].readyState >= 1", video))
        width, duration = driver.execute_script("return [arguments[0].videoWidth, arguments[0].duration]", video)
        assert width > 0 and duration > 0
        wait.until(lambda d: '"num_frames"' in d.find_element(By.CSS_SELECTOR, "#details").text)
        driver.execute_script("arguments[0].pause(); arguments[0].currentTime = arguments[0].duration / 2", video)
        shot = tmp_path / "space.png"
        driver.save_screenshot(str(shot))
        # an empty input: a visible message, no stack trace (keys, so that the app sees the change)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        driver.find_element(By.CSS_SELECTOR, "#generate").click()
        wait.until(lambda d: "the input is empty" in d.find_element(By.CSS_SELECTOR, "body").text)
        assert "Traceback" not in driver.find_element(By.CSS_SELECTOR, "body").text
        # a system without guidance: the guidance control goes away
        assert driver.find_element(By.CSS_SELECTOR, "#guidance").is_displayed()
        driver.find_element(By.CSS_SELECTOR, "#system input").click()
        option = (By.CSS_SELECTOR, "#system li[role=option][aria-label='stable-signer']")
        wait.until(ec.element_to_be_clickable(option)).click()
        wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, "#guidance")))
    print(f"\n[space] screenshot: {shot}")
    assert shot.stat().st_size > 0
