"""The voice dock: push-to-talk, level meter, editable transcript, settings.

Hold the push-to-talk key on the canvas (default Space) or toggle the Talk button to record; on
release the take goes to Whisper on its worker thread and the window stays responsive. The
transcript appears in an editable field with the parsed command beside it. Harmless commands run
at once; accept/delete and anything the grammar only guessed wait for Enter, so a misheard word
can be corrected by typing first. Typed text goes through the same grammar, so the field also works
when there is no microphone. When recording is impossible the Talk button is disabled and its
tooltip and the status bar say why; nothing else in the window depends on voice.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from seem_annotator.errors import UserError
from seem_annotator.gui.voice_settings_dialog import VoiceSettingsDialog
from seem_annotator.voice import capture, commands, grammar
from seem_annotator.voice.capture import Availability, Recorder
from seem_annotator.voice.settings import VoiceSettings
from seem_annotator.voice.transcribe import Transcriber, TranscriptionJob, WhisperSettings

log = logging.getLogger(__name__)

MIN_TAKE_SECONDS = 0.3  # shorter takes are key taps, not speech
SILENCE_PEAK = 0.15  # meter value (-51 dBFS); a take that never got louder held no speech


# Keys the transcript field must get even though the window binds them (Return = accept, Esc =
# cancel, Delete, arrows = images): while typing a correction they edit the text or confirm it.
_FIELD_KEYS = frozenset({Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape, Qt.Key.Key_Delete,
                         Qt.Key.Key_Backspace, Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Home,
                         Qt.Key.Key_End, Qt.Key.Key_Tab})


def _settings_store(window: Any) -> Any:
    """The window's own QSettings when it has one (tests give it an ini file), else the app's."""
    store = getattr(window, "settings", None)
    if callable(getattr(store, "value", None)) and callable(getattr(store, "setValue", None)):
        return store
    return QSettings()


def check_voice_available(device: str = "") -> Availability:
    """Recording and transcription both possible? (Tests monkeypatch this.)

    Whisper is only looked up, not imported: importing it (and torch, numba) takes seconds and
    happens on the transcriber's thread when the first take arrives.
    """
    if importlib.util.find_spec("whisper") is None:
        return Availability(False, "Voice transcription needs the openai-whisper package "
                                   "(`pip install openai-whisper`).")
    return capture.check_available(device or None)


class VoicePanel(QWidget):
    """Push-to-talk controls; `window.commands` receives the parsed commands."""

    job_finished = Signal(object)  # TranscriptionJob, emitted from the worker thread (queued)
    preload_finished = Signal(object)  # TranscriptionJob (load only), from the worker thread
    command_run = Signal(object)  # VoiceCommand, after it ran

    def __init__(self, window: Any, settings: VoiceSettings | None = None,
                 transcriber: Transcriber | None = None, store: Any = None) -> None:
        super().__init__()
        self.window = window
        self.store = store if store is not None else _settings_store(window)
        self.settings = settings or VoiceSettings.load(self.store)
        self.transcriber = transcriber or Transcriber(self._whisper_settings())
        self.availability = Availability(False, "Voice has not been checked yet.")
        self.recorder: Recorder | None = None
        self.job: TranscriptionJob | None = None
        self.pending: grammar.VoiceCommand | None = None
        self._heard: str | None = None  # the last transcript, to tell a confirmed one from typing
        self._surfaces: list[QWidget] = []
        self._build()
        self.job_finished.connect(self._on_job_finished, Qt.ConnectionType.QueuedConnection)
        self.preload_finished.connect(self._on_preload_finished, Qt.ConnectionType.QueuedConnection)
        self._meter_timer = QTimer(self)
        self._meter_timer.setInterval(40)
        self._meter_timer.timeout.connect(self._poll_recorder)
        self.refresh_availability()

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        self.talk_button = QToolButton(self)
        self.talk_button.setText("Talk")
        self.talk_button.setCheckable(True)
        self.talk_button.toggled.connect(self._on_talk_toggled)
        self.meter = QProgressBar(self)
        self.meter.setRange(0, 100)
        self.meter.setTextVisible(False)
        self.meter.setMaximumWidth(120)
        self.meter.setToolTip("Input level while recording")
        self.transcript = QLineEdit(self)
        self.transcript.setPlaceholderText("Transcript — or type a command, e.g. 'segment the red car'")
        self.transcript.returnPressed.connect(self.run_transcript)
        self.transcript.textEdited.connect(self._on_text_edited)
        self.transcript.installEventFilter(self)
        self.parsed = QLabel(self)
        self.parsed.setMinimumWidth(140)
        self.run_button = QToolButton(self)
        self.run_button.setText("Run")
        self.run_button.setToolTip("Run the command in the transcript field (Enter)")
        self.run_button.clicked.connect(self.run_transcript)
        self.settings_button = QToolButton(self)
        self.settings_button.setText("Settings…")
        self.settings_button.clicked.connect(self.open_settings)
        self.state_label = QLabel(self)
        self.state_label.setWordWrap(True)
        self.indicator = QLabel()  # goes into the window's status bar (install_voice_panel)

        row = QHBoxLayout()
        for w in (self.talk_button, self.meter, self.transcript, self.parsed, self.run_button,
                  self.settings_button):
            row.addWidget(w)
        row.setStretch(2, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(row)
        layout.addWidget(self.state_label)

    def _whisper_settings(self) -> WhisperSettings:
        return WhisperSettings(model=self.settings.model, language=self.settings.language or None)

    def _status(self, text: str, timeout_ms: int = 8000) -> None:
        self.state_label.setText(text)
        bar = getattr(self.window, "statusBar", None)
        if callable(bar):
            bar().showMessage(text, timeout_ms)

    def _talk_hint(self) -> str:
        key = QKeySequence(self.settings.push_to_talk_key).toString() or self.settings.push_to_talk_key
        return f"Hold {key} on the image, or toggle this button, and speak a command"

    # ------------------------------------------------------------------ availability
    def refresh_availability(self) -> Availability:
        """Re-check PortAudio, the device and Whisper; enable or disable the Talk button."""
        self.availability = check_voice_available(self.settings.device)
        ok, reason = self.availability.ok, self.availability.reason
        self.talk_button.setEnabled(ok)
        self.talk_button.setToolTip(self._talk_hint() if ok else reason)
        # The reason is said once, in the panel; the status bar only gets a short permanent
        # indicator with the reason in its tooltip (issue 15 item 9: it was shown three times).
        self.indicator.setText("Voice: ready" if ok else "Voice: off")
        self.indicator.setToolTip(self._talk_hint() if ok else reason)
        self.state_label.setText("" if ok else reason)
        return self.availability

    # ------------------------------------------------------------------ recording
    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def start_recording(self) -> bool:
        """Open the microphone; False (with the reason shown) if it cannot."""
        if self.recording:
            return True
        if not self.availability.ok:
            self._status(self.availability.reason)
            return False
        if self.job is not None and not self.job.done:
            self.job.cancel()  # speaking again replaces the take still being transcribed
        self._clear_pending()
        recorder = Recorder(self.settings.device or None, self.settings.max_seconds)
        try:
            recorder.start()
        except UserError as exc:
            self._status(str(exc))
            self.refresh_availability()
            self._set_button(False)
            return False
        self.recorder = recorder
        # Load Whisper while the user speaks, so the first transcript does not wait for it.
        self.transcriber.preload(on_done=self.preload_finished.emit)
        self._set_button(True)
        self._meter_timer.start()
        self._status(f"Listening… (up to {self.settings.max_seconds:.0f} s)")
        return True

    def stop_recording(self) -> TranscriptionJob | None:
        """Close the microphone and send the take to Whisper; returns the job, if any."""
        recorder, self.recorder = self.recorder, None
        self._meter_timer.stop()
        self.meter.setValue(0)
        self._set_button(False)
        if recorder is None:
            return None
        try:
            audio = recorder.stop()
        except UserError as exc:
            self._status(str(exc))
            return None
        if audio.size < MIN_TAKE_SECONDS * capture.SAMPLE_RATE:
            self._status(f"Too short: hold {self.settings.push_to_talk_key} while you speak.")
            return None
        if recorder.peak < SILENCE_PEAK:
            self._status("Only silence was recorded; check the input device in the voice settings.")
            return None
        return self.transcribe(audio)

    def transcribe(self, audio: Any) -> TranscriptionJob:
        """Queue a float32 16 kHz take; the transcript arrives via `job_finished`."""
        hint = None
        if self.settings.vocabulary_hint:
            hint = commands.vocabulary_hint(commands.project_labels(self.window))
        self.job = self.transcriber.submit(audio, on_done=self.job_finished.emit, hint=hint)
        loading = "" if self.transcriber.model_loaded else f" (loading Whisper {self.settings.model} first)"
        self._status(f"Transcribing {audio.size / capture.SAMPLE_RATE:.1f} s{loading}…")
        return self.job

    def toggle_recording(self) -> None:
        if self.recording:
            self.stop_recording()
        else:
            self.start_recording()

    def _set_button(self, checked: bool) -> None:
        self.talk_button.blockSignals(True)
        self.talk_button.setChecked(checked)
        self.talk_button.setText("Stop" if checked else "Talk")
        self.talk_button.blockSignals(False)

    def _on_talk_toggled(self, checked: bool) -> None:
        if checked:
            self.start_recording()
        else:
            self.stop_recording()

    def _poll_recorder(self) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        self.meter.setValue(int(round(recorder.level * 100)))
        if recorder.limit_reached:
            self._status(f"Reached the {self.settings.max_seconds:.0f} s limit.")
            self.stop_recording()

    # ------------------------------------------------------------------ transcripts and commands
    def _on_job_finished(self, job: TranscriptionJob) -> None:
        if job is not self.job or job.cancelled:
            return  # superseded by a newer take
        if job.error is not None:
            msg = str(job.error) if isinstance(job.error, UserError) else f"Transcription failed: {job.error}"
            self._status(msg, 15000)
            return
        assert job.result is not None
        self.handle_text(job.result.text, spoken=True)

    def _on_preload_finished(self, job: TranscriptionJob) -> None:
        if job.error is not None and not self.recording:
            self._status(str(job.error) if isinstance(job.error, UserError) else
                         f"Whisper could not be loaded: {job.error}", 15000)

    def handle_text(self, text: str, spoken: bool = False) -> grammar.VoiceCommand | None:
        """Parse `text`; run it now, or hold it for confirmation. Returns the parsed command.

        `spoken`: it came from Whisper, so it is shown in the field and may need confirming.
        Text run from the field counts as spoken while it is still exactly what was heard (a
        prompt is then stored as a voice prompt); once corrected by typing it is a typed one.
        """
        if spoken:
            self.transcript.setText(text)
            self._heard = text
        from_speech = spoken or (self._heard is not None and text.strip() == self._heard.strip())
        try:
            cmd = grammar.parse(text, commands.project_labels(self.window))
        except grammar.EmptyTranscriptError:
            self.parsed.setText("")
            self._status("Heard nothing; try again." if spoken else "Type or say a command.")
            return None
        self.parsed.setText(f"→ {cmd.describe()}")
        if spoken and (cmd.needs_confirmation or self.settings.confirm_all):
            self.pending = cmd
            self._status(f"Heard “{text}” → {cmd.describe()}. Enter runs it, edit to correct, Esc discards.")
            self.transcript.setFocus()
            self.transcript.selectAll()
            return cmd
        self.execute(cmd, spoken=from_speech)
        return cmd

    def run_transcript(self) -> grammar.VoiceCommand | None:
        """Enter / Run: run whatever the field holds now (as typed or corrected)."""
        self.pending = None
        return self.handle_text(self.transcript.text(), spoken=False)

    def execute(self, cmd: grammar.VoiceCommand, spoken: bool = False) -> None:
        api = getattr(self.window, "commands", None)
        if api is None:
            self._status("Voice: the window has no command interface yet.")
            return
        try:
            note = commands.execute(cmd, api, spoken=spoken)
        except UserError as exc:
            self._status(str(exc))
            return
        except Exception as exc:  # a bug in a command must not take the panel down
            log.exception("voice command %s failed", cmd)
            self._status(f"Voice command '{cmd.describe()}' failed: {exc}")
            return
        self.pending = None
        self._status(note)
        self.command_run.emit(cmd)

    def _on_text_edited(self, text: str) -> None:
        try:
            cmd = grammar.parse(text, commands.project_labels(self.window))
            self.parsed.setText(f"→ {cmd.describe()}")
        except grammar.EmptyTranscriptError:
            self.parsed.setText("")

    def _clear_pending(self) -> None:
        self.pending = None

    def discard_pending(self) -> None:
        """Esc in the transcript field: forget the held command and hand focus back to the image."""
        self.pending = None
        self._heard = None
        self.transcript.clear()
        self.parsed.setText("")
        self._status("Voice command discarded.")
        canvas = getattr(self.window, "canvas", None)
        if isinstance(canvas, QWidget):
            canvas.setFocus()

    # ------------------------------------------------------------------ push-to-talk key
    def _ptt_key(self) -> int | None:
        seq = QKeySequence(self.settings.push_to_talk_key)
        return seq[0].key() if seq.count() else None

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        etype = event.type()
        if obj is self.window:
            if etype == QEvent.Type.Close:
                self.shutdown()
            return False
        if obj is self.transcript:
            if etype == QEvent.Type.ShortcutOverride and event.key() in _FIELD_KEYS:
                event.accept()
                return True
            if etype == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_Escape:
                self.discard_pending()
                return True
            return False
        if obj not in self._surfaces or etype not in (
                QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.ShortcutOverride):
            return False
        if not self.availability.ok or event.key() != self._ptt_key():
            return False
        if etype == QEvent.Type.ShortcutOverride:
            event.accept()  # the key is ours on the canvas, not a window shortcut's
            return True
        if event.isAutoRepeat():
            return True
        if etype == QEvent.Type.KeyPress:
            self.start_recording()
        else:
            self.stop_recording()
        return True

    def watch(self, widget: QWidget) -> None:
        """Make `widget` (the canvas) a push-to-talk surface."""
        self._surfaces.append(widget)
        widget.installEventFilter(self)

    # ------------------------------------------------------------------ settings
    def open_settings(self) -> None:
        if not self.recording:
            try:
                capture.refresh_devices()  # pick up a microphone plugged in since start-up
            except UserError:
                pass  # the dialog and the availability check report the problem
        dialog = VoiceSettingsDialog(self.settings, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.apply_settings(dialog.result_settings())

    def apply_settings(self, settings: VoiceSettings) -> None:
        """Store new settings; Whisper reloads lazily if the model changed."""
        self.settings = settings
        settings.save(self.store)
        self.transcriber.update_settings(model=settings.model, language=settings.language or None)
        self.refresh_availability()

    def shutdown(self) -> None:
        """Stop recording and the transcriber (window close)."""
        self._meter_timer.stop()
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            try:
                recorder.stop()
            except UserError:
                pass
        self.transcriber.close(timeout=1.0)


def install_voice_panel(window: Any, **kwargs: Any) -> VoicePanel:
    """Add the voice dock to `window` (bottom dock area) and make its canvas a push-to-talk surface.

    Never raises for a missing microphone or PortAudio: the panel is then shown disabled with the
    reason. `kwargs` go to `VoicePanel` (settings, transcriber, store).
    """
    panel = VoicePanel(window, **kwargs)
    if isinstance(window, QMainWindow):
        dock = QDockWidget("Voice", window)
        dock.setObjectName("voice_dock")
        dock.setWidget(panel)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        panel.dock = dock
    bar = getattr(window, "statusBar", None)
    if callable(bar):
        bar().addPermanentWidget(panel.indicator)
    canvas = getattr(window, "canvas", None)
    if isinstance(canvas, QWidget):
        panel.watch(canvas)
        viewport = getattr(canvas, "viewport", None)
        if callable(viewport) and isinstance(viewport(), QWidget):
            panel.watch(viewport())
    if isinstance(window, QObject):
        window.installEventFilter(panel)  # closing the window stops the microphone and Whisper
    window.voice_panel = panel
    return panel
