#!/usr/bin/env python3
"""Checks the chat page of `braid serve` in a headless Chromium.

Opens the page, waits for the route selector to list the tasks, asks "Add 250 and 317.",
waits for the streamed answer to finish with a route line naming "arith", saves a screenshot and
prints one line of JSON: {"route": ..., "answer": ...}. Exits non-zero with a message on any failure.

Needs the Debian packages chromium and chromium-driver, and Selenium:
    apt-get install -y chromium chromium-driver && python3 -m pip install selenium
Usage:
    scripts/web-check.py [--url http://127.0.0.1:8080/] [--out /tmp/braid-web.png] [--api-key KEY]
"""
import argparse
import json
import sys
import time

PROMPT = "Add 250 and 317."


def fail(message, driver=None, out=None):
    if driver is not None and out:
        try:
            driver.save_screenshot(out)
            message += f" (screenshot of the failure: {out})"
        except Exception:
            pass
    print(f"web-check: FAILED: {message}", file=sys.stderr)
    if driver is not None:
        try:
            driver.quit()
        except Exception:
            pass
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080/", help="the page (default %(default)s)")
    ap.add_argument("--out", default="/tmp/braid-web.png", help="screenshot path (default %(default)s)")
    ap.add_argument("--api-key", default=None, help="API key to type into the page, if the server needs one")
    ap.add_argument("--timeout", type=float, default=60, help="seconds to wait for the answer (default %(default)s)")
    args = ap.parse_args()

    try:
        from selenium import webdriver
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        fail("selenium is not installed (python3 -m pip install selenium)")

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,800",
                 "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    # The system chromedriver, never one downloaded by Selenium Manager.
    service = Service("/usr/bin/chromedriver")
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as e:
        fail(f"could not start chromium/chromedriver: {e.msg or e}")

    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        try:
            driver.get(args.url)
        except WebDriverException as e:
            fail(f"could not open {args.url}: {e.msg or e}", driver, args.out)

        for needed in ("messages", "input", "send", "route", "apikey"):
            if not driver.find_elements(By.ID, needed):
                fail(f"the page at {args.url} has no #{needed}", driver, args.out)

        if args.api_key:
            # The page keeps the key in localStorage: store it and load the page again.
            driver.execute_script("localStorage.setItem('braid.apikey', arguments[0])", args.api_key)
            driver.get(args.url)

        # The route selector is filled from GET /v1/models.
        def tasks_listed(d):
            return d.execute_script(
                "const r = document.getElementById('route');"
                "return r.dataset.loaded === 'true' && [...r.options].some(o => o.value === 'arith');")
        try:
            WebDriverWait(driver, 20, poll_frequency=0.2).until(tasks_listed)
        except TimeoutException:
            errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".msg.error .text")]
            fail("the route selector was not filled with the tasks from /v1/models"
                 + (f": {errors[-1]}" if errors else ""), driver, args.out)
        options_listed = driver.execute_script(
            "return [...document.getElementById('route').options].map(o => o.textContent)")

        driver.find_element(By.ID, "input").send_keys(PROMPT)
        driver.find_element(By.ID, "send").click()

        # Done when the assistant turn is finished (or failed) and its route line is there.
        def finished(d):
            return d.execute_script(
                "const errs = [...document.querySelectorAll('.msg.error .text')];"
                "if (errs.length) return {error: errs[errs.length - 1].textContent};"
                "const ms = [...document.querySelectorAll('.msg.assistant')];"
                "const m = ms[ms.length - 1];"
                "if (!m || m.dataset.state === 'streaming') return null;"
                "const r = m.querySelector('.route');"
                "return {state: m.dataset.state, answer: m.querySelector('.text').textContent,"
                "        route: r ? r.textContent : null, meta: [...m.querySelectorAll('.meta span')].map(s => s.textContent).join(' · ')};")
        start = time.monotonic()
        try:
            result = WebDriverWait(driver, args.timeout, poll_frequency=0.2).until(finished)
        except TimeoutException:
            partial = driver.execute_script(
                "const ms = document.querySelectorAll('.msg.assistant .text');"
                "return ms.length ? ms[ms.length - 1].textContent : null")
            fail(f"no finished answer within {args.timeout:.0f} s (so far: {partial!r})", driver, args.out)
        elapsed = time.monotonic() - start

        driver.save_screenshot(args.out)
        if "error" in result:
            fail(f"the page shows an error: {result['error']}", driver, args.out)
        if result["state"] != "done":
            fail(f"the answer ended in state {result['state']!r}", driver, args.out)
        if not result["route"] or "arith" not in result["route"]:
            fail(f"the route line does not name arith: {result['route']!r}", driver, args.out)
        if not result["answer"].strip():
            fail("the answer is empty", driver, args.out)

        print(json.dumps({"route": result["route"], "answer": result["answer"], "meta": result["meta"],
                          "routes_listed": options_listed, "seconds": round(elapsed, 2),
                          "screenshot": args.out}))
    finally:
        try:
            driver.quit()
        except Exception:
            pass


if __name__ == "__main__":
    main()
