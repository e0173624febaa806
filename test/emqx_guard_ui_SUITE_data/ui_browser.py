#!/usr/bin/env python3
"""emqx_guard's page in a real browser (issue 25): headless Chromium (Debian's chromium and
chromium-driver) driven with Selenium, against the stand-in of EMQX 6.3's plugin API gateway
that emqx_guard_ui_SUITE serves on 127.0.0.1.

As an operator in the dashboard: log in (the emqx_auth cookie), open the dashboard's plugin page
(the plugin's /ui in an iframe), see the backups, click "Back up now" and see the run's steps and
the new backup, run a restore dry run and read its report (--restore), enter a bad cron and see
the error beside the field, look at the page in the dark theme. Screenshots go to --shots.
Prints one line per check; exits 1 on the first that fails (its line says what was seen)."""
import argparse
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--shots", required=True)
    p.add_argument("--restore", action="store_true")
    p.add_argument("--offsite", help="a backup uploaded and pinned: its off-site row is checked")
    p.add_argument("--data-dir", help="EMQX's data directory here: shown as /opt/emqx/data in readme.png")
    a = p.parse_args()

    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1400", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
    try:
        run(driver, a)
    finally:
        driver.quit()


def wait(what, fn, timeout=30.0):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # an element not there yet
            last = repr(e)
        time.sleep(0.2)
    fail(what, last)


def fail(what, seen):
    print("FAIL: %s (seen: %r)" % (what, seen), flush=True)
    sys.exit(1)


def ok(what):
    print("ok: " + what, flush=True)


READABLE_DIR = """
var from = arguments[0], w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT), n;
while ((n = w.nextNode())) if (n.nodeValue.indexOf(from) >= 0) n.nodeValue = n.nodeValue.split(from).join("/opt/emqx/data");
"""


def rows(d):
    return [r.get_attribute("data-name") for r in d.find_elements(By.CSS_SELECTOR, "#backups-table tbody tr[data-name]")]


