"""A SEEM model fetched on first use from the app: the banner's Download button and picking a model
that is not here both download it in the background and then switch to it; no network is one clear
message and the classical backend keeps working (the download itself is faked: nothing can be
fetched here)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QProgressDialog, QPushButton
from test_gui_workflow import make_window

from seem_annotator.errors import CheckpointError
from seem_annotator.gui import model_download
from seem_annotator.model import hub

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("SEEM_ANNOTATOR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_banner_downloads_seem_then_switches_to_it(qtbot, tmp_path: Path, fake_seem_download: list[str],
                                                       monkeypatch) -> None:
    fetched = fake_seem_download
    window = make_window(qtbot, tmp_path)
    assert model_download.missing_model("seem:focalt_v1").name == "focalt_v1"
    assert model_download.missing_model("classical") is None
    switched: list[str] = []
    monkeypatch.setattr(window.model, "switch", lambda name, device: switched.append(name))
    assert window.banner.isVisibleTo(window)
    QTest.mouseClick(window.banner.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(switched), timeout=30000)
    assert fetched == ["focalt_v1"] and switched == ["seem:focalt_v1"]
    assert "Downloaded seem_focalt_v1.pt" in window.status.full_text()
    assert model_download.missing_model("seem:focalt_v1") is None  # kept for next time
    window.close()


def test_no_network_is_one_clear_message_and_nothing_switches(qtbot, tmp_path: Path, cache: Path,
                                                              monkeypatch) -> None:
    def offline(name: str, force: bool = False, progress: bool = True, watch=None) -> Path:
        raise CheckpointError("Could not download seem_focalt_v1.pt (no network connection to huggingface.co); "
                              "download it by hand and save it as /somewhere.")

    monkeypatch.setattr(hub, "download", offline)
    window = make_window(qtbot, tmp_path)
    outcome: list = []
    then: list[int] = []
    model_download.download_model(window, "focalt_v1", then=lambda: then.append(1),
                                  on_done=lambda path, error: outcome.append((path, error)))
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    assert outcome[0][0] is None and "no network connection" in outcome[0][1] and then == []
    assert "no network connection" in window.status.full_text()
    assert window.model.backend_name == "classical"
    window.close()


def test_a_download_shows_its_megabytes_and_can_be_cancelled(qtbot, tmp_path: Path, cache: Path, monkeypatch) -> None:
    asked: list[tuple[int, int | None]] = []

    def slow(name: str, force: bool = False, progress: bool = True, watch=None) -> Path:
        for chunk in range(1, 3000):  # 10 MB chunks of a 30 GB file: it never ends by itself
            time.sleep(0.01)
            asked.append((chunk * 10_000_000, 30_000_000_000))
            if not watch(*asked[-1]):
                raise hub.DownloadCancelled("The download of seem_focalt_v1.pt was cancelled; nothing partial "
                                            "was kept (downloading again starts from the beginning).")
        raise AssertionError("the download was not cancelled")

    monkeypatch.setattr(hub, "download", slow)
    window = make_window(qtbot, tmp_path)
    errors: list[str] = []
    monkeypatch.setattr(window, "show_error", lambda message, **kw: errors.append(message))
    outcome: list = []
    then: list[int] = []
    model_download.download_model(window, "focalt_v1", then=lambda: then.append(1),
                                  on_done=lambda path, error: outcome.append((path, error)))
    dialogs = [d for d in window.findChildren(QProgressDialog) if d.windowTitle() == "Download SEEM"]
    dialog = dialogs[-1]
    qtbot.waitUntil(lambda: dialog.isVisible() and " of 30000 MB" in dialog.labelText(), timeout=30000)
    assert dialog.windowModality() == Qt.WindowModality.NonModal  # the window stays usable meanwhile
    cancel = [b for b in dialog.findChildren(QPushButton) if b.text() == "Cancel download"]
    QTest.mouseClick(cancel[0], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    assert outcome[0][0] is None and "cancelled" in outcome[0][1] and then == []
    assert errors == []  # asked for: no error box, a line in the status bar
    assert "was cancelled" in window.status.full_text()
    assert asked[-1][0] < 30_000_000_000
    window.close()
