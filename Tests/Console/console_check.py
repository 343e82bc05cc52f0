#!/usr/bin/env python3
"""Drives ARK's operator console in headless Chromium (Debian's chromium and chromedriver)
and reports what the page showed, for ConsoleBrowserTests to check against /slos and the
store. Each step waits for the page as an operator would and fails with what it saw.

    console_check.py --url http://127.0.0.1:9090 --token JWT --release INSTANCE \\
        --trace TRACE --tampered-trace TRACE --tamper-db STATE_DB --out DIR

Writes one JSON object to DIR/console_report.json (and stdout); exit 0 when every step ran, 1 naming the step that failed.
"""
import argparse, json, sqlite3, sys, time
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

def browser(width, height, mobile=False):
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}",
              "--force-prefers-reduced-motion", "--lang=en-GB"]:
        o.add_argument(a)
    if mobile:
        o.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0}})
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)

def full_page(d, path):
    """The whole page, not only the viewport."""
    metrics = d.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    import base64
    shot = d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                             "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    open(path, "wb").write(base64.b64decode(shot["data"]))

def wait(d, what, predicate, timeout=30):
    try:
        return WebDriverWait(d, timeout, poll_frequency=0.2).until(lambda _: predicate())
    except Exception:
        sections = d.execute_script("""const out = {};
            for (const s of document.querySelectorAll('section')) out[s.id] = s.innerText.slice(0, 3000);
            out.notice = document.getElementById('notice').innerText; out.token = document.getElementById('token-state').innerText;
            return out;""")
        raise SystemExit(json.dumps({"failed": what, "sections": sections}, indent=1))

def text(d, css):
    return d.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : null", css)

def loaded(d):
    return d.execute_script("return document.body.dataset.updated || null") is not None

def stage_view(d):
    """{stage: {instance: standing}}, read in one script: the page redraws every two seconds."""
    return d.execute_script("""
        const out = {};
        for (const card of document.querySelectorAll('.stage')) out[card.dataset.stage] = {};
        for (const r of document.querySelectorAll('#instance-table tbody tr'))
          out[r.dataset.stage][r.dataset.instance] = r.querySelectorAll('td')[2].textContent;
        return out;""")

def js(d, script):
    return d.execute_script(script)

