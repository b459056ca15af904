"""Reports in Jupyter: _repr_html_ of a memory report and a summary, rendered as a notebook's
output cell renders them, opened in headless Chromium (Debian's chromium, which dev.sh installs).
The page must show the report's exact numbers; the screenshot is the README's picture
(docs/images/jupyter_memory.png is a copy of the one this test saves)."""
import html
import os
import shutil
import subprocess

import pytest
import torchvision

import footprint

OUT = os.environ.get("FOOTPRINT_SCREENSHOTS", os.path.join(os.path.dirname(__file__), "..", "..",
                                                            "build", "python_screens"))

NOTEBOOK = """<!doctype html><html><head><meta charset="utf-8"><style>
body {{ font-family: -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 13px; margin: 16px; }}
.cell {{ display: flex; margin-bottom: 10px; }}
.prompt {{ color: #303f9f; width: 70px; font-family: monospace; padding-top: 4px; }}
.input {{ background: #f5f5f5; border: 1px solid #e0e0e0; padding: 6px 8px; font-family: monospace;
  flex: 1; white-space: pre; }}
.output {{ flex: 1; }}
.output table {{ border-collapse: collapse; margin: 4px 0 10px; }}
.output td, .output th {{ padding: 3px 10px; border-bottom: 1px solid #e0e0e0; }}
.output thead {{ border-bottom: 1px solid black; }}
.output tr:nth-child(even) {{ background: #f5f5f5; }}
</style></head><body>
<div class="cell"><div class="prompt">In [1]:</div><div class="input">{code}</div></div>
<div class="cell"><div class="prompt" style="color:#d84315">Out[1]:</div><div class="output">{output}</div></div>
</body></html>"""


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("no chromium: ./dev.sh installs Debian's chromium package")


def browse(page, *args):
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", "--hide-scrollbars", *args, "file://" + os.path.abspath(page)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("kind", ["memory", "summary"])
def test_repr_html_renders_the_exact_numbers(kind):
    os.makedirs(OUT, exist_ok=True)
    model = torchvision.models.resnet50()
    if kind == "memory":
        code = ('import footprint, torchvision\nmodel = torchvision.models.resnet50()\n'
                'footprint.memory(model, (64, 3, 224, 224), train=True, optimizer="adamw", gpu="h100")')
        report = footprint.memory(model, (64, 3, 224, 224), train=True, optimizer="adamw", gpu="h100")
        expected = [f"{report.allocated_peak:,}", f"{report.reserved_peak:,}", "fits"]
    else:
        code = 'footprint.summary(model, input_size=(1, 3, 224, 224), depth=1)'
        report = footprint.summary(model, input_size=(1, 3, 224, 224), depth=1)
        expected = [f"{report.total_params:,}", f"{report.forward_flops:,}"]
    page = os.path.join(OUT, f"jupyter_{kind}.html")
    with open(page, "w") as f:
        f.write(NOTEBOOK.format(code=html.escape(code), output=report._repr_html_()))
    dom = browse(page, "--dump-dom")
    assert dom.returncode == 0
    for text in expected:
        assert text in dom.stdout, f"{text} not on the page"
    shot = os.path.join(OUT, f"jupyter_{kind}.png")
    p = browse(page, "--window-size=900,720", "--screenshot=" + shot)
    assert p.returncode == 0 and os.path.getsize(shot) > 10000
