"""The app in real headless Chromium (Debian's chromium, driven by Playwright): one example per tab.

Opens the page, runs one example in each tab, checks the result images appear, drags the comparison
sliders, adds the optimisation-based row (a few steps), opens a result link, and saves a screenshot of each tab
to a temporary folder, or to $SCREENSHOTS when set: `make screenshots` refreshes the README's in
docs/screenshots/ that way. The app is served in this process with the space config's models:
the bundled Shapes model, and DETR-R50's entry (offline: reported on the page).
"""

import base64
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright import sync_api as playwright

from support.app_server import SPACE_CONFIG, serving
from support.paths import EXAMPLES
from support.qr import qr_text_of_file

pytestmark = [pytest.mark.browser, pytest.mark.app, pytest.mark.shapes, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT = 60_000  # ms: the first click of an example computes and caches it


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    """Where screenshots go: $SCREENSHOTS when set (make screenshots), else a temporary folder."""
    return Path(os.environ.get("SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does).")
    folder = tmp_path_factory.mktemp("browser-app")
    with serving(SPACE_CONFIG, folder) as (_, address):
        yield address


@pytest.fixture(scope="module")
def page(url, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with playwright.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        yield page
        context.close()


def open_tab(page, name: str):
    page.get_by_role("tab", name=name).click()


def run_example(page, label: str, result_selector: str, count: int):
    page.get_by_text(label, exact=True).locator("visible=true").first.click()
    images = page.locator(f"{result_selector} img")
    playwright.expect(images.nth(count - 1)).to_be_visible()
    page.wait_for_function(  # every image decoded
        "(selector) => [...document.querySelectorAll(selector)].every(img => img.complete && img.naturalWidth > 0)",
        arg=f"{result_selector} img",
    )


def screenshot(page, folder: Path, name: str):
    folder.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)  # let transitions settle
    page.screenshot(path=folder / f"{name}.png", full_page=True)
    assert (folder / f"{name}.png").stat().st_size > 10_000


def drag_slider(page, selector: str, fraction: float) -> float:
    """Drag a gr.ImageSlider's handle from the middle to `fraction` of its width; returns where the second picture
    now starts, in percent of the width (its clip-path's left inset: the first picture shows left of it)."""
    pictures = page.locator(f"{selector} img")
    playwright.expect(pictures.nth(1)).to_be_visible()
    pictures.first.scroll_into_view_if_needed()  # the mouse reaches only what is on screen
    box = pictures.first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fraction, y, steps=8)
    page.mouse.up()
    clip = pictures.nth(1).evaluate("(picture) => picture.style.clipPath")
    return float(re.search(r"inset\(0px 0px 0px ([\d.]+)%\)", clip).group(1))


def slider_files(page, selector: str) -> list[str]:
    """The names of the files a slider shows, first and second."""
    return [file_name(page.locator(f"{selector} img").nth(index)) for index in range(2)]


def file_name(picture) -> str:
    """The name of the file an <img> shows (Gradio serves one file under several cache folders)."""
    return picture.get_attribute("src").rsplit("/", 1)[-1]


def test_page_opens_and_says_what_is_missing(page, url):
    page.goto(url)
    playwright.expect(page.get_by_role("heading", name="DETR Inversion Lab")).to_be_visible()
    notice = page.locator("#model-notice")
    playwright.expect(notice).to_contain_text("is not available right now")
    playwright.expect(notice).to_contain_text("Everything else works with Shapes world")
    assert not re.search(r"WeightsNotFound|LocalEntryNotFoundError|Could not fetch", notice.inner_text())


def test_stage_reconstructions_example(page, screenshots):
    open_tab(page, "Stage reconstructions")
    run_example(page, "shapes_15 · shapes", "#stage-gallery", 4)
    playwright.expect(page.locator("#stage-gallery")).to_contain_text("PSNR")
    playwright.expect(page.locator("#result-link textarea")).to_have_value(
        re.compile(r"\?model=shapes&example=shapes_15\.png$"))
    assert "example=shapes_15.png" in page.url
    # the slider: the input (the detector's view, as shown above) against the backbone's reconstruction, then another
    slider = page.locator("#stage-slider")
    playwright.expect(slider).to_contain_text("reconstruction from backbone")
    assert slider_files(page, "#stage-slider") == [file_name(page.locator("#stage-view img").first),
                                                   file_name(page.locator("#stage-gallery img").first)]
    assert drag_slider(page, "#stage-slider", 0.25) == pytest.approx(25, abs=3)
    screenshot(page, screenshots, "stages")
    page.locator("#stage-gallery img").nth(2).click()
    playwright.expect(slider).to_contain_text("reconstruction from decoder")
    page.keyboard.press("Escape")  # the gallery's preview of the clicked picture closes


def test_the_link_has_its_qr_code_and_a_deep_link_button_after_a_result(page):
    playwright.expect(page.get_by_role("button", name="Copy a link with your upload")).to_be_enabled(timeout=TIMEOUT)
    link = page.locator("#result-link textarea").input_value()
    source = page.locator("#link-qr img").get_attribute("src")
    picture = page.request.get(source).body() if not source.startswith("data:") else base64.b64decode(source.split(",")[1])
    assert qr_text_of_file(picture) == link


def test_optimised_row_next_to_the_learned_one(page):
    playwright.expect(page.locator("#optimised-gallery")).to_be_hidden()
    page.get_by_label("Also optimisation-based inversion (slow)").check()
    page.get_by_role("button", name="Reconstruct").locator("visible=true").first.click()
    playwright.expect(page.locator("#optimised-gallery img").nth(3)).to_be_visible()
    playwright.expect(page.locator("#optimised-gallery")).to_contain_text("prediction · PSNR")
    playwright.expect(page.locator("#stage-gallery img").nth(3)).to_be_visible()


def test_layer_swap_example(page, screenshots):
    open_tab(page, "Layer swap")
    run_example(page, "shapes_18 · shapes", "#swap-gallery", 8)
    playwright.expect(page.locator("#swap-heat img")).to_be_visible()
    screenshot(page, screenshots, "layer_swap")


def test_colour_perturbation_example(page, screenshots):
    open_tab(page, "Colour perturbation")
    run_example(page, "shapes_05 · shapes", "#perturb-gallery", 4)
    playwright.expect(page.get_by_text("what happened")).to_be_visible()
    # the original against the perturbed image, and their reconstructions from the stage chosen (the first, then another)
    playwright.expect(page.locator("#perturb-slider")).to_contain_text("the original | the perturbed image")
    assert slider_files(page, "#perturb-slider") == [file_name(page.locator(f"#perturb-{shown} img").first)
                                                     for shown in ("original", "perturbed")]
    reconstructions = page.locator("#perturb-reconstruction-slider")
    playwright.expect(reconstructions).to_contain_text("reconstructions from backbone")
    assert slider_files(page, "#perturb-reconstruction-slider") == [
        file_name(page.locator(f"{gallery} img").first) for gallery in ("#original-gallery", "#perturb-gallery")]
    assert drag_slider(page, "#perturb-slider", 0.7) == pytest.approx(70, abs=3)
    assert drag_slider(page, "#perturb-reconstruction-slider", 0.3) == pytest.approx(30, abs=3)
    screenshot(page, screenshots, "colour_perturbation")
    page.locator("#perturb-gallery img").nth(1).click()
    playwright.expect(reconstructions).to_contain_text("reconstructions from encoder")
    page.keyboard.press("Escape")


def test_a_card_of_the_stage_tab_downloads_with_the_stage_link_in_its_qr_code(page, tmp_path):
    """After the perturbation, the stage tab's card still carries the stage tab's own link (optimised row ticked)."""
    open_tab(page, "Stage reconstructions")
    page.locator("#stages-card-button").click()
    links = page.locator("#stages-card-files a")
    playwright.expect(links).to_have_count(2, timeout=TIMEOUT)
    downloaded = {}
    for index in range(2):
        with page.expect_download() as download:
            links.nth(index).click()
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        downloaded[path.suffix] = path
    assert downloaded[".pdf"].read_bytes().startswith(b"%PDF")
    png = downloaded[".png"].read_bytes()
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape[1] >= 1920
    link = qr_text_of_file(png)
    assert re.search(r"\?model=shapes&example=shapes_15\.png&optimised=1$", link) and link.startswith("http"), link


def test_about_tab(page, screenshots):
    open_tab(page, "About")
    playwright.expect(page.get_by_text("rathjens2024inverting")).to_be_visible()
    screenshot(page, screenshots, "about")


def test_attention_example_and_a_click_on_the_encoder_map(page, screenshots):
    open_tab(page, "Attention and interventions")
    page.locator("#attend-attention-examples").get_by_text("shapes_15 · shapes", exact=True).click()
    playwright.expect(page.locator("#attend-query-maps img").nth(4)).to_be_visible()  # the model's five detections
    playwright.expect(page.locator("#attend-query-maps")).to_contain_text("inside its box")
    point_map = page.locator("#attend-point-map img")
    playwright.expect(page.get_by_text(re.compile(r"attention from the cell at \(64, 64\)"))).to_be_visible()
    screenshot(page, screenshots, "attention")
    box = point_map.bounding_box()
    point_map.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.75})  # view pixels (32, 96)
    playwright.expect(page.get_by_text(re.compile(r"attention from the cell at \((3[0-4]), (9[4-8])\)"))).to_be_visible()
    playwright.expect(page.locator("#result-link textarea")).to_have_value(re.compile(r"tab=attend.*point_x=3[0-4]&point_y=9[4-8]"))


