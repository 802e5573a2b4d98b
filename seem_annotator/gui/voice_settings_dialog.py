"""The voice settings dialog: input device, Whisper model and language, maximum take length,
push-to-talk key, and how eagerly commands run."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QKeySequenceEdit,
    QWidget,
)

from seem_annotator.errors import UserError
from seem_annotator.voice import capture
from seem_annotator.voice.settings import VoiceSettings

# Offered in the language box ("" = let Whisper detect); any other code can be typed.
LANGUAGES = ("", "en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "uk", "zh", "ja", "ko", "ar", "hi", "tr")


class VoiceSettingsDialog(QDialog):
    """Input device, Whisper model and language, maximum take length, push-to-talk key."""

    def __init__(self, settings: VoiceSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Voice settings")
        self._base = settings
        form = QFormLayout(self)
        self.device = QComboBox(self)
        self.device.addItem("System default", "")
        try:
            for dev in capture.list_input_devices():
                self.device.addItem(dev.label, dev.name)
        except UserError as exc:
            self.device.setToolTip(str(exc))
        if settings.device and self.device.findData(settings.device) < 0:
            self.device.addItem(f"{settings.device} (not connected)", settings.device)
        self.device.setCurrentIndex(max(0, self.device.findData(settings.device)))
        self.model = QComboBox(self)
        self.model.setEditable(True)  # a path to a .pt checkpoint is allowed too
        try:
            from seem_annotator.voice.transcribe import available_models

            self.model.addItems(available_models())
        except Exception:  # whisper missing: the field still takes a name
            pass
        self.model.setCurrentText(settings.model)
        self.language = QComboBox(self)
        self.language.setEditable(True)
        for code in LANGUAGES:
            self.language.addItem(code or "detect", code)
        idx = self.language.findData(settings.language)
        if idx >= 0:
            self.language.setCurrentIndex(idx)
        else:
            self.language.setCurrentText(settings.language)
        self.max_seconds = QDoubleSpinBox(self)
        self.max_seconds.setRange(1.0, capture.MAX_MAX_SECONDS)
        self.max_seconds.setSuffix(" s")
        self.max_seconds.setValue(settings.max_seconds)
        self.key = QKeySequenceEdit(QKeySequence(settings.push_to_talk_key), self)
        self.confirm_all = QCheckBox("Show every command before running it", self)
        self.confirm_all.setChecked(settings.confirm_all)
        self.hint = QCheckBox("Tell Whisper the command words and label names", self)
        self.hint.setChecked(settings.vocabulary_hint)
        form.addRow("Input device", self.device)
        form.addRow("Whisper model", self.model)
        form.addRow("Language", self.language)
        form.addRow("Maximum length", self.max_seconds)
        form.addRow("Push-to-talk key (hold on the image)", self.key)
        form.addRow(self.confirm_all)
        form.addRow(self.hint)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                   parent=self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def result_settings(self) -> VoiceSettings:
        text = self.language.currentText().strip()
        language = "" if text in ("", "detect") else text  # items show the codes themselves
        key = self.key.keySequence().toString() or self._base.push_to_talk_key
        return VoiceSettings(
            device=str(self.device.currentData() or ""), model=self.model.currentText().strip() or self._base.model,
            language=language, max_seconds=self.max_seconds.value(), push_to_talk_key=key,
            confirm_all=self.confirm_all.isChecked(), vocabulary_hint=self.hint.isChecked(),
        )