def main():
    a = argparse.ArgumentParser()
    for name in ["url", "token", "release", "trace", "tampered-trace", "tamper-db", "out"]:
        a.add_argument("--" + name, required=True)
    a.add_argument("--many-instances", type=int, default=0, help="heartbeats the test wrote for a load view")
    args = a.parse_args()
    report = {}
    d = browser(1400, 1000)
    try:
        d.get(args.url + "/")
        wait(d, "the page's first poll", lambda: loaded(d))
        wait(d, "every stage drawn", lambda: len(d.find_elements(By.CSS_SELECTOR, ".stage")) == 5)
        report["title"] = d.title
        report["overall"] = text(d, "#overall")
        report["stages"] = stage_view(d)
        report["slos"] = js(d, """const out = {};
            for (const r of document.querySelectorAll('#slo-table tbody tr'))
              out[r.dataset.slo] = {actual: r.querySelector('.slo-actual').textContent, status: r.querySelectorAll('td')[3].textContent};
            return out;""")
        wait(d, "the latency chart drawn", lambda: d.execute_script("return document.getElementById('chart-latency').dataset.points || null"))
        report["chart_points"] = {k: d.execute_script(f"return document.getElementById('chart-{k}').dataset.points || '0'")
                                  for k in ["latency", "availability", "throughput"]}
        # Without a token: the release button is there and disabled, dead letters say why not.
        wait(d, "the quarantined instance listed", lambda: d.find_elements(By.CSS_SELECTOR, f"#quarantine-table tr[data-instance='{args.release}']"))
        release = f"#quarantine-table tr[data-instance='{args.release}'] button.release"
        report["release_disabled_without_token"] = js(d, f"return document.querySelector({json.dumps(release)}).disabled")
        report["dead_letters_without_token"] = text(d, "#dead-letter-list")
        # A wrong token is refused and said so.
        d.find_element(By.ID, "token").send_keys("not-a-token")
        d.find_element(By.ID, "token-save").click()
        wait(d, "a bad token refused", lambda: "token refused" in (text(d, "#token-state") or ""))
        report["bad_token_state"] = text(d, "#token-state")
        d.find_element(By.ID, "token").send_keys(args.token)
        d.find_element(By.ID, "token-save").click()
        wait(d, "the token taken", lambda: (text(d, "#token-state") or "").startswith("acting as"))
        report["token_state"] = text(d, "#token-state")
        wait(d, "dead letters listed", lambda: d.find_elements(By.CSS_SELECTOR, "#dead-letter-table tbody tr"), timeout=15)
        report["dead_letters"] = js(d, """return Array.from(document.querySelectorAll('#dead-letter-table tbody tr'),
            (r) => ({reason: r.querySelectorAll('td')[2].textContent, payload: r.querySelector('pre').textContent}));""")
        report["dead_letter_total"] = text(d, "#dead-letter-total")
        report["injected_markup"] = d.execute_script("return document.querySelectorAll('#dead-letter-table script, #dead-letter-table img').length")
        # Rates need two heartbeats a second apart, and the release button the token.
        wait(d, "rates shown", lambda: js(d, "return Array.from(document.querySelectorAll('#instance-table tbody tr td:nth-child(4)')).some((c) => c.textContent !== '–')"))
        wait(d, "the release button enabled", lambda: js(d, f"const b = document.querySelector({json.dumps(release)}); return b && !b.disabled"))
        d.execute_script("window.scrollTo(0, 0)")
        full_page(d, args.out + "/console-desktop.png")

        # Release the quarantined instance from the page.
        # Clicked in the page's own script: the row is redrawn every two seconds, so a handle
        # to it from here can be stale by the time it is clicked.
        wait(d, "the release button clicked", lambda: js(d, f"""const b = document.querySelector({json.dumps(release)});
            if (!b || b.disabled) return false; b.click(); return true;"""))
        wait(d, "the release confirmed", lambda: (text(d, "#notice") or "").startswith("released "))
        report["release_notice"] = text(d, "#notice")
        wait(d, "the release in the watchdog's events", lambda: js(d, f"""return Array.from(document.querySelectorAll('#watchdog-events tbody tr'))
            .some((r) => r.textContent.includes('release') && r.textContent.includes({json.dumps(args.release)}));"""))
        report["standing_after_release"] = wait(d, "the instance out of quarantine", lambda: (lambda s: s if s and s != "quarantined" else None)(
            stage_view(d).get("Kenny", {}).get(args.release)), timeout=20)

        # The kill switch from the page: halt one account, see it listed, resume it.
        report["trading_before"] = text(d, "#trading-summary")
        d.execute_script("window.confirm = () => true")
        for field, value in [("trading-account", "acct-9"), ("trading-reason", "console drill")]:
            box = d.find_element(By.ID, field)
            box.clear()
            box.send_keys(value)
        wait(d, "the halt button enabled", lambda: js(d, "return !document.getElementById('trading-halt').disabled"))
        d.find_element(By.ID, "trading-halt").click()
        wait(d, "the halt confirmed", lambda: "HALTED" in (text(d, "#notice") or ""))
        report["trading_halt_notice"] = text(d, "#notice")
        report["trading_row"] = wait(d, "the halted account listed", lambda: js(d, """const r = document.querySelector("#trading-table tr[data-scope='account:acct-9']");
            return r ? Array.from(r.cells, (c) => c.textContent) : null;"""))
        report["trading_during"] = text(d, "#trading-summary")
        d.find_element(By.ID, "trading-resume").click()
        wait(d, "the resume confirmed", lambda: "HALTED → ACTIVE" in (text(d, "#notice") or ""))
        report["trading_resume_notice"] = text(d, "#notice")
        wait(d, "the account no longer listed", lambda: not d.find_elements(By.CSS_SELECTOR, "#trading-table tr[data-scope='account:acct-9']"))
        report["trading_after"] = text(d, "#trading-summary")

        # Trace lookup with its proof checked in the page, then a tampered one.
        for key, trace in [("trace", args.trace), ("tampered", args.tampered_trace)]:
            if key == "tampered":
                # An attacker with the disk: the fill in the audited record becomes a rejection.
                with sqlite3.connect(args.tamper_db, timeout=10) as db:
                    changed = db.execute("UPDATE passes SET record = replace(record, '\"filled\"', '\"rejected\"') WHERE trace_id = ?", (trace,)).rowcount
                if changed != 1:
                    raise SystemExit(json.dumps({"failed": f"altering {trace} in {args.tamper_db}", "rows": changed}))
            box = d.find_element(By.ID, "trace-id")
            box.clear()
            box.send_keys(trace)
            d.find_element(By.CSS_SELECTOR, "#trace-form button").click()
            wait(d, f"the proof of {trace} checked", lambda: (lambda e: e and e.get_attribute("data-status") != "running")(
                (d.find_elements(By.ID, "proof-result") or [None])[0]) and trace in (text(d, "#trace-summary") or ""))
            report[key] = {"summary": text(d, "#trace-summary"), "hops": len(d.find_elements(By.CSS_SELECTOR, "#trace-hops tbody tr")),
                           "hop_cells": js(d, "return Array.from(document.querySelectorAll('#trace-hops tbody tr'), (r) => Array.from(r.cells, (c) => c.textContent))"),
                           "proof": text(d, "#proof-result"), "proof_status": d.find_element(By.ID, "proof-result").get_attribute("data-status")}
            if key == "trace":
                d.execute_script("document.getElementById('trace').scrollIntoView()")
                d.save_screenshot(args.out + "/console-trace.png")
        report["console_errors"] = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE" and "/console/" not in e["message"]]
    finally:
        d.quit()

    # A phone: the same page, one column, never wider than the screen.
    phone = browser(390, 844, mobile=True)
    try:
        phone.get(args.url + "/")
        wait(phone, "the phone's first poll", lambda: loaded(phone))
        wait(phone, "every stage drawn on the phone", lambda: len(phone.find_elements(By.CSS_SELECTOR, ".stage")) == 5)
        if args.many_instances:
            wait(phone, "the load's instances drawn", lambda: sum(len(v) for v in stage_view(phone).values()) >= args.many_instances)
        report["phone_instances"] = sum(len(v) for v in stage_view(phone).values())
        report["phone_width"] = phone.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        # The instance table scrolls inside its box, the columns a phone has no room for hidden.
        report["phone_hidden_columns"] = phone.execute_script(
            "return Array.from(document.querySelectorAll('#instance-table th')).filter((h) => getComputedStyle(h).display === 'none').length")
        phone.save_screenshot(args.out + "/console-phone.png")
    finally:
        phone.quit()
    # The same page at desktop size with the load's instances: every row drawn, still one page.
    if args.many_instances:
        d = browser(1400, 1000)
        try:
            started = time.monotonic()
            d.get(args.url + "/")
            wait(d, "the load's instances drawn", lambda: sum(len(v) for v in stage_view(d).values()) >= args.many_instances)
            report["many_instances_drawn_s"] = round(time.monotonic() - started, 2)
            report["many_instances"] = sum(len(v) for v in stage_view(d).values())
            report["many_width"] = d.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            d.save_screenshot(args.out + "/console-100-instances.png")
        finally:
            d.quit()
    open(args.out + "/console_report.json", "w").write(json.dumps(report))
    print(json.dumps(report))

if __name__ == "__main__":
    main()
