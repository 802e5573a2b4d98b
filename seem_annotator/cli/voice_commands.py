"""`seem-annotator voice parse|transcribe|devices`: the voice grammar and Whisper from a shell."""

from __future__ import annotations

import argparse
import json
import sys

from seem_annotator.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    voice = subparsers.add_parser("voice", help="check the voice grammar, transcribe WAV files, list microphones")
    sub = voice.add_subparsers(dest="voice_command", metavar="SUBCOMMAND")
    voice.set_defaults(func=lambda args: (voice.print_help(sys.stderr), 2)[1])

    parse = sub.add_parser("parse", help="print the command a phrase parses to, as JSON")
    parse.add_argument("text", help='the phrase, e.g. "label it as dog"')
    parse.add_argument("--labels", default="", help="the project's labels, comma-separated: dog,cat,traffic light")
    parse.set_defaults(func=_parse)

    tr = sub.add_parser("transcribe", help="print the Whisper transcript of a WAV file")
    tr.add_argument("file", help="PCM WAV file (any rate and channel count; resampled to 16 kHz mono)")
    tr.add_argument("--model", default=None, help="Whisper model name or .pt path (default: base.en)")
    tr.add_argument("--language", default=None, help='language code, "" to detect (default: en)')
    tr.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    tr.add_argument("--download-root", default=None, help="folder holding Whisper weights (default: ~/.cache/whisper)")
    tr.add_argument("--parse", action="store_true", help="also print the parsed command as JSON")
    tr.add_argument("--labels", default="", help="labels for --parse, comma-separated")
    tr.set_defaults(func=_transcribe)

    dev = sub.add_parser("devices", help="list audio input devices and whether recording works")
    dev.set_defaults(func=_devices)


def _labels(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _parse(args: argparse.Namespace) -> int:
    from seem_annotator.voice.grammar import parse

    print(json.dumps(parse(args.text, _labels(args.labels)).to_json(), ensure_ascii=False))
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from seem_annotator.voice.audio import load_for_whisper
    from seem_annotator.voice.transcribe import DEFAULT_LANGUAGE, DEFAULT_MODEL, Transcriber, WhisperSettings

    audio = load_for_whisper(args.file)
    language = DEFAULT_LANGUAGE if args.language is None else (args.language or None)
    settings = WhisperSettings(model=args.model or DEFAULT_MODEL, language=language, device=args.device,
                               download_root=args.download_root)
    result = Transcriber(settings).transcribe(audio)
    print(result.text)
    if args.parse:
        from seem_annotator.voice.grammar import EmptyTranscriptError, parse

        try:
            print(json.dumps(parse(result.text, _labels(args.labels)).to_json(), ensure_ascii=False))
        except EmptyTranscriptError as exc:
            raise UserError(f"{args.file}: {exc}") from exc
    print(f"({result.audio_seconds:.1f} s of audio, decoded in {result.decode_seconds:.2f} s on {result.device}, "
          f"model loaded in {result.load_seconds:.2f} s)", file=sys.stderr)
    return 0


def _devices(args: argparse.Namespace) -> int:
    from seem_annotator.voice.capture import check_available, list_input_devices

    status = check_available()
    if not status.ok:
        raise UserError(status.reason)
    for dev in list_input_devices():
        print(f"{dev.index:3d}  {dev.label}  ({dev.channels} ch, {dev.default_samplerate:.0f} Hz)")
    return 0