def run(d, a):
    # the dashboard's login sets the cookie; its plugin page shows /ui in an iframe
    d.get(a.base + "/login?token=" + a.token)
    wait("the dashboard's plugin page", lambda: d.find_element(By.ID, "plugin-ui"))
    d.switch_to.frame(d.find_element(By.ID, "plugin-ui"))
    wait("the page loaded its data", lambda: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    msg = d.find_element(By.ID, "message").text
    if msg:
        fail("no error on load", msg)
    before = wait("the backups listed", lambda: rows(d))
    ok("backups listed: %s" % before)
    wait("retention's reason shown", lambda: d.find_element(By.CSS_SELECTOR, "#backups-table td.why").text)
    ok("retention: " + d.find_element(By.CSS_SELECTOR, "#backups-table td.why").text)
    if a.offsite:
        # the off-site table: the backup pinned, and the rule of off-site retention that keeps it
        row = wait("the off-site row", lambda: d.find_element(By.CSS_SELECTOR, '#remote-table tr[data-name="%s"]' % a.offsite))
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        if cells[4] != "pinned" or not cells[5]:
            fail("the off-site backup pinned, with its rule", cells)
        ok("off-site: %s | %s | %s" % (cells[0], cells[4], cells[5]))
    # the health check's verdict: not healthy, with its line (a backup failed before)
    health = d.find_element(By.ID, "health")
    if health.get_attribute("data-healthy") != "0":
        fail("the health check's verdict: not healthy", health.text)
    ok("health: " + d.find_element(By.ID, "health-error").text)
    # the runs the scheduler made (not started here), newest first, with their triggers
    runs = wait("the runs listed", lambda: d.find_elements(By.CSS_SELECTOR, "#run-list details.run"))
    seen = ", ".join("%s %s" % (r.get_attribute("data-trigger"), r.get_attribute("data-state")) for r in runs)
    if [r.get_attribute("data-trigger") for r in runs] != ["manual", "scheduled"]:
        fail("the typed and the scheduled run listed", seen)
    runs[1].find_element(By.TAG_NAME, "summary").click()
    steps = [li.text for li in runs[1].find_elements(By.CSS_SELECTOR, ".steps li")]
    if not any("verify: done in" in s for s in steps):
        fail("the scheduled run's steps shown", steps)
    ok("runs listed: " + ", ".join(reversed(seen.split(", "))))
    d.switch_to.default_content()
    d.save_screenshot(a.shots + "/01-overview.png")
    d.switch_to.frame(d.find_element(By.ID, "plugin-ui"))

    # Back up now: the run's steps while it runs, then its outcome and the new backup
    d.find_element(By.ID, "backup-now").click()
    wait("the run started", lambda: d.find_elements(By.CSS_SELECTOR, "#job [data-state]"))
    state = wait("the run ended", lambda: (lambda s: s if s != "running" else None)(
        d.find_element(By.CSS_SELECTOR, "#job [data-state]").get_attribute("data-state")), 60)
    steps = [li.text for li in d.find_elements(By.CSS_SELECTOR, "#job .steps li")]
    if state != "ok":
        fail("the backup succeeded", (state, steps))
    for want in ("export: started", "verify: done in"):
        if not any(want in s for s in steps):
            fail("a step '%s' shown" % want, steps)
    ok("backup ran; steps: %d, e.g. %s" % (len(steps), steps[-1]))
    after = wait("the new backup listed", lambda: (lambda r: r if len(r) == len(before) + 1 else None)(rows(d)))
    new = [n for n in after if n not in before][0]
    ok("new backup: " + new)
    wait("the last run line", lambda: "ok" in d.find_element(By.ID, "last-run-line").text)
    wait("healthy again", lambda: d.find_element(By.ID, "health").get_attribute("data-healthy") == "1")
    ok("health after the backup: " + d.find_element(By.ID, "health").text)
    d.switch_to.default_content()
    d.save_screenshot(a.shots + "/02-backup-now.png")
    d.switch_to.frame(d.find_element(By.ID, "plugin-ui"))
    if a.data_dir:
        # the README's copy: the same page with the test's temporary data directory shown as the
        # docker image's /opt/emqx/data (as the README's sample output shows it); then reloaded
        d.execute_script(READABLE_DIR, a.data_dir)
        d.switch_to.default_content()
        d.save_screenshot(a.shots + "/readme.png")
        d.switch_to.frame(d.find_element(By.ID, "plugin-ui"))
        d.execute_script("location.reload()")
        wait("the page loaded again", lambda: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        ok("readme.png taken")

    if a.restore:
        row = d.find_element(By.CSS_SELECTOR, '#backups-table tr[data-name="%s"]' % new)
        row.find_element(By.CSS_SELECTOR, "button.restore").click()
        report = wait("the dry run's report", lambda: d.find_element(By.ID, "restore-report").text, 60)
        state = d.find_element(By.CSS_SELECTOR, "#restore-job [data-state]").get_attribute("data-state")
        if state != "ok" or "tables" not in report.lower() or "import" not in report.lower():
            fail("the dry run succeeded with a report of what it would import", (state, report))
        ok("dry run report: %d chars" % len(report))
        btn = wait("the confirmation", lambda: d.find_element(By.ID, "restore-confirm"))
        btn.click()
        wait("a second click asked for", lambda: "Yes, restore" in d.find_element(By.ID, "restore-confirm").text)
        ok("restore asks to confirm: " + d.find_element(By.ID, "restore-confirm").text)
        d.execute_script("document.getElementById('restore-panel').scrollIntoView()")
        d.switch_to.default_content()
        d.save_screenshot(a.shots + "/03-restore-dry-run.png")
        d.switch_to.frame(d.find_element(By.ID, "plugin-ui"))

    # a bad cron: the error beside the field as it is left, and the save refused
    cron = d.find_element(By.ID, "set-backup_cron")
    d.execute_script("arguments[0].scrollIntoView()", cron)
    cron.send_keys(Keys.CONTROL, "a")
    cron.send_keys("61 * * * *")
    cron.send_keys(Keys.TAB)
    err = wait("the inline error", lambda: d.find_element(By.ID, "err-backup_cron").text)
    ok("inline error: " + err)
    d.find_element(By.ID, "settings-save").click()
    res = wait("the save refused", lambda: (lambda t: t if t.startswith("not saved") else None)(
        d.find_element(By.ID, "settings-result").text))
    ok("save: " + res)
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", cron)
    d.switch_to.default_content()
    d.save_screenshot(a.shots + "/04-bad-cron.png")

    # the dark theme (prefers-color-scheme, as the browser tells it)
    d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    d.switch_to.frame(d.find_element(By.ID, "plugin-ui"))
    bg = d.execute_script("return getComputedStyle(document.body).backgroundColor")
    if bg in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"):
        fail("a dark background in the dark theme", bg)
    ok("dark background: " + bg)
    d.execute_script("window.scrollTo(0, 0)")
    d.switch_to.default_content()
    d.save_screenshot(a.shots + "/05-dark.png")
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
