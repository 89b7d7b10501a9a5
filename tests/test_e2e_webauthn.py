"""Security keys and passkeys on the demo, in headless Chromium with its virtual
authenticator (the DevTools ``WebAuthn`` domain): register a passkey, sign in with it
alone, then use it as the second factor after the password. Skips like the other browser
tests; ``OTP_AUTH_REQUIRE_BROWSER=1`` makes a skip a failure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_e2e_browser import PASSWORD, TIMEOUT, USERNAME, DemoServer, browser  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:  # noqa: F811
    server = DemoServer(tmp_path_factory.mktemp("demo-webauthn"))
    # An RP id must be a domain name: the demo is opened on localhost, not 127.0.0.1.
    server.url = f"http://localhost:{server.port}"
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT * 1000)
    page = context.new_page()
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    yield page
    context.close()


def _password(page: Any, demo: DemoServer) -> None:
    page.goto(f"{demo.url}/protected/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("form[action$='/account/login/'] button[type=submit]")


def test_register_a_passkey_sign_in_with_it_and_use_it_as_a_second_factor(page, demo):
    seen = len(demo.messages())
    _password(page, demo)
    page.fill("input[name=code]", demo.wait_for_code(seen))
    with page.expect_navigation():
        page.click("form[action$='/login/verify/'] button[type=submit]")
    assert page.url == f"{demo.url}/protected/"

    page.goto(f"{demo.url}/account/security-keys/add/?passkey=1")
    page.fill("input[name=name]", "Laptop")
    with page.expect_navigation():
        page.click("form[data-webauthn] button[type=submit]")
    assert "Security key added" in page.inner_text("body")
    assert page.url.endswith("/account/recovery-codes/")  # offered right after

    # Signed out: the passkey alone signs in. The login page asks for it through the
    # username field's autofill (conditional UI), which the virtual authenticator (user
    # present and verified) answers at once: no password is typed.
    page.context.clear_cookies()
    page.goto(f"{demo.url}/account/login/?next=/protected/")
    page.wait_for_url(f"{demo.url}/protected/")
    assert page.inner_text("h1") == "Protected page"

    # The modal flow: the "Sign in with a passkey" button (autofill not offered).
    page.context.clear_cookies()
    page.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = undefined;")
    page.goto(f"{demo.url}/account/login/?next=/protected/")
    field = page.locator("input[name=username]")
    assert field.get_attribute("autocomplete") == "username webauthn"
    with page.expect_navigation():
        page.click("form[data-webauthn=passkey] button[type=submit]")
    assert page.inner_text("h1") == "Protected page"

    # After the password, the key (used last) is the default second factor.
    page.context.clear_cookies()
    _password(page, demo)
    assert page.url == f"{demo.url}/account/login/verify/"
    with page.expect_navigation():
        page.click("form[data-webauthn=login] button[type=submit]")
    assert page.url == f"{demo.url}/protected/"