def test_attention_on_an_uploaded_photo(page, screenshots):
    page.locator("#attend-first input[type=file]").set_input_files(str(EXAMPLES / "astronaut.png"))
    page.get_by_role("button", name="Run").click()
    playwright.expect(page.get_by_text(re.compile(r"attention from the cell at \(\d+, \d+\)"))).to_be_visible()
    playwright.expect(page.locator("#result-link textarea")).to_have_value(re.compile(r"example=astronaut\.png"))
    screenshot(page, screenshots, "attention_photo")


def test_transplant_example_and_its_card(page, screenshots, tmp_path):
    open_tab(page, "Attention and interventions")
    page.locator("#attend-intervention-examples").get_by_text("shapes_15 #2 → shapes_05 · into the encoder · shapes",
                                                              exact=True).click()
    playwright.expect(page.locator("#attend-gallery img").nth(3)).to_be_visible()
    playwright.expect(page.get_by_text(re.compile("The first image's 2: star .* transplanted .*: found there as star"))
                      ).to_be_visible()
    playwright.expect(page.locator("#attend-changes")).to_contain_text("what happened")
    screenshot(page, screenshots, "transplant")
    page.locator("#attend-card-button").click()
    links = page.locator("#attend-card-files a")
    playwright.expect(links).to_have_count(2, timeout=TIMEOUT)
    with page.expect_download() as download:
        links.first.click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    link = qr_text_of_file(path.read_bytes())
    assert re.search(r"tab=attend&example=shapes_15\.png&object=2&action=transplant&second=shapes_05\.png$", link), link


