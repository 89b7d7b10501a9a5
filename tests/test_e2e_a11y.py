"""Every page of the demo, in Chromium, at desktop and phone widths: zero axe-core
violations (WCAG 2.0-2.2 A and AA, and axe's best practices), and nothing refused by a
strict Content-Security-Policy (no inline script or style anywhere). The sign-in pages
again in Arabic: marked right-to-left, and no wider than a phone or desktop window.

The CSP header is added to every response by the browser harness (``page.route``); axe
is injected through the DevTools protocol, which that policy does not apply to.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import test_e2e_browser as harness
from .test_e2e_browser import PASSWORD, TIMEOUT, USERNAME, DemoServer

browser = harness.browser
demo = harness.demo

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
# connect-src 'self': the security-key pages fetch their ceremony options from the site.
STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


class Walker:
    """One browser context; ``check()`` runs axe on the page and records violations."""

    def __init__(self, page: Any, demo: DemoServer, width: str) -> None:
        self.page, self.demo, self.width = page, demo, width
        self.problems: list[str] = []
        self.csp: list[str] = []
        self.checked: list[str] = []
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.csp.append(f"{self.page.url}: {text}")

    def go(self, path: str) -> None:
        self.page.goto(f"{self.demo.url}{path}")

    def check(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        result = self.page.evaluate(
            """async (tags) => {
                const r = await axe.run(document, {runOnly: {type: "tag", values: tags}});
                return r.violations.map(v => v.id + " (" + v.impact + "): " + v.help + " @ "
                    + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(" | "));
            }""",
            AXE_TAGS,
        )
        self.checked.append(name)
        self.problems += [f"[{self.width}] {name} {self.page.url}: {v}" for v in result]

    def sign_in(self, next_url: str = "/account/") -> str:
        seen = len(self.demo.messages())
        self.go(f"/account/login/?next={next_url}")
        self.page.fill("input[name=username]", USERNAME)
        self.page.fill("input[name=password]", PASSWORD)
        with self.page.expect_navigation():
            self.page.click("form[action$='/login/'] button[type=submit]")
        return self.demo.wait_for_code(seen)

    def submit_code(self, code: str) -> None:
        self.page.fill("input[name=code]", code)
        with self.page.expect_navigation():
            self.page.click("form[action$='/login/verify/'] button[type=submit]")


@pytest.fixture
def make_walker(browser: Any, demo: DemoServer) -> Iterator[Any]:
    contexts: list[Any] = []
    axe_source = AXE.read_text()

    def make(width: str, locale: str = "en-US") -> Walker:
        context = browser.new_context(viewport=VIEWPORTS[width], locale=locale)
        context.set_default_timeout(TIMEOUT * 1000)
        context.add_init_script(axe_source)

        def with_csp(route: Any) -> None:
            response = route.fetch(max_redirects=0)
            headers = {**response.headers, "content-security-policy": STRICT_CSP}
            route.fulfill(response=response, headers=headers)

        context.route(re.compile(re.escape(demo.url) + ".*"), with_csp)
        contexts.append(context)
        return Walker(context.new_page(), demo, width)

    yield make
    for context in contexts:
        context.close()


def walk(walker: Walker) -> None:
    """Every page a user meets, signed out, half-signed-in and signed in."""
    page, server = walker.page, walker.demo
    server.manage("otp_auth_reset_limits", "--user", USERNAME, "--ip", "127.0.0.1")
    walker.go("/")
    walker.check("home")
    walker.go("/account/login/")
    walker.check("login")
    walker.go("/account/password-reset/")
    walker.check("password reset request")

    code = walker.sign_in()
    walker.check("code step")
    walker.submit_code(code)
    assert page.url == f"{server.url}/account/", (page.url, page.inner_text("main"))
    walker.check("account security")
    for path, name in [
        ("/account/devices/", "devices"),
        ("/account/devices/add/", "add a device"),
        ("/account/authenticator/add/", "add an authenticator app"),
        ("/account/recovery-codes/", "recovery codes"),
        ("/account/password/", "password change"),
        ("/protected/", "protected page"),
    ]:
        walker.go(path)
        assert page.url.startswith(f"{server.url}{path}"), (path, page.url)
        walker.check(name)
    walker.go("/account/recovery-codes/")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    walker.check("new recovery codes")

    walker.go("/account/devices/add/")
    page.fill("input[name=phone]", "+233 20 123 4567")
    with page.expect_navigation():
        page.click("form[data-channel-fields] button[type=submit]")
    assert page.url.endswith("/account/devices/confirm/"), page.url
    walker.check("confirm a device")

    # The step-up page, as a stale session sees it (the page is shown on request too).
    walker.go("/account/step-up/?next=/account/devices/add/")
    walker.check("step-up")

    # A locked code.
    page.context.clear_cookies()
    code = walker.sign_in()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        walker.submit_code(wrong)
    assert page.locator("input[name=code]").count() == 0
    walker.check("locked code")

    # Password reset: the code page and the new-password page (not submitted).
    page.context.clear_cookies()
    seen = len(server.messages())
    walker.go("/account/password-reset/")
    page.fill("input[name=identifier]", USERNAME)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    walker.check("password reset code")
    page.fill("input[name=code]", server.wait_for_code(seen))
    with page.expect_navigation():
        page.click("form button[type=submit]")
    walker.check("new password")
    server.manage("otp_auth_reset_limits", "--user", USERNAME, "--ip", "127.0.0.1")


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_every_page_passes_axe_under_a_strict_csp(make_walker: Any, width: str) -> None:
    walker = make_walker(width)
    walk(walker)
    assert len(walker.checked) >= 16
    assert walker.problems == []
    assert walker.csp == []


ARABIC = re.compile(r"[\u0600-\u06ff]")
# What sticks out of the page: the document wider than the window (overflow towards the
# start side, the left in right-to-left, scrolls), or an element of the content laid out
# past either edge (overflow towards the end side is clipped, so it does not scroll).
OVERFLOW = """() => {
    const width = window.innerWidth;
    const out = [];
    if (document.documentElement.scrollWidth > width) {
        out.push("document " + document.documentElement.scrollWidth + " > " + width);
    }
    for (const el of document.querySelectorAll("main *")) {
        const r = el.getBoundingClientRect();
        if (r.width && r.height && (r.left < -1 || r.right > width + 1)) {
            out.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
                + " [" + Math.round(r.left) + ", " + Math.round(r.right) + "]");
        }
    }
    return out;
}"""


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_arabic_pages_are_right_to_left_and_fit_the_window(make_walker: Any, width: str) -> None:
    """With ``Accept-Language: ar`` the sign-in pages come in Arabic, marked right-to-left,
    with nothing wider than a phone or desktop window."""
    walker = make_walker(width, locale="ar")
    page, server = walker.page, walker.demo
    page.set_extra_http_headers({"Accept-Language": "ar"})
    server.manage("otp_auth_reset_limits", "--user", USERNAME, "--ip", "127.0.0.1")

    def check(name: str, heading: str) -> None:
        walker.check(name)
        html = page.locator("html")
        assert (html.get_attribute("lang"), html.get_attribute("dir")) == ("ar", "rtl"), name
        assert page.evaluate("getComputedStyle(document.body).direction") == "rtl", name
        assert page.inner_text("h1") == heading, name
        assert ARABIC.search(page.inner_text("main")), name
        assert page.evaluate(OVERFLOW) == [], (name, width)

    walker.go("/account/login/")
    check("login", "تسجيل الدخول")
    walker.go("/account/login/code/")
    check("sign in with a code", "تسجيل الدخول برمز")
    walker.sign_in()
    assert page.url == f"{server.url}/account/login/verify/", page.url
    check("code step", "أدخِل رمزك")
    assert walker.problems == []
    assert walker.csp == []
