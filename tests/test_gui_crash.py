"""The app killed with SIGKILL in the middle of labelling loses nothing it had committed: a
subprocess drives the real window (accept one object, refine another over two rounds), is killed,
and a fresh window finds the annotation, the object in progress and its undo history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import copy_samples
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from seem_annotator.core.project import Project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

REPO_ROOT = Path(__file__).resolve().parents[1]

DRIVER = textwrap.dedent("""
    import os, sys, time
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    from seem_annotator.gui.main_window import MainWindow

    folder, settings_file = sys.argv[1], sys.argv[2]
    app = QApplication([])
    settings = QSettings(settings_file, QSettings.Format.IniFormat)
    settings.setValue("ui/quiet_errors", True)
    window = MainWindow(settings=settings, backend_name="classical")
    window.show()
    QTest.qWaitForWindowActive(window)
    window.open_folder(folder)
    ctl = window.controller

    def say(text):
        print(text, flush=True)

    def click(x, y, button=Qt.MouseButton.LeftButton):
        QTest.mouseClick(window.canvas.viewport(), button, Qt.KeyboardModifier.NoModifier,
                         window.canvas.mapFromScene(x, y))

    def answered():
        deadline = time.time() + 120
        while (ctl._latest is not None or ctl.candidate_mask is None) and time.time() < deadline:
            QTest.qWait(20)

    window.show_image(window.project.image_by_name("chelsea.jpg").id)
    click(240, 170)
    answered()
    window.commands.set_label("cat")
    QTest.keyClick(window.canvas, Qt.Key.Key_Return)
    say(f"ACCEPTED {len(ctl.annotations)}")
    window.show_image(window.project.image_by_name("coffee.jpg").id)
    click(300, 190)
    answered()
    click(30, 30, Qt.MouseButton.RightButton)
    answered()
    say(f"ROUNDS {len(ctl.session.rounds)}")
    click(320, 200)  # a third prompt in flight when the kill comes: not committed, may be lost
    while True:
        QTest.qWait(50)
""")


def test_sigkill_mid_way_loses_nothing_committed(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    copy_samples(folder)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen([sys.executable, str(script), str(folder), str(tmp_path / "driver.ini")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines: list[str] = []
    try:
        deadline = time.time() + 200
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith("ROUNDS"):
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lines[-1:] == ["ROUNDS 2"], (lines, proc.stderr.read())
    assert "ACCEPTED 1" in lines
    assert proc.returncode == -signal.SIGKILL

    # The store alone (no GUI) has everything committed.
    with Project.open(folder) as project:
        chelsea = project.image_by_name("chelsea.jpg")
        coffee = project.image_by_name("coffee.jpg")
        assert [project.label(a.label_id).name for a in project.annotations(chelsea.id)] == ["cat"]
        session = project.current_session(coffee.id)
        assert session is not None and len(session.rounds) >= 2
        assert [p.positive for p in session.all_prompts()][:2] == [True, False]

    # A new window reopens on the last image with the object in progress and its undo stack.
    from seem_annotator.gui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "driver.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, backend_name="classical")
    qtbot.addWidget(window)
    window.show()
    assert QTest.qWaitForWindowActive(window)
    assert window.open_folder(folder)
    ctl = window.controller
    assert ctl.image_id == coffee.id
    rounds = len(ctl.session.rounds)
    assert window.canvas.has_candidate()
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(ctl.session.rounds) == rounds - 1
    QTest.keyClick(window.canvas, Qt.Key.Key_A)
    assert ctl.image_id == chelsea.id and len(ctl.annotations) == 1
    window.close()