def test_a_link_reproduces_a_layer_skip(page, url):
    page.goto(url + "?model=shapes&tab=attend&example=shapes_27.png&action=skip&skip=d1")
    playwright.expect(page.get_by_role("tab", name="Attention and interventions")).to_have_attribute("aria-selected", "true")
    playwright.expect(page.get_by_text(re.compile("Without decoder layer 1: "))).to_be_visible(timeout=TIMEOUT)
    playwright.expect(page.locator("#attend-gallery img").nth(3)).to_be_visible()
    playwright.expect(page.locator("#result-link textarea")).to_have_value(
        re.compile(r"tab=attend&example=shapes_27\.png&action=skip&skip=d1$"))


def test_a_link_reproduces_a_result(page, url):
    page.goto(url + "?model=shapes&tab=perturb&example=shapes_27.png&mask=image&perturbation=grey")
    playwright.expect(page.get_by_role("tab", name="Colour perturbation")).to_have_attribute("aria-selected", "true")
    images = page.locator("#perturb-gallery img")
    playwright.expect(images.nth(3)).to_be_visible()
    playwright.expect(page.locator("#result-link textarea")).to_have_value(
        re.compile(r"example=shapes_27\.png.*mask=image.*perturbation=grey"))


def test_a_link_restores_the_optimised_row_and_the_tradeoff_settings(page, url):
    page.goto(url + "?model=shapes&example=shapes_15.png&optimised=1")
    playwright.expect(page.get_by_label("Also optimisation-based inversion (slow)")).to_be_checked()
    playwright.expect(page.locator("#optimised-gallery img").nth(3)).to_be_visible(timeout=TIMEOUT)
    page.goto(url + "?tab=tradeoff&arch=fc-s&latent=4&lam=0.3")
    playwright.expect(page.locator("#tradeoff-digits img")).to_be_visible(timeout=TIMEOUT)
    playwright.expect(page.locator("#result-link textarea")).to_have_value(re.compile(r"arch=fc-s&latent=4&lam=0\.3$"))


def test_the_presenter_view_hides_the_controls_and_shows_the_result_large(page, url, screenshots):
    page.goto(url + "?model=shapes&example=shapes_15.png&view=present")
    playwright.expect(page.locator("#stage-gallery img").nth(3)).to_be_visible(timeout=TIMEOUT)
    playwright.expect(page.locator("#result-link textarea")).to_have_value(re.compile(r"example=shapes_15\.png&view=present$"))
    for hidden in (page.get_by_role("button", name="Reconstruct"), page.get_by_label("Image", exact=True),
                   page.get_by_label("Model", exact=True), page.get_by_role("tablist"), page.get_by_role("tab", name="About"),
                   page.locator("#stages-card-button"), page.get_by_text("shapes_15 · shapes")):
        assert hidden.locator("visible=true").count() == 0
    playwright.expect(page.locator("#link-qr img")).to_be_visible()
    label_size = page.locator("#stage-gallery").evaluate(
        "(gallery) => parseFloat(getComputedStyle(gallery.querySelector('label, [data-testid=block-label]')).fontSize)")
    assert label_size >= 24
    assert page.locator("#stage-gallery img").first.bounding_box()["height"] > 250  # 4 columns over the full width
    screenshot(page, screenshots, "presenter")
